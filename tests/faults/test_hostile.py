# Hostile clients, tenants and upstreams (issue 10): every resource a client, tenant or
# upstream can make the service hold is bounded. Each test replays one row of the issue's
# table against the real binary, asserts its bound (from both sides where it has two) and
# prints its measured figure.
import json
import os
import random
import select
import socket
import threading
import time

import pytest

from conftest import (ASAN, assert_alive, log_events, metric_value, parse_responses, report, rss_bound,
                      rss_mib, token_for)
from fakes.llm import llm_key
from rawfake import RawUpstream


# ---- client side (HTTP) ----
#
#   row 1   a header flood is cut at HTTP_MAX_HEADER_BYTES / HTTP_MAX_HEADERS with a 431 and
#           Connection: close; RSS grows < 1 MiB; a header block just under the caps passes
#   row 2   a request announcing a body is refused on its headers (no token, bad token,
#           route, method, size) at once (< 100 ms), without its body, with Connection:
#           close; a valid token has its body read; MAX_BUFFERED_BODY_BYTES answers 503
#   row 5   a client hanging up while its request waits on an upstream: the request is
#           abandoned within 1 s (the upstream sees its connection closed), logged 499
#   row 8   TRUST_PROXY: the Slack rate limit is keyed on the first untrusted address from
#           the right of X-Forwarded-For, never on the client-written left-most one
#   pipelining: a pipelined request line split at every byte, after a synchronous and
#           after an asynchronous (paused) answer, is routed exactly

HEADER_CAP = 32 * 1024
HEADER_COUNT_CAP = 100
FLOOD_BYTES = 96 * 1024 * 1024
ANSWER_BOUND_S = 0.1


def _head(path="/healthz", method="GET", total=None, nheaders=0, extra=b""):
    """A request head of exactly `total` bytes (request line to the empty line included),
    padded with X-Pad headers of at most 4 KiB each (libevhtp's own limit per line is 8 KiB),
    or with `nheaders` short headers."""
    start = b"%s %s HTTP/1.1\r\nHost: x\r\n" % (method.encode(), path.encode()) + extra
    lines = [b"X-H-%d: v\r\n" % i for i in range(nheaders)]
    head = start + b"".join(lines)
    if total is None:
        return head + b"\r\n"
    left = total - len(head) - 2
    i = 0
    while left > 0:
        # "X-Pad-i: " + value + CRLF; the value takes what is left (at most 4000 bytes)
        name = b"X-Pad-%d: " % i
        room = left - len(name) - 2
        if room < 1:  # too little left for a header line: widen the previous one instead
            raise AssertionError("cannot pad to %d" % total)
        take = min(room, 4000)
        if left - (len(name) + take + 2) in range(1, 16):
            take -= 16  # leave room for one more whole line
        head += name + b"a" * take + b"\r\n"
        left -= len(name) + take + 2
        i += 1
    head += b"\r\n"
    assert len(head) == total, (len(head), total)
    return head


