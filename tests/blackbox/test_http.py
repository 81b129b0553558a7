# HTTP layer: /healthz and /readyz, 404/405/414/413 and malformed-body envelopes, conflicting
# framing headers, the headers every response carries, keep-alive, pipelining, CORS (allowed
# origins, credentials, preflight without auth), and the REST API working without Redis.
import email.utils
import http.client
import json
import socket
import time

import pytest

from conftest import FRONTEND_URL, free_port, new_key, token_for

JSON_CT = "application/json; charset=utf-8"
ALLOWED_HEADERS = "Authorization, Content-Type, X-Requested-With"


def split_list(value):
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def find_field(obj, name):
    """`name` at the top level of a JSON object, or one level down (e.g. under "data")."""
    if not isinstance(obj, dict):
        return None
    if name in obj:
        return obj[name]
    for v in obj.values():
        if isinstance(v, dict) and name in v:
            return v[name]
    return None


def create_body(key=None, name="OpenAI", model="gpt-4o"):
    return {"name": name, "key": key or new_key(), "model": model}


# ---------------------------------------------------------------- health

def test_healthz(svc):
    st, headers, data = svc.req("GET", "/healthz")
    assert st == 200
    assert data == {"status": "ok"}
    assert headers.get("Content-Type") == JSON_CT


def test_readyz_reports_database_and_redis(svc):
    st, headers, data = svc.req("GET", "/readyz")
    assert st == 200, data
    assert isinstance(data, dict), data
    assert find_field(data, "database") == "up", data
    assert find_field(data, "redis") is not None, data
    assert headers.get("Content-Type") == JSON_CT


# ---------------------------------------------------------------- 404 / 405

@pytest.mark.parametrize("method,path", [("GET", "/api/nope"), ("POST", "/api/nope"), ("GET", "/"),
                                         ("DELETE", "/nothing/here"), ("GET", "/healthzz"),
                                         ("GET", "/api/llm-keysX")])
def test_unknown_path_is_404_envelope(svc, method, path):
    st, headers, data = svc.req(method, path, body={} if method == "POST" else None)
    assert st == 404
    assert data == {"message": "Not Found", "data": "Cannot %s %s" % (method, path)}
    assert headers.get("Content-Type") == JSON_CT


def test_wrong_method_on_collection_is_405_with_allow(svc, tokens):
    for method in ("PUT", "DELETE"):
        st, headers, data = svc.req(method, "/api/llm-keys", body={}, token=tokens.admin1)
        assert st == 405, data
        assert data == {"message": "Method Not Allowed", "data": "Method not allowed"}
        allow = split_list(headers.get("Allow"))
        assert "GET" in allow and "POST" in allow, headers.get("Allow")
        assert "PATCH" not in allow and "DELETE" not in allow
        assert headers.get("Content-Type") == JSON_CT


def test_wrong_method_on_item_is_405_with_allow(svc, tokens):
    st, headers, data = svc.req("PUT", "/api/llm-keys/5", body={}, token=tokens.admin1)
    assert st == 405, data
    assert data == {"message": "Method Not Allowed", "data": "Method not allowed"}
    allow = split_list(headers.get("Allow"))
    assert "PATCH" in allow and "DELETE" in allow, headers.get("Allow")


def test_wrong_method_on_healthz_is_405(svc):
    st, headers, data = svc.req("POST", "/healthz", body={})
    assert st == 405
    assert data == {"message": "Method Not Allowed", "data": "Method not allowed"}
    assert "GET" in split_list(headers.get("Allow"))


# ---------------------------------------------------------------- 414

URI_TOO_LONG = {"message": "URI Too Long", "data": "URI too long"}


def test_long_path_is_414(svc):
    path = "/api/" + "a" * 2100
    st, headers, data = svc.req("GET", path)
    assert st == 414
    assert data == URI_TOO_LONG
    assert headers.get("Content-Type") == JSON_CT


def test_long_query_is_414(svc, tokens):
    st, _, data = svc.req("GET", "/api/llm-keys?x=" + "b" * 2100, token=tokens.admin1)
    assert st == 414
    assert data == URI_TOO_LONG


def test_uri_of_exactly_2048_bytes_is_not_414(svc):
    path = "/api/" + "c" * (2048 - len("/api/"))
    assert len(path) == 2048
    st, _, data = svc.req("GET", path)
    assert st == 404, data
    assert data["message"] == "Not Found"
    assert data["data"].startswith("Cannot GET /api/ccc")


