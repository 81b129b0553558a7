# RawUpstream: a hostile HTTP upstream on a raw socket (stdlib only), for the outbound
# fault tests. It reads one request head, picks a behaviour from the MARKER that ends the
# credential in the Authorization or x-api-key header (like tests/fakes, so one server
# serves every case at once), and misbehaves at the byte level:
#
#   STALL      read the request, then send nothing (until the client gives up)
#   HEADSTALL  send a status line and headers promising 1000 bytes, then nothing
#   DRIP       send a 200 whose head and (endless, Content-Length 1 GB) body come one
#              byte every `drip_interval` s
#   DRIPOK     send a small, complete, valid 200 one byte every `dripok_interval` s
#   HUGE       200 with Content-Length 100 MB, streamed as fast as the client reads
#   HUGECHUNK  200 with chunked framing and no length, 100 MB of chunks
#   GARBAGE    non-HTTP bytes, then close
#   RESET      read the request, then reset the connection (RST)
#   SLOW<n>    answer a valid 200 after n seconds (n may be fractional: SLOW2, SLOW0.5)
#   anything else: 200 VALID (GitHub- and OpenAI-shaped JSON)
#
# Every connection is served by a daemon thread with a bounded lifetime (max_conn_seconds);
# close() stops everything. conns is a list of dicts: marker, sent (bytes), started, ended,
# outcome ("complete", "peer-closed", "timeout", ...).
import json
import re
import select
import socket
import struct
import threading
import time

MARKER_RE = re.compile(r"(STALL|HEADSTALL|DRIPOK|DRIP|HUGECHUNK|HUGE|GARBAGE|RESET|SLOW[0-9.]+|VALID)\b")
HUGE_BYTES = 100 * 1024 * 1024

VALID_BODY = json.dumps({"login": "octocat", "id": 1, "data": [{"id": "gpt-4o", "object": "model"}],
                         "object": "list"}).encode()