def _exchange(port, payload, timeout=5.0, want=1):
    """Send payload and read `want` responses; after an answer with Connection: close, read
    on until the peer closes. Returns (responses, closed, seconds to the first byte)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    data = b""
    closed = False
    first = None
    t0 = time.monotonic()
    try:
        s.sendall(payload)
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            got = parse_responses(data)
            if len(got) >= want and got[-1].header("Connection") != "close":
                break
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            if first is None:
                first = time.monotonic() - t0
            data += chunk
    finally:
        s.close()
    return parse_responses(data), closed, first


def _flood(port, total=FLOOD_BYTES, max_seconds=20.0):
    """GET /healthz then endless X-Flood-n header lines, up to `total` bytes, reading at the
    same time. Returns (responses, bytes the kernel accepted, closed, seconds from the
    first flood byte to the answer)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setblocking(False)
    line = b"X-Flood-%d: " + b"a" * 1000 + b"\r\n"
    pending = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
    sent = 0
    n = 0
    data = b""
    closed = False
    answered = None
    t0 = time.monotonic()
    deadline = t0 + max_seconds
    try:
        while time.monotonic() < deadline and not closed:
            want_w = sent < total
            r, w, _ = select.select([s], [s] if want_w else [], [], 0.05)
            if r:
                try:
                    chunk = s.recv(65536)
                except (ConnectionResetError, BlockingIOError):
                    chunk = b""
                if not chunk:
                    closed = True
                    break
                data += chunk
                if answered is None:
                    answered = time.monotonic() - t0
            if w:
                while len(pending) < 65536:
                    pending += line % n
                    n += 1
                try:
                    k = s.send(pending)
                    sent += k
                    pending = pending[k:]
                except BlockingIOError:
                    pass
                except (BrokenPipeError, ConnectionResetError):
                    want_w = False
                    total = sent  # the service closed: stop sending, read what is left
            if not want_w and not r and answered is not None:
                break
    finally:
        s.close()
    return parse_responses(data), sent, closed, answered