def test_service_still_serves_after_414(svc):
    svc.req("GET", "/" + "d" * 3000)
    st, _, data = svc.req("GET", "/healthz")
    assert (st, data) == (200, {"status": "ok"})


# ---------------------------------------------------------------- 413 (MAX_BODY_BYTES=1024)

TOO_LARGE = {"message": "Payload Too Large", "data": "Request body too large"}


@pytest.fixture(scope="module")
def small_svc(module_service):
    return module_service(MAX_BODY_BYTES="1024")


def padded(body, size):
    raw = json.dumps(body).encode()
    assert len(raw) <= size
    return raw + b" " * (size - len(raw))


def test_body_of_exactly_max_bytes_is_accepted(small_svc, tokens, db):
    before = db.llm_count(1)
    raw = padded(create_body(), 1024)
    assert len(raw) == 1024
    st, _, data = small_svc.req("POST", "/api/llm-keys", raw_body=raw, token=tokens.admin1)
    assert st == 201, data
    assert db.llm_count(1) == before + 1


def test_body_over_max_bytes_is_413_with_json(small_svc, tokens, db):
    before = db.llm_count(1)
    raw = padded(create_body(), 1025)
    req = ("POST /api/llm-keys HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
           "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (tokens.admin1, len(raw))).encode()
    responses, rawbytes, _ = small_svc.raw(req + raw)
    assert responses, "no HTTP response to an oversized body: %r" % rawbytes[:300]
    r = responses[0]
    assert r.status == 413
    assert r.json() == TOO_LARGE
    assert r.header("Content-Type") == JSON_CT
    assert db.llm_count(1) == before


def test_large_body_is_413_via_http_client(small_svc, tokens, db):
    before = db.llm_count(1)
    raw = padded(create_body(), 4096)
    try:
        st, _, data = small_svc.req("POST", "/api/llm-keys", raw_body=raw, token=tokens.admin1)
    except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected) as e:
        pytest.fail("connection dropped instead of a 413 reply: %r" % e)
    assert st == 413
    assert data == TOO_LARGE
    assert db.llm_count(1) == before


def test_expect_continue_with_oversized_length_gets_413_not_100(small_svc, tokens):
    req = ("POST /api/llm-keys HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
           "Content-Type: application/json\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n"
           % tokens.admin1).encode()
    responses, rawbytes, _ = small_svc.raw(req)
    assert rawbytes.startswith(b"HTTP/1.1 413"), rawbytes[:200]
    assert responses[0].json() == TOO_LARGE


def test_service_still_serves_after_413(small_svc, tokens):
    st, _, data = small_svc.req("GET", "/api/llm-keys", token=tokens.admin1)
    assert st == 200, data


# ---------------------------------------------------------------- malformed bodies

@pytest.mark.parametrize("raw", [b"{", b"{\"name\":", b"not json", b"{\"a\":1}}", b"{'a':1}",
                                 b"{\"name\":\"OpenAI\",}"])
def test_malformed_json_is_400(svc, tokens, db, raw):
    before = db.llm_count(1)
    st, headers, data = svc.req("POST", "/api/llm-keys", raw_body=raw, token=tokens.admin1)
    assert st == 400
    assert data == {"message": "Bad Request", "data": "Invalid JSON body"}
    assert headers.get("Content-Type") == JSON_CT
    assert db.llm_count(1) == before


def test_json_array_body_is_400(svc, tokens, db):
    before = db.llm_count(1)
    st, _, data = svc.req("POST", "/api/llm-keys", raw_body=json.dumps([create_body()]), token=tokens.admin1)
    assert st == 400
    assert data == {"message": "Bad Request", "data": "Request body must be a JSON object"}
    assert db.llm_count(1) == before


def test_transfer_encoding_with_content_length_is_400(svc, tokens, db):
    before = db.llm_count(1)
    body = json.dumps(create_body()).encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    req = ("POST /api/llm-keys HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
           "Content-Type: application/json\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n"
           % (tokens.admin1, len(chunked))).encode()
    responses, rawbytes, _ = svc.raw(req + chunked)
    assert responses, "no response: %r" % rawbytes[:300]
    assert responses[0].status == 400
    assert db.llm_count(1) == before