def _head(status, headers):
    lines = ["HTTP/1.1 %s" % status] + ["%s: %s" % kv for kv in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def valid_response():
    return _head("200 OK", [("Content-Type", "application/json; charset=utf-8"),
                            ("Content-Length", str(len(VALID_BODY))),
                            ("X-OAuth-Scopes", "repo"),
                            ("X-RateLimit-Limit", "5000"), ("X-RateLimit-Remaining", "4999"),
                            ("X-RateLimit-Reset", "1893456000"),
                            ("Connection", "close")]) + VALID_BODY


class RawUpstream:
    def __init__(self, host="127.0.0.1", drip_interval=0.2, dripok_interval=0.01, max_conn_seconds=60):
        self.host = host
        self.drip_interval = drip_interval
        self.dripok_interval = dripok_interval
        self.max_conn_seconds = max_conn_seconds
        self.conns = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock = None
        self._thread = None
        self._workers = []

    # ------------------------------------------------------------ lifecycle
    def start(self):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((self.host, 0))
        self._sock.listen(128)
        self._sock.settimeout(0.1)
        self._thread = threading.Thread(target=self._accept_loop, name="rawfake-accept", daemon=True)
        self._thread.start()
        return self

    @property
    def port(self):
        return self._sock.getsockname()[1]

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    def close(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        for t in list(self._workers):
            t.join(5)
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def records(self, marker=None):
        with self._lock:
            return [dict(c) for c in self.conns if marker is None or c["marker"] == marker]

    def wait_connections(self, marker, n, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.records(marker)) >= n:
                return True
            time.sleep(0.02)
        return False

    # ------------------------------------------------------------ serving
    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                c, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(c,), name="rawfake-conn", daemon=True)
            self._workers = [w for w in self._workers if w.is_alive()] + [t]
            t.start()

    def _serve(self, c):
        rec = {"marker": None, "sent": 0, "started": time.monotonic(), "ended": None, "outcome": None,
               "path": None}
        with self._lock:
            self.conns.append(rec)
        deadline = time.monotonic() + self.max_conn_seconds
        try:
            head = self._read_head(c, deadline)
            if head is None:
                rec["outcome"] = "no-request"
                return
            first = head.split(b"\r\n", 1)[0].decode("latin-1")
            rec["path"] = first.split(" ")[1] if " " in first else first
            m = None
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() in ("authorization", "x-api-key"):
                    m = MARKER_RE.search(value.strip())
                    if m:
                        break
            marker = m.group(1) if m else "VALID"
            rec["marker"] = marker
            rec["outcome"] = getattr(self, "_do_" + re.sub(r"[0-9.]+$", "", marker).lower())(c, rec, marker, deadline)
        except (BrokenPipeError, ConnectionResetError):
            rec["outcome"] = "peer-closed"
        except OSError as e:
            rec["outcome"] = "error %r" % e
        finally:
            rec["ended"] = time.monotonic()
            try:
                c.close()
            except OSError:
                pass

    def _read_head(self, c, deadline):
        data = b""
        c.settimeout(0.2)
        while b"\r\n\r\n" not in data and len(data) < 65536:
            if self._stop.is_set() or time.monotonic() > deadline:
                return None
            try:
                chunk = c.recv(4096)
            except socket.timeout:
                continue
            if not chunk:
                return None
            data += chunk
        return data

    def _send(self, c, rec, data):
        c.sendall(data)
        rec["sent"] += len(data)

    def _wait_peer_close(self, c, deadline):
        """Send nothing; return "peer-closed" when the client hangs up, else "timeout"."""
        while not self._stop.is_set() and time.monotonic() < deadline:
            r, _, _ = select.select([c], [], [], 0.1)
            if r:
                try:
                    if not c.recv(4096):
                        return "peer-closed"
                except (ConnectionResetError, OSError):
                    return "peer-closed"
        return "stopped" if self._stop.is_set() else "timeout"

    def _peer_gone(self, c):
        r, _, _ = select.select([c], [], [], 0)
        if not r:
            return False
        try:
            return not c.recv(4096)
        except (ConnectionResetError, OSError):
            return True

    # ------------------------------------------------------------ behaviours
    def _do_valid(self, c, rec, marker, deadline):
        self._send(c, rec, valid_response())
        return "complete"

    def _do_slow(self, c, rec, marker, deadline):
        delay = float(marker[4:])
        if self._stop.wait(delay):
            return "stopped"
        if self._peer_gone(c):
            return "peer-closed"
        self._send(c, rec, valid_response())
        return "complete"

    def _do_stall(self, c, rec, marker, deadline):
        return self._wait_peer_close(c, deadline)

    def _do_headstall(self, c, rec, marker, deadline):
        self._send(c, rec, _head("200 OK", [("Content-Type", "application/json"), ("Content-Length", "1000")]))
        return self._wait_peer_close(c, deadline)

    def _drip(self, c, rec, data, interval, deadline):
        for i in range(len(data)):
            if self._stop.is_set() or time.monotonic() > deadline:
                return "timeout"
            if self._peer_gone(c):
                return "peer-closed"
            self._send(c, rec, data[i:i + 1])
            if self._stop.wait(interval):
                return "stopped"
        return "complete"

    def _do_drip(self, c, rec, marker, deadline):
        head = _head("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(1 << 30))])
        body = b'{"pad":"' + b"x" * 100000
        return self._drip(c, rec, head + body, self.drip_interval, deadline)

    def _do_dripok(self, c, rec, marker, deadline):
        return self._drip(c, rec, valid_response(), self.dripok_interval, deadline)

    def _stream(self, c, rec, chunks_total, framing_chunked):
        block = b"x" * 65536
        left = chunks_total
        c.settimeout(10)
        while left > 0 and not self._stop.is_set():
            n = min(left, len(block))
            piece = block[:n]
            if framing_chunked:
                piece = b"%x\r\n" % n + piece + b"\r\n"
            self._send(c, rec, piece)
            left -= n
        if framing_chunked and left == 0:
            self._send(c, rec, b"0\r\n\r\n")
        return "complete" if left == 0 else "stopped"

    def _do_huge(self, c, rec, marker, deadline):
        self._send(c, rec, _head("200 OK", [("Content-Type", "application/json"),
                                            ("Content-Length", str(HUGE_BYTES))]))
        try:
            return self._stream(c, rec, HUGE_BYTES, False)
        except socket.timeout:
            return "timeout"

    def _do_hugechunk(self, c, rec, marker, deadline):
        self._send(c, rec, _head("200 OK", [("Content-Type", "application/json"),
                                            ("Transfer-Encoding", "chunked")]))
        try:
            return self._stream(c, rec, HUGE_BYTES, True)
        except socket.timeout:
            return "timeout"

    def _do_garbage(self, c, rec, marker, deadline):
        self._send(c, rec, b"\x00\xffSSH-2.0-garbage\r\n\x1b[31m{not http at all\r\n\r\n" * 4)
        return "complete"

    def _do_reset(self, c, rec, marker, deadline):
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return "reset"