def test_header_flood_cut_with_431_and_bounded_memory(service, fresh_db):
    env = {}
    if ASAN:  # ASan keeps freed blocks in a quarantine (256 MiB by default): keep it small here
        env["ASAN_OPTIONS"] = ":".join(o for o in (os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=1") if o)
    svc = service(db=fresh_db("faults_hostile"), **env)
    for _ in range(20):  # warm up: first-use allocations of the loop and libevhtp
        _exchange(svc.port, _head(total=HEADER_CAP - 64))
        _flood(svc.port, total=256 * 1024, max_seconds=5)
    rss_before = rss_mib(svc.pid)

    got, sent, closed, answered = _flood(svc.port)
    assert got and got[0].status == 431, "flood not cut with a 431: %r" % got
    assert got[0].header("Connection") == "close"
    body = got[0].json()
    assert body == {"message": "Request Header Fields Too Large", "data": "Request header fields too large"}, body
    assert closed, "the connection stays open after the 431"
    # 50 more floods, to show nothing accumulates
    for _ in range(50):
        g, _, _, _ = _flood(svc.port, total=1024 * 1024, max_seconds=5)
        assert g and g[0].status == 431, g
    rss_after = rss_mib(svc.pid)
    growth = rss_after - rss_before
    report("header flood: bytes the kernel took before the cut / RSS growth after 51 floods",
           "%.1f MiB / %.2f" % (sent / 1048576.0, growth), "MiB", "%.0f" % rss_bound(1))
    report("header flood: 431 after", answered, "s")
    assert growth < rss_bound(1), "RSS grew %.2f MiB under header floods (ASan=%s)" % (growth, ASAN)
    assert_alive(svc, "after the header floods")
    st, _, _ = svc.req("GET", "/healthz")
    assert st == 200


def test_header_caps_from_both_sides(service, fresh_db):
    svc = service(db=fresh_db("faults_hostile"))
    # bytes: the cap itself passes, one byte more is refused
    for total, want in ((HEADER_CAP - 512, 200), (HEADER_CAP, 200), (HEADER_CAP + 1, 431)):
        got, closed, _ = _exchange(svc.port, _head(total=total))
        assert got and got[0].status == want, (total, got)
        if want == 431:
            assert closed and got[0].header("Connection") == "close"
    # count: Host plus 99 more is 100 headers; one more is refused
    for n, want in ((HEADER_COUNT_CAP - 1, 200), (HEADER_COUNT_CAP, 431)):
        got, closed, _ = _exchange(svc.port, _head(nheaders=n))
        assert got and got[0].status == want, (n + 1, got)
    # the second request of a pipeline, after an answer given at once, is held to the caps too
    got, closed, _ = _exchange(svc.port, _head() + _head(nheaders=HEADER_COUNT_CAP), want=2)
    assert [g.status for g in got] == [200, 431], got
    got, closed, _ = _exchange(svc.port, _head() + _head(nheaders=HEADER_COUNT_CAP - 1), want=2)
    assert [g.status for g in got] == [200, 200], got
    # a block that never ends but stays under the cap is not refused (the idle timeout ends it)
    s = socket.create_connection(("127.0.0.1", svc.port), timeout=5)
    try:
        s.sendall(_head(total=HEADER_CAP - 200)[:-2])
        r, _, _ = select.select([s], [], [], 0.5)
        assert not r, "answered before the header block was complete"
    finally:
        s.close()
    # a configured cap
    small = service(db=fresh_db("faults_hostile"), HTTP_MAX_HEADER_BYTES="4096", HTTP_MAX_HEADERS="10")
    for total, want in ((4096, 200), (4097, 431)):
        got, _, _ = _exchange(small.port, _head(total=total))
        assert got and got[0].status == want, (total, got)
    for n, want in ((9, 200), (10, 431)):
        got, _, _ = _exchange(small.port, _head(nheaders=n))
        assert got and got[0].status == want, (n + 1, got)


def test_incomplete_headers_over_all_connections_are_capped(service, fresh_db, tokens):
    cap = 64 * 1024
    svc = service(db=fresh_db("faults_hostile"), MAX_BUFFERED_HEADER_BYTES=str(cap))
    part = _head(total=30 * 1024)[:-2]  # a header block without its final empty line
    socks = []
    try:
        for _ in range(2):
            s = socket.create_connection(("127.0.0.1", svc.port), timeout=5)
            s.sendall(part)
            socks.append(s)
        deadline = time.monotonic() + 2
        while metric_value(svc.port, "integrationsd_http_header_buffered_bytes") != 2 * len(part):
            assert time.monotonic() < deadline, "half-sent headers not counted"
            time.sleep(0.02)
        for s in socks:
            r, _, _ = select.select([s], [], [], 0.2)
            assert not r, "a half-sent header block within the cap was answered"
        t0 = time.monotonic()
        got, closed, first = _exchange(svc.port, part[:8 * 1024], timeout=3)
        assert got and got[0].status == 503 and closed, got
        assert got[0].header("Retry-After") == "1" and got[0].header("Connection") == "close"
        assert got[0].json() == {"message": "Service Unavailable",
                                 "error": "too many request headers in flight, retry later"}
        report("incomplete headers over MAX_BUFFERED_HEADER_BYTES (64 KiB): 503 after", first, "s")
        # a completed block gives its share back
        socks[0].sendall(b"\r\n")
        got, _ = _read_responses(socks[0], 1)
        assert got and got[0].status == 200, got
        deadline = time.monotonic() + 2
        while metric_value(svc.port, "integrationsd_http_header_buffered_bytes") != len(part):
            assert time.monotonic() < deadline, "header bytes not released"
            time.sleep(0.02)
        got, closed, _ = _exchange(svc.port, _head(total=20 * 1024), timeout=3)
        assert got and got[0].status == 200, got
        # a complete header block whose body is awaited no longer counts
        pad = _head(total=20 * 1024)[len(b"GET /healthz HTTP/1.1\r\nHost: x\r\n"):-2]
        s = socket.create_connection(("127.0.0.1", svc.port), timeout=5)
        socks.append(s)
        s.sendall(_post_head("/api/llm-keys", token=tokens.admin1, length=10, extra=pad))
        time.sleep(0.2)
        assert metric_value(svc.port, "integrationsd_http_header_buffered_bytes") == len(part)
    finally:
        for s in socks:
            s.close()
    deadline = time.monotonic() + 2
    while metric_value(svc.port, "integrationsd_http_header_buffered_bytes") != 0:
        assert time.monotonic() < deadline, "header bytes still counted after the clients left"
        time.sleep(0.02)


def _post_head(path, token=None, length=1048576, extra=b"", method="POST"):
    auth = b"Authorization: Bearer %s\r\n" % token.encode() if token else b""
    return (b"%s %s HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n"
            % (method.encode(), path.encode(), auth, length, extra))


def test_requests_refused_on_their_headers_without_the_body(service, fresh_db, tokens):
    svc = service(db=fresh_db("faults_hostile"), ALLOWED_ORIGINS="http://app.example")
    svc.req("GET", "/api/llm-keys", token=tokens.admin1)  # schema, tenant and member cache warm
    expired = token_for(1, 1, "Admin", expire_ms=int(time.time() * 1000) - 60000)
    cases = [
        ("no token", _post_head("/api/llm-keys"), 400, {"message": "Bad Request", "data": {"message": "Token not found"}}),
        ("bad signature", _post_head("/api/llm-keys", token=tokens.admin1[:-4] + "AAAA"), 401, None),
        ("unknown route", _post_head("/api/nothing-here", token=tokens.admin1), 404, None),
        ("wrong method", _post_head("/api/llm-keys/status", token=tokens.admin1), 405, None),
        ("too large", _post_head("/api/llm-keys", token=tokens.admin1, length=1048577), 413, None),
        ("form body", _post_head("/api/llm-keys", token=tokens.admin1).replace(
            b"application/json", b"application/x-www-form-urlencoded"), 415, None),
        ("CORS origin echoed", _post_head("/api/llm-keys", extra=b"Origin: http://app.example\r\n"), 400, None),
    ]
    if expired:
        cases.append(("expired", _post_head("/api/llm-keys", token=expired), 406, None))
    slowest = 0.0
    for label, head, status, body in cases:
        got, closed, first = _exchange(svc.port, head, timeout=3)
        assert got and got[0].status == status, (label, got)
        assert first is not None and first < ANSWER_BOUND_S, "%s: answered after %s s" % (label, first)
        assert got[0].header("Connection") == "close", (label, got[0].headers)
        assert closed, "%s: connection left open" % label
        if body is not None:
            assert got[0].json() == body, (label, got[0].json())
        if label == "CORS origin echoed":
            assert got[0].header("Access-Control-Allow-Origin") == "http://app.example"
        slowest = max(slowest, first)
    report("request refused on its headers (1 MiB body announced, not sent): slowest answer", slowest, "s",
           ANSWER_BOUND_S)

    # a valid token: the body is awaited (no answer without it), then read
    key = "sk-hostile-%08d" % random.randint(0, 10 ** 8)
    payload = json.dumps({"name": "OpenAI", "key": key, "model": "gpt-4o"}).encode()
    s = socket.create_connection(("127.0.0.1", svc.port), timeout=5)
    try:
        s.sendall(_post_head("/api/llm-keys", token=tokens.admin1, length=len(payload)))
        r, _, _ = select.select([s], [], [], 0.5)
        assert not r, "answered before the body of an authenticated request"
        s.sendall(payload)
        data = b""
        while not parse_responses(data):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        got = parse_responses(data)
        assert got and got[0].status == 201, data[:300]
        assert got[0].header("Connection") != "close"
    finally:
        s.close()
    # bodyless requests keep the normal pipeline (and their keep-alive connection)
    got, closed, _ = _exchange(svc.port, b"GET /api/llm-keys HTTP/1.1\r\nHost: x\r\n\r\n"
                                          b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", timeout=2, want=2)
    assert [g.status for g in got] == [400, 200], got


def test_request_body_budget_answers_503(service, fresh_db, tokens):
    budget = 2 * 1048576
    svc = service(db=fresh_db("faults_hostile"), MAX_BUFFERED_BODY_BYTES=str(budget))
    socks = []

    def announce():
        s = socket.create_connection(("127.0.0.1", svc.port), timeout=5)
        socks.append(s)
        s.sendall(_post_head("/api/llm-keys", token=tokens.admin1, length=1048576))
        r, _, _ = select.select([s], [], [], 0.3)
        if not r:
            return s, None
        t0 = time.monotonic()
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return s, (parse_responses(data), time.monotonic() - t0)

    try:
        a, ra = announce()
        b, rb = announce()
        assert ra is None and rb is None, "a body within the budget was refused: %r %r" % (ra, rb)
        assert metric_value(svc.port, "integrationsd_http_body_buffered_bytes") == budget
        t0 = time.monotonic()
        _, rc = announce()
        assert rc is not None, "a body over the budget was awaited"
        got = rc[0]
        assert got and got[0].status == 503, got
        assert got[0].json() == {"message": "Service Unavailable",
                                 "error": "too many request bodies in flight, retry later"}
        assert got[0].header("Retry-After") == "1" and got[0].header("Connection") == "close"
        report("body budget: 503 after", time.monotonic() - t0 - 0.3 if time.monotonic() - t0 > 0.3 else 0.0, "s")
        a.close()
        deadline = time.monotonic() + 2
        while metric_value(svc.port, "integrationsd_http_body_buffered_bytes") != 1048576:
            assert time.monotonic() < deadline, "budget not released when a client left"
            time.sleep(0.02)
        _, rd = announce()
        assert rd is None, "refused after the budget was released: %r" % (rd,)
        # a body read and answered gives its share back (the connection stays open)
        b.sendall(b"x" * 1048576)
        got, _ = _read_responses(b, 1)
        assert got and got[0].status == 400 and got[0].header("Connection") != "close", got
        deadline = time.monotonic() + 2
        while metric_value(svc.port, "integrationsd_http_body_buffered_bytes") != 1048576:
            assert time.monotonic() < deadline, "budget not released after an answered request"
            time.sleep(0.02)
    finally:
        for s in socks:
            s.close()
    deadline = time.monotonic() + 2
    while metric_value(svc.port, "integrationsd_http_body_buffered_bytes") != 0:
        assert time.monotonic() < deadline, "budget still held after every client left"
        time.sleep(0.02)


@pytest.fixture
def stalling_upstream():
    f = RawUpstream(max_conn_seconds=30).start()
    try:
        yield f
    finally:
        f.close()


def test_client_hangup_abandons_request_and_cancels_upstream(service, fresh_db, tokens, stalling_upstream):
    up = stalling_upstream
    svc = service(db=fresh_db("faults_hostile"), OPENAI_API_URL=up.url + "/v1")
    st, _, data = svc.req("POST", "/api/llm-keys", token=tokens.admin1,
                          body={"name": "OpenAI", "key": llm_key("OpenAI", "STALL"), "model": "gpt-4o"})
    assert st == 201, data
    kid = data["data"]["id"]
    path = "/api/llm-keys/%s/verify" % kid
    s = socket.create_connection(("127.0.0.1", svc.port), timeout=5)
    s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 0\r\n\r\n"
              % (path.encode(), tokens.admin1.encode()))
    assert up.wait_connections("STALL", 1, 5), "the verify call never reached the upstream"
    time.sleep(1.0)
    # from below: while the client waits, the call is not cut
    rec = up.records("STALL")[0]
    assert rec["ended"] is None, "the upstream call ended while its client still waited: %r" % rec
    t0 = time.monotonic()
    s.close()
    deadline = t0 + 3
    while time.monotonic() < deadline and up.records("STALL")[0]["ended"] is None:
        time.sleep(0.01)
    rec = up.records("STALL")[0]
    assert rec["ended"] is not None, "the upstream connection outlived its client"
    cut = rec["ended"] - t0
    report("client hang-up: upstream connection closed after", cut, "s", 1.0)
    assert cut < 1.0, "upstream connection closed %.2f s after the hang-up" % cut
    assert rec["outcome"] == "peer-closed", rec
    # logged and counted 499, never 200
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and not [e for e in log_events(svc, "request") if e.get("path") == path]:
        time.sleep(0.02)
    lines = [e for e in log_events(svc, "request") if e.get("path") == path]
    assert [e["status"] for e in lines] == [499], lines
    assert metric_value(svc.port, "integrationsd_http_requests_total",
                        {"route": "llm_keys_verify", "status": "499"}) == 1
    assert metric_value(svc.port, "integrationsd_http_requests_total",
                        {"route": "llm_keys_verify", "status": "200"}) == 0
    assert metric_value(svc.port, "integrationsd_http_pending") == 1  # the /metrics request itself
    assert_alive(svc, "after the hang-up")


def _slack_create(svc, xff, token):
    st, _, _ = svc.req("POST", "/api/slackWebhooks", {"code": ""}, token=token, headers={"X-Forwarded-For": xff})
    return st


def _rand_ip():
    return "10.%d.%d.%d" % (random.randint(0, 255), random.randint(0, 255), random.randint(1, 254))


def test_rate_limit_keyed_on_the_trusted_client_address(service, fresh_db, tokens):
    limit = 10
    # TRUST_PROXY=true: one proxy; the right-most entry is the client, whatever the client
    # wrote on the left
    svc = service(db=fresh_db("faults_hostile"), REDIS_URL="", TRUST_PROXY="true")
    client = "203.0.113.%d" % random.randint(1, 254)
    for i in range(limit):
        st = _slack_create(svc, "%s, %s" % (_rand_ip(), client), tokens.admin1)
        assert st != 429, "limited after %d requests" % i
    assert _slack_create(svc, "%s, %s" % (_rand_ip(), client), tokens.admin1) == 429
    # the left-most entry of the limited requests is not the key: another right-most is free
    assert _slack_create(svc, "%s, %s" % (client, "203.0.113.255"), tokens.admin1) != 429
    # a list of trusted proxies: the first untrusted address from the right
    svc2 = service(db=fresh_db("faults_hostile"), REDIS_URL="", TRUST_PROXY="127.0.0.1, 10.0.0.0/8")
    client2 = "198.51.100.%d" % random.randint(1, 254)
    for i in range(limit):
        st = _slack_create(svc2, "%s, %s, %s" % (_rand_ip(), client2, _rand_ip()), tokens.admin1)
        assert st != 429, "limited after %d requests" % i
    assert _slack_create(svc2, "6.6.6.6, %s, 10.0.0.1" % client2, tokens.admin1) == 429
    assert _slack_create(svc2, "%s, 198.51.100.255, 10.0.0.1" % client2, tokens.admin1) != 429
    report("rate limit key", "right-most untrusted X-Forwarded-For address (%d requests, then 429)" % limit)


def _read_responses(s, n, timeout=5.0):
    data = b""
    deadline = time.monotonic() + timeout
    while len(parse_responses(data)) < n and time.monotonic() < deadline:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
    return parse_responses(data), data


def test_pipelined_request_line_split_after_an_answer(service, fresh_db, tokens):
    """The second request of a pipeline arrives with only part of its request line when the
    first is answered (at once, or later from the database): every split point must still
    reach the exact path."""
    svc = service(db=fresh_db("faults_hostile"))
    firsts = {
        "sync": b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        "paused": b"GET /api/llm-keys/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
                  % tokens.admin1.encode(),
    }
    line = b"GET /no/such/path-0123456789?q=1 HTTP/1.1\r\n"
    want = b"Cannot GET /no/such/path-0123456789\""
    bad = []
    for label, first in firsts.items():
        s = socket.create_connection(("127.0.0.1", svc.port), timeout=5)
        try:
            for cut in range(0, len(line)):
                s.sendall(first + line[:cut])
                got, data = _read_responses(s, 1)
                if not got or got[0].status != 200:
                    bad.append((label, cut, "first", data[:200]))
                    break
                time.sleep(0.01)
                s.sendall(line[cut:] + b"Host: x\r\n\r\n")
                got, data = _read_responses(s, 1)
                if not got or got[0].status != 404 or want not in got[0].body:
                    bad.append((label, cut, line[:cut], data[:200]))
                    break
        finally:
            s.close()
    report("pipelined request line split after an answer", "%d split points x 2 (sync, paused)" % len(line))
    assert not bad, "pipelined request misrouted: %r" % bad


def test_event_loop_lag_is_observable(service, fresh_db):
    """A 50 ms timer measures how late it runs: a histogram on /metrics, and a warning when
    the loop was held over 100 ms (here: the process stopped for 250 ms)."""
    import signal
    svc = service(db=fresh_db("faults_hostile"))
    time.sleep(0.3)
    count = metric_value(svc.port, "integrationsd_event_loop_lag_ms_count")
    assert count >= 3, "no lag samples after 0.3 s: %s" % count
    late_before = count - metric_value(svc.port, "integrationsd_event_loop_lag_ms_bucket", {"le": "100"})
    warned_before = len(log_events(svc, "event loop stalled"))
    os.kill(svc.pid, signal.SIGSTOP)
    time.sleep(0.25)
    os.kill(svc.pid, signal.SIGCONT)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and len(log_events(svc, "event loop stalled")) == warned_before:
        time.sleep(0.02)
    warned = log_events(svc, "event loop stalled")
    assert len(warned) > warned_before, "no warning after a 250 ms stall"
    assert warned[-1]["level"] == "warn"
    count = metric_value(svc.port, "integrationsd_event_loop_lag_ms_count")
    late = count - metric_value(svc.port, "integrationsd_event_loop_lag_ms_bucket", {"le": "100"})
    assert late > late_before, "the stall is not in the histogram"
    report("event loop lag: warning after a 250 ms stop", warned[-1]["msg"])


def test_queued_statements_of_abandoned_requests_are_dropped(service, fresh_db, pg, tokens):
    """With the one database connection's pipeline full (its backend stopped), a further
    request's statement waits in the pool's queue; when its client hangs up, the statement
    is dropped unsent once the database answers again, and the request is logged 499."""
    import signal
    from conftest import Db
    db = fresh_db("faults_hostile")
    svc = service(db=db, DB_POOL_SIZE="1", AUTH_CACHE_MS="60000")
    st, _, _ = svc.req("GET", "/api/llm-keys", token=tokens.admin1)  # member cache and tenant warm
    assert st == 200
    dbh = Db(pg, db)
    pids = [r["pid"] for r in dbh.rows("SELECT pid FROM pg_stat_activity WHERE application_name = 'integrationsd' "
                                   "AND datname = current_database()")]
    dbh.close()
    assert len(pids) == 1, pids
    depth = 64  # the pool's pipeline depth per connection
    head = b"GET /api/llm-keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n" % tokens.admin1.encode()
    socks = []
    os.kill(pids[0], signal.SIGSTOP)
    try:
        for _ in range(depth + 3):
            s = socket.create_connection(("127.0.0.1", svc.port), timeout=5)
            s.sendall(head)
            socks.append(s)
        deadline = time.monotonic() + 5
        while metric_value(svc.port, "integrationsd_db_queue_depth") < 3:
            assert time.monotonic() < deadline, "no statement queued behind the full pipeline"
            time.sleep(0.05)
        for s in socks[-3:]:  # the last three are queued: their clients leave
            s.close()
        deadline = time.monotonic() + 2
        while metric_value(svc.port, "integrationsd_http_requests_total", {"route": "llm_keys_list", "status": "499"}) < 3:
            assert time.monotonic() < deadline, "hang-ups not noticed while the database is stopped"
            time.sleep(0.02)
    finally:
        os.kill(pids[0], signal.SIGCONT)
    answered = 0
    for s in socks[:-3]:
        got, _ = _read_responses(s, 1, timeout=10)
        answered += bool(got and got[0].status == 200)
        s.close()
    assert answered == depth, "%d of %d waiting requests answered" % (answered, depth)
    dropped = metric_value(svc.port, "integrationsd_db_dropped_total")
    report("statements of abandoned requests dropped unsent", "%d of 3" % dropped)
    assert dropped == 3, dropped
    assert metric_value(svc.port, "integrationsd_db_queue_depth") == 0