# ---------------------------------------------------------------- headers on every response

def _cases(tokens):
    return [
        ("GET", "/healthz", None, None),
        ("GET", "/readyz", None, None),
        ("GET", "/api/nope", None, None),
        ("PUT", "/api/llm-keys", {}, tokens.admin1),
        ("GET", "/api/llm-keys", None, None),
        ("GET", "/api/llm-keys", None, "garbage"),
        ("GET", "/api/llm-keys", None, tokens.admin1),
        ("GET", "/api/llm-keys/status", None, tokens.admin1),
        ("POST", "/api/llm-keys", create_body(), tokens.admin1),
        ("POST", "/api/llm-keys", {"name": "OpenAI"}, tokens.admin1),
        ("DELETE", "/api/llm-keys/999999", None, tokens.admin1),
        ("GET", "/" + "e" * 2100, None, None),
    ]


def test_every_response_has_the_standard_headers(svc, tokens):
    for method, path, body, tok in _cases(tokens):
        st, h, data = svc.req(method, path, body=body, token=tok)
        where = "%s %s -> %s" % (method, path[:40], st)
        assert h.get("Content-Type") == JSON_CT, where
        assert h.get("Cache-Control") == "no-store", where
        assert h.get("X-Content-Type-Options") == "nosniff", where
        assert h.get("Referrer-Policy") == "no-referrer", where
        assert h.get("X-Frame-Options") == "SAMEORIGIN", where
        assert h.get("Cross-Origin-Resource-Policy") == "same-origin", where
        assert h.get("Date"), where
        assert email.utils.parsedate_to_datetime(h.get("Date")) is not None, where
        assert isinstance(data, (dict, list)), (where, data)


def test_413_and_preflight_have_security_headers(small_svc, svc, tokens):
    raw = padded(create_body(), 1100)
    req = ("POST /api/llm-keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
           "Content-Length: %d\r\n\r\n" % (tokens.admin1, len(raw))).encode()
    responses, _, _ = small_svc.raw(req + raw)
    r = responses[0]
    assert r.status == 413
    for name, value in (("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"),
                        ("Referrer-Policy", "no-referrer"), ("X-Frame-Options", "SAMEORIGIN"),
                        ("Cross-Origin-Resource-Policy", "same-origin")):
        assert r.header(name) == value, name
    st, h, _ = svc.req("OPTIONS", "/api/llm-keys", headers={"Origin": FRONTEND_URL,
                                                            "Access-Control-Request-Method": "POST"})
    assert st == 204
    assert h.get("X-Content-Type-Options") == "nosniff"
    assert h.get("Cache-Control") == "no-store"
    assert h.get("Date")


# ---------------------------------------------------------------- keep-alive and pipelining

def test_keep_alive_two_requests_on_one_connection(svc, tokens):
    conn = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=10)
    try:
        conn.request("GET", "/healthz")
        r1 = conn.getresponse()
        assert r1.status == 200
        assert json.loads(r1.read()) == {"status": "ok"}
        assert (r1.getheader("Connection") or "").lower() != "close"
        sock = conn.sock
        assert sock is not None, "server closed a keep-alive connection"
        conn.request("GET", "/api/llm-keys", headers={"Authorization": "Bearer " + tokens.admin1})
        r2 = conn.getresponse()
        body = json.loads(r2.read())
        assert r2.status == 200, body
        assert conn.sock is sock, "second request needed a new connection"
        conn.request("GET", "/api/nope")
        r3 = conn.getresponse()
        assert r3.status == 404
        assert json.loads(r3.read())["data"] == "Cannot GET /api/nope"
        assert conn.sock is sock
    finally:
        conn.close()


def test_pipelined_requests_answered_in_order(svc, tokens):
    reqs = (
        "GET /api/llm-keys HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n\r\n" % tokens.admin1
        + "GET /api/pipelined-two HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        + "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    ).encode()
    responses, rawbytes, _ = svc.raw(reqs, count=3, timeout=10)
    assert [r.status for r in responses] == [200, 404, 200], rawbytes[:1000]
    assert responses[0].json()["message"] == "OK"
    assert responses[1].json() == {"message": "Not Found", "data": "Cannot GET /api/pipelined-two"}
    assert responses[2].json() == {"status": "ok"}


