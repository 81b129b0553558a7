# Hostile clients, tenants and upstreams (issue 10): every resource a client, tenant or
# upstream can make the service hold is bounded. Each test replays one row of the issue's
# table against the real binary, asserts its bound (from both sides where it has two) and
# prints its measured figure.
import http.server
import json
import os
import random
import select
import shutil
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time

import pytest

from conftest import (ASAN, assert_alive, log_events, metric_value, new_key, parse_responses, report, rss_bound,
                      rss_mib, token_for)
from fakes.llm import llm_key
from fakes.slack import FakeSlack
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


# A waiting request's socket is still read, and the hang-up arrives as end-of-file; a client
# that sent bytes ahead has its reads stopped, and the hang-up is then watched on the socket.
@pytest.mark.parametrize("ahead", [b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"], ids=["plain", "bytes-ahead"])
def test_client_hangup_abandons_request_and_cancels_upstream(service, fresh_db, tokens, stalling_upstream, ahead):
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
    if ahead:
        s.sendall(ahead)
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
    # A stall of its own (a loaded machine) warns too, and further warnings within a second
    # are folded into the next one: start from a second without any.
    quiet_since, warned_before = time.monotonic(), len(log_events(svc, "event loop stalled"))
    while time.monotonic() - quiet_since < 1.1:
        time.sleep(0.05)
        n = len(log_events(svc, "event loop stalled"))
        if n != warned_before:
            quiet_since, warned_before = time.monotonic(), n
    count = metric_value(svc.port, "integrationsd_event_loop_lag_ms_count")
    late_before = count - metric_value(svc.port, "integrationsd_event_loop_lag_ms_bucket", {"le": "100"})
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


def _warm_pool(service, fresh_db, pg, tokens, size):
    """A service with a pool of `size` connections, all live, the member cache and the
    tenant warm (a read is one statement), no read cache; and its backends' pids, the first
    connection's first (idle ties go to it)."""
    from conftest import Db
    db = fresh_db("faults_hostile")
    svc = service(db=db, DB_POOL_SIZE=str(size), AUTH_CACHE_MS="60000", CACHE_BYTES="0")
    deadline = time.monotonic() + 10
    while metric_value(svc.port, "integrationsd_cache_listen_up") != 1:
        assert time.monotonic() < deadline, "the LISTEN connection did not come up"
        time.sleep(0.05)
    assert svc.req("GET", "/api/llm-keys", token=tokens.admin1)[0] == 200
    svc.wait_pool_full()
    dbh = Db(pg, db)
    pids = [r["pid"] for r in dbh.rows("SELECT pid FROM pg_stat_activity WHERE application_name = 'integrationsd' "
                                   "AND datname = current_database() AND query NOT LIKE 'LISTEN%' "
                                   "ORDER BY backend_start")]
    dbh.close()
    assert len(pids) == size, pids
    return svc, pids


def test_queued_statements_of_abandoned_requests_are_dropped(service, fresh_db, pg, tokens):
    """With the one database connection's pipeline full (its backend stopped), a further
    request's statement waits in the pool's queue; when its client hangs up, the statement
    is dropped unsent once the database answers again, and the request is logged 499."""
    import signal
    svc, pids = _warm_pool(service, fresh_db, pg, tokens, 1)
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


def _send(svc, method, path, token):
    s = socket.create_connection(("127.0.0.1", svc.port), timeout=5)
    s.sendall(b"%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
              % (method.encode(), path.encode(), token.encode()))
    return s


def test_reads_are_not_packed_behind_a_stopped_backend(service, fresh_db, pg, tokens):
    """The pool packs new reads onto a connection that is answering promptly (one backend
    kept busy costs less than several woken), but never onto one whose oldest statement has
    waited: with the first connection's backend stopped and one read stuck on it, every
    later read is answered by the other connection."""
    import signal
    svc, pids = _warm_pool(service, fresh_db, pg, tokens, 2)
    socks, stuck, answered = [], [], 0
    os.kill(pids[0], signal.SIGSTOP)
    try:
        for _ in range(6):
            s = _send(svc, "GET", "/api/llm-keys", tokens.admin1)
            socks.append(s)
            got, _ = _read_responses(s, 1, timeout=1.0)
            if got:
                assert got[0].status == 200, got[0].status
                answered += 1
            else:
                stuck.append(s)
    finally:
        os.kill(pids[0], signal.SIGCONT)
    report("reads answered while one backend is stopped", "%d of 6 (%d waited for it)" % (answered, len(stuck)))
    assert len(stuck) == 1, "%d reads waited behind the stopped backend" % len(stuck)
    for s in stuck:
        got, _ = _read_responses(s, 1, timeout=10)
        assert got and got[0].status == 200
    for s in socks:
        s.close()


def test_reads_are_not_packed_behind_a_write(service, fresh_db, pg, tokens):
    """A read sent together with a write is not packed behind it (a commit waits for its WAL
    flush): with the first connection's backend stopped and a DELETE on it, a GET sent
    at the same moment is answered by the other connection."""
    import signal
    svc, pids = _warm_pool(service, fresh_db, pg, tokens, 2)
    st, _, d = svc.req("POST", "/api/llm-keys", token=tokens.admin1,
                       body={"name": "OpenAI", "key": new_key("sk-pack-"), "model": "gpt-4o"})
    assert st == 201, d
    os.kill(pids[0], signal.SIGSTOP)
    try:
        w = _send(svc, "DELETE", "/api/llm-keys/%d" % d["data"]["id"], tokens.admin1)
        r = _send(svc, "GET", "/api/llm-keys", tokens.admin1)
        got, _ = _read_responses(r, 1, timeout=1.0)
        assert got and got[0].status == 200, "the read waited behind the write on the stopped backend"
        assert not _read_responses(w, 1, timeout=0.2)[0], "the write was not on the stopped backend"
    finally:
        os.kill(pids[0], signal.SIGCONT)
    got, _ = _read_responses(w, 1, timeout=10)
    assert got and got[0].status == 200, got
    w.close()
    r.close()


# ---- upstreams and tenants ----
#
# Rows 3, 4, 6, 7 and 9 of the issue, as an Editor/Auditor (or no one) would try them:
#   3  an MLflow server answering with a 24 MiB page of empty objects, a 4 MiB one (just
#      inside MLFLOW_PAGE_MAX_BYTES), a 1,000,000-experiment listing and 64-deep nesting:
#      /test, /sync and /models?refresh=true each end with a recorded error ("partial" when
#      other pages landed) naming the budget; peak RSS (VmHWM, reset before each case) stays
#      under 64 MiB above idle; /healthz on another connection answers within 100 ms
#      throughout.
#   9  a runs page against a large experiment listing (hash lookup, not a scan per run):
#      /healthz within 100 ms throughout the sync.
#   4  an Auditor's POST /api/notifications (with and without the Admin's user_id) posts
#      nothing into the Admin's channel and reveals no webhook count.
#   6  the Admin's stored MLflow token never reaches a self-signed server when a member
#      tests the stored URL with verifySsl false; verifySsl is part of the tested fingerprint.
#   7  with the default OUTBOUND_DENY_CIDRS, zero TCP connections reach a loopback port for
#      0.0.0.0, [::], 127.0.0.1, localhost and [::ffff:127.0.0.1]; the error names no address.
# Every loop is bounded in count and time.

MLFLOW = "/api/integrations/mlflow"
API = "/api/2.0/mlflow"
HEALTHZ_BOUND_S = 0.100  # x5 for an ASan build
RSS_ABOVE_IDLE_MIB = 64
LOOPBACK_ALLOWED = "169.254.0.0/16,fe80::/10"


def _vm(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    raise AssertionError("no %s for pid %d" % (field, pid))


def reset_peak(pid):
    """Reset VmHWM to the current RSS (clear_refs 5), so the next read is this case's peak."""
    with open("/proc/%d/clear_refs" % pid, "w") as f:
        f.write("5")


_PROBER = r"""
import json, socket, sys, threading, time
port, every = int(sys.argv[1]), float(sys.argv[2])
halt = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), halt.set()), daemon=True).start()
worst, count, failures = 0.0, 0, []
deadline = time.monotonic() + 120
while not halt.is_set() and time.monotonic() < deadline:
    t0 = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        if not data.startswith(b"HTTP/1.1 200"):
            failures.append(repr(data[:80]))
    except OSError as e:
        failures.append(repr(e))
    worst = max(worst, time.monotonic() - t0)
    count += 1
    halt.wait(every)
print(json.dumps({"worst": worst, "count": count, "failures": failures[:3]}))
"""


class HealthProber:
    """GET /healthz on a fresh connection every 20 ms from a process of its own (so the
    fakes' threads in this process cannot delay it); keeps the slowest answer."""

    def __init__(self, port, every=0.02):
        self.port, self.every = port, every
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([sys.executable, "-c", _PROBER, str(self.port), str(self.every)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        time.sleep(0.1)

    def stop(self):
        out, _ = self.proc.communicate(b"", timeout=30)
        r = json.loads(out)
        assert not r["failures"], r["failures"]
        assert r["count"] > 0
        return r["worst"]


class Upstream:
    """An HTTP(S) server on loopback answering each path with what `routes` says:
    routes[path] = bytes, or a function (path, body) -> bytes. Records every request."""

    def __init__(self, routes, tls=None):
        self.routes = routes
        self.requests = []
        up = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _answer(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                path = self.path.split("?", 1)[0]
                up.requests.append({"path": path, "headers": dict(self.headers.items()), "body": body})
                r = up.routes.get(path, b'{"error_code":"ENDPOINT_NOT_FOUND"}')
                data = r(path, body) if callable(r) else r
                self.send_response(200 if path in up.routes else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = _answer

        class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.srv = S(("127.0.0.1", 0), H)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
        self.port = self.srv.server_address[1]
        self.url = "%s://127.0.0.1:%d" % ("https" if tls else "http", self.port)
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def _wait_sync(svc, token, sync_id, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st, _, d = svc.req("GET", MLFLOW + "/sync-history", token=token)
        assert st == 200, d
        for h in d["data"]:
            if h["id"] == sync_id and h["status"] != "running":
                return h
        time.sleep(0.05)
    raise AssertionError("sync %s did not finish within %s s" % (sync_id, timeout))


def _configure(svc, token, url, **kw):
    body = {"trackingServerUrl": url, "authMethod": "none", "timeout": 10, "verifySsl": True}
    body.update(kw)
    st, _, d = svc.req("POST", MLFLOW + "/configure", body, token=token)
    assert st == 200, d
    return d


def _bomb_pages():
    empty24 = b'{"experiments":[' + b",".join([b"{}"] * (24 * 1024 * 1024 // 3)) + b"]}"
    empty4 = b'{"experiments":[' + b",".join([b"{}"] * (4 * 1024 * 1024 // 3 - 8)) + b"]}"
    million = (b'{"experiments":[' + b",".join(b'{"experiment_id":"%d","name":"e%d"}' % (i, i)
                                                for i in range(1000000)) + b'],"next_page_token":"t"}')
    deep = b'{"experiments":[' + b"[" * 64 + b"]" * 64 + b"]}"
    # case: (page, the budget variable the recorded message must name)
    return {"24 MiB of empty objects": (empty24, "MLFLOW_PAGE_MAX_BYTES"),
            "4 MiB of empty objects": (empty4, "MLFLOW_PAGE_MAX_VALUES"),
            "1,000,000-experiment listing": (million, "MLFLOW_PAGE_MAX_BYTES"),
            "64-deep nesting": (deep, "MLFLOW_PAGE_MAX_DEPTH")}


def test_mlflow_page_bombs_bounded(service, fresh_db):
    """Row 3: every MLflow bomb ends as a recorded error naming the budget, in bounded memory,
    and the loop keeps answering /healthz."""
    db = fresh_db("hostile_mlflow_bombs")
    svc = service(db=db, OUTBOUND_DENY_CIDRS=LOOPBACK_ALLOWED)
    editor = token_for(2, 1, "Editor")
    pages = _bomb_pages()
    current = {"page": b"{}"}
    bomb = lambda path, body: current["page"]  # noqa: E731
    up = Upstream({API + "/experiments/search": bomb, API + "/runs/search": bomb,
                   API + "/registered-models/search": bomb, API + "/model-versions/search": bomb})
    try:
        _configure(svc, editor, up.url)
        st, _, d = svc.req("GET", MLFLOW + "/config", token=editor)  # warm up
        idle = _vm(svc.pid, "VmRSS")
        report("RSS idle before the MLflow bombs", idle, "MiB")
        for name, (page, variable) in pages.items():
            current["page"] = page
            reset_peak(svc.pid)
            prober = HealthProber(svc.port)
            prober.start()
            t0 = time.monotonic()
            # /test: reads at most 1 MiB, does not parse
            st, _, d = svc.req("POST", MLFLOW + "/test", {"trackingServerUrl": up.url, "authMethod": "none"},
                               token=editor, timeout=30)
            assert st in (200, 400), (name, st, d)
            # /sync: the page ends the step as a recorded error naming the budget
            st, _, d = svc.req("POST", MLFLOW + "/sync", token=editor)
            assert st == 202, (name, d)
            h = _wait_sync(svc, editor, d["data"]["syncId"])
            assert h["status"] in ("error", "partial"), (name, h)
            assert "over the budget" in (h["message"] or "") and variable in h["message"], (name, h)
            # /models?refresh=true: syncs first, answers without hanging
            st, _, d = svc.req("GET", MLFLOW + "/models?refresh=true", token=editor, timeout=60)
            assert st in (200, 400, 500, 502, 503), (name, st, d)
            wall = time.monotonic() - t0
            worst = prober.stop()
            peak = _vm(svc.pid, "VmHWM")
            report("MLflow bomb (%s): peak RSS above idle" % name, peak - idle, "MiB",
                   "%.0f" % rss_bound(RSS_ABOVE_IDLE_MIB))
            report("MLflow bomb (%s): slowest /healthz" % name, worst * 1000, "ms", "%.0f" % (HEALTHZ_BOUND_S * 1000))
            report("MLflow bomb (%s): /test + /sync + /models?refresh=true" % name, wall, "s")
            assert peak - idle < rss_bound(RSS_ABOVE_IDLE_MIB), (name, peak, idle)
            assert worst < HEALTHZ_BOUND_S * (5 if ASAN else 1), (name, worst)
            assert_alive(svc, "after the MLflow bomb %s" % name)
        st, _, d = svc.req("GET", MLFLOW + "/sync-status", token=editor)
        assert st == 200 and "over the budget" in d["data"]["lastSyncMessage"], d
        # the other side of the byte bound: a page just inside it (few values, long strings) syncs
        big_names = [{"experiment_id": str(i), "name": "n%d-" % i + "x" * 40000} for i in range(100)]
        inside = json.dumps({"experiments": big_names}).encode()
        assert 3.5 * 1024 * 1024 < len(inside) < 4 * 1024 * 1024
        up.routes[API + "/experiments/search"] = inside
        up.routes[API + "/runs/search"] = b'{"runs":[]}'
        up.routes[API + "/registered-models/search"] = b"{}"
        up.routes[API + "/model-versions/search"] = b"{}"
        st, _, d = svc.req("POST", MLFLOW + "/sync", token=editor)
        assert st == 202, d
        h = _wait_sync(svc, editor, d["data"]["syncId"])
        assert h["status"] == "success", h
    finally:
        up.close()


def _experiments(n):
    return [{"experiment_id": str(i), "name": "exp-%d" % i, "artifact_location": "s3://b/%d" % i}
            for i in range(n)]


def test_mlflow_partial_when_one_page_over_budget(service, fresh_db):
    """Row 3: a bomb in one experiment's runs ends the sync "partial", the rest landed."""
    db = fresh_db("hostile_mlflow_partial")
    svc = service(db=db, OUTBOUND_DENY_CIDRS=LOOPBACK_ALLOWED)
    editor = token_for(2, 1, "Editor")
    bomb = b'{"runs":[' + b",".join([b"{}"] * 200000) + b"]}"

    def runs(path, body):
        ids = json.loads(body)["experiment_ids"]
        if "1" in ids:
            return bomb
        return json.dumps({"runs": [{"info": {"run_id": "run-%s" % i, "experiment_id": i, "status": "FINISHED",
                                              "start_time": 1718000000000},
                                     "data": {"tags": [{"key": "mlflow.runName", "value": "r" + i}]}}
                                    for i in ids]}).encode()
    up = Upstream({API + "/experiments/search": json.dumps({"experiments": _experiments(3)}).encode(),
                   API + "/runs/search": runs, API + "/registered-models/search": b"{}",
                   API + "/model-versions/search": b"{}"})
    try:
        _configure(svc, editor, up.url)
        st, _, d = svc.req("POST", MLFLOW + "/sync", token=editor)
        assert st == 202, d
        h = _wait_sync(svc, editor, d["data"]["syncId"])
        report("MLflow one page over budget: outcome", h["status"])
        assert h["status"] == "partial", h
        assert "1 of 3 experiment(s)" in h["message"] and "more than 20000 JSON values" in h["message"], h
        # the oversized page was asked again with fewer runs before it counted as failed
        sizes = [json.loads(r["body"])["max_results"] for r in up.requests if r["path"] == API + "/runs/search"]
        assert 50 in sizes and 1 in sizes, sizes
        assert "MLFLOW_PAGE_MAX_VALUES" in h["message"], h
    finally:
        up.close()


def test_mlflow_runs_against_large_listing_stay_on_budget(service, fresh_db):
    """Row 9: each run finds its experiment by hash: 2,000 runs in one page against a
    6,600-experiment listing (all runs in the last experiment; both pages just inside the
    value budget, from a server that ignores max_results) keep /healthz within 100 ms."""
    db = fresh_db("hostile_mlflow_listing")
    svc = service(db=db, OUTBOUND_DENY_CIDRS=LOOPBACK_ALLOWED)
    editor = token_for(2, 1, "Editor")
    n_exp, n_runs = 3000, 1500  # pages of 9,000 and 13,500 values (MLFLOW_PAGE_MAX_VALUES: 20,000)
    last = str(n_exp - 1)
    exps = json.dumps({"experiments": [{"experiment_id": str(i), "name": "e"} for i in range(n_exp)]}).encode()
    big_runs = json.dumps({"runs": [{"info": {"run_id": "r%d" % i, "experiment_id": last},
                                     "data": {"tags": [{"key": "mlflow.runName", "value": "n%d" % i}]}}
                                    for i in range(n_runs)]}).encode()

    def runs(path, body):
        return big_runs if "0" in json.loads(body)["experiment_ids"] else b'{"runs":[]}'
    up = Upstream({API + "/experiments/search": exps, API + "/runs/search": runs,
                   API + "/registered-models/search": b"{}", API + "/model-versions/search": b"{}"})
    try:
        _configure(svc, editor, up.url)
        prober = HealthProber(svc.port)
        prober.start()
        t0 = time.monotonic()
        st, _, d = svc.req("POST", MLFLOW + "/sync", token=editor)
        assert st == 202, d
        h = _wait_sync(svc, editor, d["data"]["syncId"], timeout=120)
        wall = time.monotonic() - t0
        worst = prober.stop()
        report("MLflow %d runs x %d experiments: sync" % (n_runs, n_exp), wall, "s")
        report("MLflow %d runs x %d experiments: slowest /healthz" % (n_runs, n_exp), worst * 1000, "ms",
               "%.0f" % (HEALTHZ_BOUND_S * 1000))
        assert h["status"] == "success", h
        assert worst < HEALTHZ_BOUND_S * (5 if ASAN else 1), worst
    finally:
        up.close()


def test_auditor_notification_reaches_nothing_of_the_admins(service, fresh_db):
    """Row 4: an Auditor's notification, with or without the Admin's user_id, posts nothing to
    the Admin's channel and reveals no count."""
    fake = FakeSlack().start()
    try:
        db = fresh_db("hostile_notify")
        env = {"SLACK_API_URL": fake.url + "/api/oauth.v2.access", "SLACK_API_BASE": fake.url + "/api",
               "SLACK_CLIENT_ID": "cid-hostile", "SLACK_CLIENT_SECRET": "csecret-hostile-0123456789"}
        svc = service(db=db, OUTBOUND_DENY_CIDRS=LOOPBACK_ALLOWED, TRUST_PROXY="true", **env)
        admin, auditor = token_for(1, 1, "Admin"), token_for(6, 1, "Auditor")
        code, inst = fake.install()
        st, _, d = svc.req("POST", "/api/slackWebhooks", {"code": code}, token=admin,
                           headers={"X-Forwarded-For": "10.9.8.7"})
        assert st == 201, d
        routing = "Policy reminders and status"
        st, _, d = svc.req("PATCH", "/api/slackWebhooks/%d" % d["data"]["id"], {"routing_type": [routing]},
                           token=admin)
        assert st == 202, d
        answers = []
        for extra in ({}, {"user_id": 1}):
            body = dict({"routing_type": routing, "title": "from the auditor", "message": "m"}, **extra)
            st, _, d = svc.req("POST", "/api/notifications", body, token=auditor)
            answers.append((st, d.get("data")))
        # the control: the Admin's own notification does arrive
        st, _, d = svc.req("POST", "/api/notifications", {"routing_type": routing, "title": "from the admin",
                                                          "message": "m"}, token=admin)
        assert st == 202 and d["data"]["matched"] == 1, d
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not fake.messages_for(inst.channel_id):
            time.sleep(0.05)
        time.sleep(1.5)
        titles = [m["body"]["blocks"][0]["text"]["text"] for m in fake.messages_for(inst.channel_id)]
        report("Auditor notifications posted into the Admin's channel", titles.count("from the auditor"), "", "0")
        assert answers[0] == (202, {"matched": 0, "queued": 0, "duplicates": 0}), answers
        assert answers[1][0] == 403, answers
        assert titles == ["from the admin"], titles
    finally:
        fake.close()


@pytest.fixture
def self_signed(tmp_path):
    openssl = shutil.which("openssl") or "/usr/bin/openssl"
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    return cert, key


def test_stored_token_never_sent_without_verification(service, fresh_db, self_signed):
    """Row 6: the Admin's stored token (saved with verifySsl true) never reaches a self-signed
    server, and a test with verifySsl false is not the tested configuration of verifySsl true."""
    db = fresh_db("hostile_verify_ssl")
    svc = service(db=db, OUTBOUND_DENY_CIDRS=LOOPBACK_ALLOWED)
    admin, auditor = token_for(1, 1, "Admin"), token_for(6, 1, "Auditor")
    up = Upstream({API + "/experiments/search": b'{"experiments":[]}'}, tls=self_signed)
    stored = "stored-token-" + os.urandom(8).hex()
    own = "callers-own-token-" + os.urandom(8).hex()
    try:
        _configure(svc, admin, up.url, authMethod="token", apiToken=stored, verifySsl=True)
        # the member's insecure test of the stored URL without a token: refused before any call
        st, _, d = svc.req("POST", MLFLOW + "/test", {"trackingServerUrl": up.url, "authMethod": "token",
                                                      "verifySsl": False}, token=auditor)
        assert st == 400 and "verifySsl" in d["error"], d
        seen_before = len(up.requests)
        # with verification (the stored way): the handshake fails, nothing is sent
        st, _, d = svc.req("POST", MLFLOW + "/test", {"trackingServerUrl": up.url, "authMethod": "token"},
                           token=auditor)
        assert st == 400, d
        # insecure with the caller's own token: allowed, and only that token is sent
        st, _, d = svc.req("POST", MLFLOW + "/test", {"trackingServerUrl": up.url, "authMethod": "token",
                                                      "apiToken": own, "verifySsl": False}, token=admin)
        assert st == 200 and d["success"] is True, d
        auths = [r["headers"].get("Authorization", "") for r in up.requests]
        leaked = [a for a in auths if stored in a]
        report("stored MLflow token seen by a self-signed server", len(leaked), "", "0")
        assert not leaked, auths
        assert seen_before == 0 and any(own in a for a in auths), auths
        # verifySsl is part of the fingerprint: saving verifySsl true after an insecure test
        # of the same URL and token does not inherit that test's success
        _configure(svc, admin, up.url, authMethod="token", apiToken=own, verifySsl=True)
        st, _, d = svc.req("GET", MLFLOW + "/config", token=admin)
        assert st == 200 and d["config"]["lastTestStatus"] is None, d
        _configure(svc, admin, up.url, authMethod="token", apiToken=own, verifySsl=False)
        st, _, d = svc.req("GET", MLFLOW + "/config", token=admin)
        assert st == 200 and d["config"]["lastTestStatus"] == "success", d
    finally:
        up.close()


class CountingListener:
    """Listens on 127.0.0.1 and ::1 on one port and counts accepted connections."""

    def __init__(self):
        self.accepted = []
        self.socks = []
        s4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s4.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s4.bind(("127.0.0.1", 0))
        self.port = s4.getsockname()[1]
        self.socks.append(s4)
        try:
            s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s6.bind(("::1", self.port))
            self.socks.append(s6)
        except OSError:
            pass
        for s in self.socks:
            s.listen(64)
            s.settimeout(0.1)
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        deadline = time.monotonic() + 120
        while not self.halt.is_set() and time.monotonic() < deadline:
            for s in self.socks:
                try:
                    c, addr = s.accept()
                    self.accepted.append(addr)
                    c.close()
                except OSError:
                    pass

    def close(self):
        self.halt.set()
        self.thread.join(5)
        for s in self.socks:
            s.close()


def test_denied_loopback_never_connected(service, fresh_db):
    """Row 7: with the default deny list, no TCP connection reaches a loopback port whatever
    the spelling, and the error names no address."""
    db = fresh_db("hostile_deny")
    svc = service(db=db, OUTBOUND_DENY_CIDRS=None)  # the default: loopback denied
    auditor = token_for(6, 1, "Auditor")
    lis = CountingListener()
    try:
        hosts = ["0.0.0.0", "[::]", "127.0.0.1", "localhost", "[::ffff:127.0.0.1]"]
        for h in hosts:
            url = "http://%s:%d" % (h, lis.port)
            st, _, d = svc.req("POST", MLFLOW + "/test", {"trackingServerUrl": url, "authMethod": "none"},
                               token=auditor, timeout=30)
            assert st == 400 and d["success"] is False, (h, d)
            msg = d["message"]
            assert "not allowed" in msg, (h, msg)
            for addr in ("127.0.0.1", "::1", "0.0.0.0"):
                assert addr not in msg, (h, msg)
        time.sleep(0.3)
        report("TCP connections accepted on a denied loopback port (%d spellings)" % len(hosts),
               len(lis.accepted), "", "0")
        assert lis.accepted == [], lis.accepted
        # a name that resolves to an allowed address (::1, nothing listening) and a denied
        # one (127.0.0.1): each address is vetted before its connect, not only the first
        only4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        only4.bind(("127.0.0.1", 0))
        only4.listen(8)
        only4.settimeout(0.5)
        try:
            svc3 = service(db=db, OUTBOUND_DENY_CIDRS="127.0.0.0/8")
            st, _, d = svc3.req("POST", MLFLOW + "/test", {"trackingServerUrl": "http://localhost:%d" %
                                                           only4.getsockname()[1], "authMethod": "none"},
                                token=auditor, timeout=30)
            assert st == 400 and "127.0.0.1" not in d["message"], d
            try:
                c, _ = only4.accept()
                c.close()
                raise AssertionError("a denied address of a name was connected to")
            except socket.timeout:
                pass
            svc3.stop_and_check()
        finally:
            only4.close()
        # the control: the same listener is reachable when loopback is allowed
        svc2 = service(db=db, OUTBOUND_DENY_CIDRS=LOOPBACK_ALLOWED)
        svc2.req("POST", MLFLOW + "/test", {"trackingServerUrl": "http://127.0.0.1:%d" % lis.port,
                                            "authMethod": "none", "timeout": 2}, token=auditor, timeout=30)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not lis.accepted:
            time.sleep(0.05)
        assert lis.accepted, "the control connection never arrived"
    finally:
        lis.close()


def test_outbound_concurrency_caps(service, fresh_db):
    """Outbound caps: with OUTBOUND_MAX_PER_ORG=2 and OUTBOUND_MAX_CONCURRENT=3, a third call of
    one organization, and a fourth of anyone, is answered 503 at once with a clear message;
    exactly the cap is not refused, and a slot is free again when a call ends."""
    from fakes.llm import FakeLLM, llm_key
    fake = FakeLLM().start()
    try:
        db = fresh_db("hostile_caps")
        svc = service(db=db, OUTBOUND_DENY_CIDRS=LOOPBACK_ALLOWED, OUTBOUND_MAX_PER_ORG=2,
                      OUTBOUND_MAX_CONCURRENT=3, **fake.env())
        org1, org2 = token_for(1, 1, "Admin"), token_for(3, 2, "Admin")
        ids = {}
        for tok, label in ((org1, "SLOW2"), (org1, "SLOW2b"), (org1, "VALID"), (org2, "SLOW2"), (org2, "VALID")):
            st, _, d = svc.req("POST", "/api/llm-keys", {"name": "OpenAI", "key": llm_key("OpenAI", label[:5]),
                                                         "model": "gpt-4o"}, token=tok)
            assert st == 201, d
            ids[(tok, label)] = d["data"]["id"]
        results = {}

        def verify(tok, marker):
            results[(tok, marker)] = svc.req("POST", "/api/llm-keys/%d/verify" % ids[(tok, marker)], token=tok,
                                             timeout=30)
        slow = [threading.Thread(target=verify, args=a) for a in ((org1, "SLOW2"), (org1, "SLOW2b"), (org2, "SLOW2"))]
        for t in slow[:2]:
            t.start()
        time.sleep(0.5)  # two calls of org 1 in flight: its cap
        t0 = time.monotonic()
        st, _, d = svc.req("POST", "/api/llm-keys/%d/verify" % ids[(org1, "VALID")], token=org1)
        refused_in = time.monotonic() - t0
        assert st == 503 and "outbound" in d["error"], d
        slow[2].start()  # org 2's first call: the global cap (3) itself
        time.sleep(0.5)
        st, _, d = svc.req("POST", "/api/llm-keys/%d/verify" % ids[(org2, "VALID")], token=org2)
        assert st == 503 and "outbound" in d["error"], d  # a fourth: over the global cap
        for t in slow:
            t.join(30)
        assert all(results[k][0] == 200 and results[k][2]["data"]["valid"] is True for k in results), results
        # the slots are free again
        st, _, d = svc.req("POST", "/api/llm-keys/%d/verify" % ids[(org1, "VALID")], token=org1)
        assert st == 200 and d["data"]["valid"] is True, d
        report("outbound call over OUTBOUND_MAX_PER_ORG refused in", refused_in * 1000, "ms")
        assert refused_in < 0.5, refused_in
    finally:
        fake.close()
