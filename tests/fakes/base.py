# FakeServer: the common part of every fake upstream (see fakes/__init__.py for the
# marker scheme). A ThreadingHTTPServer in a daemon thread, HTTP/1.1 with keep-alive and
# Content-Length on every answer, a thread-safe record of every request, and helpers for
# the slow / reset / close / huge behaviours. Stdlib only.
#
#   srv = SomeFake(host="127.0.0.1").start()
#   srv.url                      "http://127.0.0.1:<port>"
#   srv.requests                 list of Recorded (method, path, query, headers, body, client, time)
#   srv.requests_with(secret)    the recorded requests whose headers mention `secret`
#   srv.clear()                  forget recorded requests
#   srv.slow_delay = 3.0         delay of the bare SLOW marker, in seconds
#   srv.close()                  stop serving, wake sleeping handlers, close the socket
import http.server
import json
import re
import socket
import struct
import threading
import time
import urllib.parse

MARKER_RE = re.compile(r"(VALID|EMPTYSCOPES|NORATE|RATELIMIT|FORBIDDEN|SECONDARY|SLOWMS\d+|SLOW\d*|"
                       r"RESET|CLOSE|HUGE|GARBAGE|E500|E502|E503)$")
HUGE_BYTES = 20 * 1024 * 1024


def marker_of(credential):
    """The behaviour marker a credential ends with, or None (= unknown credential)."""
    if not credential:
        return None
    m = MARKER_RE.search(credential)
    return m.group(1) if m else None


def slow_seconds(marker, default):
    """Delay for a SLOW* marker (None for other markers)."""
    if marker is None or not marker.startswith("SLOW"):
        return None
    if marker.startswith("SLOWMS"):
        return int(marker[6:]) / 1000.0
    if len(marker) > 4:
        return float(marker[4:])
    return default


class Headers:
    """Case-insensitive read-only view of request headers (keeps all values, in order)."""

    def __init__(self, items):
        self.items = list(items)

    def get(self, name, default=None):
        vals = self.get_all(name)
        return vals[-1] if vals else default

    def get_all(self, name):
        n = name.lower()
        return [v for k, v in self.items if k.lower() == n]

    def __contains__(self, name):
        return bool(self.get_all(name))

    def __repr__(self):
        return "Headers(%r)" % (self.items,)


class Recorded:
    def __init__(self, method, target, headers, body, client):
        self.method = method
        self.target = target
        parts = urllib.parse.urlsplit(target)
        self.path = parts.path
        self.query = urllib.parse.parse_qs(parts.query)
        self.headers = Headers(headers)
        self.body = body
        self.client = client
        self.time = time.time()

    def __repr__(self):
        return "<%s %s from %s headers=%r>" % (self.method, self.target, self.client, self.headers.items)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def handle_error(self, request, client_address):
        # Clients that give up (timeouts, size caps) make writes fail: that is expected.
        pass


class FakeHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeUpstream/1.0"
    sys_version = ""

    def log_message(self, fmt, *args):  # quiet
        pass

    def version_string(self):
        return self.server.fake.server_header

    # every method goes through _dispatch
    def do_GET(self):
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def _dispatch(self):
        fake = self.server.fake
        length = self.headers.get("Content-Length")
        body = b""
        if length:
            try:
                body = self.rfile.read(int(length))
            except (ValueError, OSError):
                body = b""
        rec = Recorded(self.command, self.path, self.headers.items(), body, self.client_address[0])
        fake._record(rec)
        try:
            fake.handle(self, rec)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, socket.timeout):
            self.close_connection = True

    # ------------------------------------------------------------ answer helpers
    def send_json(self, status, obj, headers=None, reason=None):
        data = json.dumps(obj).encode()
        self.send_bytes(status, data, "application/json; charset=utf-8", headers, reason)

    def send_bytes(self, status, data, content_type, headers=None, reason=None):
        self.send_response(status, reason)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or []):
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.wfile.flush()

    def send_huge(self, status, headers=None, size=HUGE_BYTES):
        """A JSON object of `size` bytes: {"pad":"xxxx..."}, streamed in 64 KiB chunks."""
        head, tail = b'{"pad":"', b'"}'
        fill = size - len(head) - len(tail)
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(size))
        for k, v in (headers or []):
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(head)
        chunk = b"x" * 65536
        left = fill
        while left > 0:
            n = min(left, len(chunk))
            self.wfile.write(chunk[:n])
            left -= n
        self.wfile.write(tail)
        self.wfile.flush()

    def reset(self):
        """Abort the connection with a TCP RST, sending nothing."""
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self._hard_close()

    def close_quietly(self):
        """Close the connection cleanly (FIN), sending nothing."""
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._hard_close()

    def _hard_close(self):
        self.close_connection = True
        try:
            self.rfile.close()
        except OSError:
            pass
        try:
            self.connection.close()
        except OSError:
            pass

    def sleep(self, seconds):
        """Wait `seconds`; True when the fake is closing meanwhile (the caller then drops
        the connection instead of answering)."""
        return self.server.fake._stop.wait(seconds)


class FakeServer:
    """Subclasses implement handle(handler, recorded)."""

    handler_class = FakeHandler
    name = "fake"
    server_header = "FakeUpstream/1.0"

    def __init__(self, host="127.0.0.1", port=0):
        self.host = host
        self._port = port
        self.slow_delay = 3.0
        self._lock = threading.Lock()
        self._requests = []
        self._registered = {}
        self._stop = threading.Event()
        self._httpd = None
        self._thread = None

    # ------------------------------------------------------------ lifecycle
    def start(self):
        self._httpd = _Server((self.host, self._port), self.handler_class)
        self._httpd.fake = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="%s-%s" % (self.name, self.port), daemon=True)
        self._thread.start()
        return self

    def close(self):
        self._stop.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    @property
    def port(self):
        return self._httpd.server_address[1]

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    # ------------------------------------------------------------ behaviour selection
    def register(self, credential, marker):
        """Make `credential` behave like `marker` (e.g. a legacy 40-hex GitHub token)."""
        with self._lock:
            self._registered[credential] = marker

    def marker_for(self, credential):
        with self._lock:
            if credential in self._registered:
                return self._registered[credential]
        return marker_of(credential)

    # ------------------------------------------------------------ recording
    def _record(self, rec):
        with self._lock:
            self._requests.append(rec)

    @property
    def requests(self):
        with self._lock:
            return list(self._requests)

    def requests_with(self, secret):
        """Recorded requests whose headers (any value) contain `secret`."""
        return [r for r in self.requests if any(secret in v for _, v in r.headers.items)]

    def clear(self):
        with self._lock:
            self._requests = []

    def wait_for_requests(self, n, timeout=5.0, secret=None):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.requests_with(secret) if secret is not None else self.requests
            if len(got) >= n:
                return got
            time.sleep(0.02)
        return self.requests_with(secret) if secret is not None else self.requests

    def handle(self, h, rec):  # pragma: no cover - overridden
        h.send_json(404, {"message": "Not Found"})