def _rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_pipelining_client_that_never_reads_is_not_read_without_bound(svc, tokens):
    """Requests answered at once keep their socket readable (no pause of the reads): once
    an answer cannot be flushed, the server must stop reading that client all the same."""
    one = ("GET /api/llm-keys HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n\r\n"
           % tokens.admin1).encode()
    chunk = one * 64
    rss0 = _rss_kib(svc.proc.pid)
    s = socket.create_connection(("127.0.0.1", svc.port), timeout=10)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.setblocking(False)
        sent, cap = 0, 64 * 1024 * 1024
        blocked_since = None
        while sent < cap:
            try:
                sent += s.send(chunk)
                blocked_since = None
            except BlockingIOError:
                if blocked_since is None:
                    blocked_since = time.monotonic()
                elif time.monotonic() - blocked_since > 1.5:
                    break  # the server stopped reading us
                time.sleep(0.01)
        assert sent < cap, "the server kept reading a client that reads no answer"
        grew = _rss_kib(svc.proc.pid) - rss0
        assert grew < 48 * 1024, "RSS grew by %d KiB" % grew
        s.setblocking(True)
        s.settimeout(10)
        head = s.recv(4096)
        assert head.startswith(b"HTTP/1.1 200 "), head[:200]
    finally:
        s.close()
    st, _, _ = svc.req("GET", "/healthz")
    assert st == 200


# ---------------------------------------------------------------- CORS

@pytest.mark.parametrize("origin", [FRONTEND_URL, "http://localhost:5173", "http://localhost",
                                    "http://127.0.0.1:8080"])
def test_cors_allowed_origin_is_echoed(svc, tokens, origin):
    for path, tok in (("/healthz", None), ("/api/llm-keys", tokens.admin1), ("/api/nope", None)):
        st, h, _ = svc.req("GET", path, token=tok, headers={"Origin": origin})
        assert h.get("Access-Control-Allow-Origin") == origin, (path, st)
        assert h.get("Access-Control-Allow-Credentials") == "true", path
        assert "Origin" in split_list(",".join(h.get_all("Vary") or [])), path


@pytest.mark.parametrize("origin", ["https://evil.example", "http://localhost.evil.example",
                                    "http://app.example.test.evil.example", "null"])
def test_cors_other_origin_gets_no_allow_origin(svc, tokens, origin):
    st, h, data = svc.req("GET", "/api/llm-keys", token=tokens.admin1, headers={"Origin": origin})
    assert h.get("Access-Control-Allow-Origin") is None
    assert h.get("Access-Control-Allow-Credentials") is None


@pytest.mark.parametrize("path", ["/api/llm-keys", "/api/llm-keys/5"])
def test_cors_preflight_without_auth(svc, path):
    st, h, data = svc.req("OPTIONS", path, headers={
        "Origin": "http://localhost:5173",
        "Access-Control-Request-Method": "PATCH",
        "Access-Control-Request-Headers": "authorization,content-type",
    })
    assert st == 204, data
    assert h.get("Access-Control-Allow-Origin") == "http://localhost:5173"
    assert h.get("Access-Control-Allow-Credentials") == "true"
    methods = split_list(h.get("Access-Control-Allow-Methods"))
    for m in ("GET", "POST", "PATCH", "DELETE"):
        assert m in methods, h.get("Access-Control-Allow-Methods")
    assert h.get("Access-Control-Allow-Headers") == ALLOWED_HEADERS


def test_cors_preflight_from_other_origin_not_allowed(svc):
    st, h, _ = svc.req("OPTIONS", "/api/llm-keys", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert h.get("Access-Control-Allow-Origin") is None


# ---------------------------------------------------------------- running without Redis

@pytest.mark.parametrize("redis_url", ["", "closed"], ids=["redis_disabled", "redis_unreachable"])
def test_rest_api_works_without_redis(service, tokens, db, redis_url):
    url = "redis://127.0.0.1:%d/0" % free_port() if redis_url == "closed" else ""
    s = service(REDIS_URL=url)
    st, _, data = s.req("GET", "/readyz")
    assert st == 200, data
    assert find_field(data, "database") == "up", data
    assert find_field(data, "redis") is not None, data
    before = db.llm_count(1)
    st, _, data = s.req("POST", "/api/llm-keys", body=create_body(), token=tokens.admin1)
    assert st == 201, data
    st, _, data = s.req("GET", "/api/llm-keys", token=tokens.admin1)
    assert st == 200
    assert db.llm_count(1) == before + 1


# ---- keep-alive: a connection carries at most 10,000 requests ------------------------------

KEEPALIVE_REQUESTS = 10000


def _answers(sock, buf, n):
    """Read n answers from sock: [(status line, headers dict)], and what is left over."""
    out = []
    while len(out) < n:
        while b"\r\n\r\n" not in buf:
            d = sock.recv(65536)
            assert d, "connection closed after %d answers" % len(out)
            buf += d
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        hdrs = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
        size = int(hdrs.get("content-length", "0"))
        while len(buf) < size:
            d = sock.recv(65536)
            assert d, "connection closed inside an answer"
            buf += d
        buf = buf[size:]
        out.append((lines[0], hdrs))
    return out, buf


def test_keepalive_connection_says_close_on_its_last_request(svc):
    """The 10,000th request of a keep-alive connection is answered with Connection: close and
    the connection then closes; none before it says so (a client is never left to find a
    closed connection under its next request)."""
    req = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
    s = socket.create_connection(("127.0.0.1", svc.port), timeout=10)
    try:
        buf, seen = b"", []
        while len(seen) < KEEPALIVE_REQUESTS:
            n = min(500, KEEPALIVE_REQUESTS - len(seen))
            s.sendall(req * n)
            got, buf = _answers(s, buf, n)
            seen += got
        assert all(st == "HTTP/1.1 200 OK" for st, _ in seen)
        closing = [i + 1 for i, (_, h) in enumerate(seen) if h.get("connection", "").lower() == "close"]
        assert closing == [KEEPALIVE_REQUESTS], closing[:5]
        assert buf == b"" and s.recv(1) == b"", "the connection stays open after its last answer"
    finally:
        s.close()
    st, _, _ = svc.req("GET", "/healthz")  # a new connection is served
    assert st == 200


def test_requests_pipelined_past_the_last_are_not_answered(svc):
    """Requests pipelined behind the Connection: close answer are not answered (the client
    sends them again on a new connection): the answers stop at the 10,000th, then
    end-of-file."""
    req = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
    s = socket.create_connection(("127.0.0.1", svc.port), timeout=10)
    try:
        buf, seen = b"", []
        while len(seen) < KEEPALIVE_REQUESTS - 500:
            s.sendall(req * 500)
            got, buf = _answers(s, buf, 500)
            seen += got
        s.sendall(req * 550)  # the last 500, and 50 behind them
        got, buf = _answers(s, buf, 500)
        assert [h.get("connection") for _, h in got][-2:] == [None, "close"]
        while True:
            d = s.recv(65536)
            if not d:
                break
            buf += d
        assert buf == b"", "answered past the last request: %r" % buf[:80]
    finally:
        s.close()


def _send_for(sock, seconds):
    """Send a byte every 50 ms for seconds; the error that stopped it, or None."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            sock.sendall(b"x")
        except OSError as e:
            return e
        time.sleep(0.05)
    return None


def test_closing_connection_lingers_so_its_answer_is_not_reset(svc):
    """A Connection: close answer followed by input the service never reads: the service
    shuts its side after the answer and drops what still arrives for 2 s (HTTP_LINGER_MS),
    so the client reads the whole answer and a clean end-of-file, never a reset (a close
    with unread input resets the connection, and a reset discards unread answers). After
    those 2 s the socket is closed, not before."""
    s = socket.create_connection(("127.0.0.1", svc.port), timeout=10)
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" + b"y" * 65536)
        assert _send_for(s, 0.3) is None
        got, buf = _answers(s, b"", 1)
        assert got[0][0] == "HTTP/1.1 200 OK" and got[0][1].get("connection") == "close"
        assert buf == b"" and s.recv(1) == b"", "no clean end-of-file after the answer"
        t0 = time.monotonic()
        assert _send_for(s, 1.2) is None, "closed before its 2 s of lingering"
        err = _send_for(s, 2.0)
        assert isinstance(err, (BrokenPipeError, ConnectionResetError)), "still open %.1f s later: %r" % (
            time.monotonic() - t0, err)
    finally:
        s.close()
