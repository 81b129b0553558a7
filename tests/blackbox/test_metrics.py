# GET /metrics: Prometheus text exposition format (parsed strictly here), the series
# SPEC section 5 promises, and that counters move with traffic.
import re

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
                    r'(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*)?\})? (-?[0-9.eE+-]+|NaN|\+Inf|-Inf)$')


def parse(text):
    """Return ({family: type}, [(name, labels dict, value)]) or raise AssertionError."""
    types, samples, helped = {}, [], set()
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert name not in helped, "two HELP lines for " + name
            helped.add(name)
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped"), line
            assert name not in types, "two TYPE lines for " + name
            types[name] = kind
            continue
        assert not line.startswith("#") and line, "unexpected line %r" % line
        m = SAMPLE.match(line)
        assert m, "not a valid sample line: %r" % line
        name = m.group(1)
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        base = re.sub(r'_(bucket|sum|count)$', '', name)
        family = base if types.get(base) == "histogram" else name
        assert family in types, "sample %s before its TYPE line" % name
        samples.append((name, labels, float(m.group(m.lastindex))))
    return types, samples


def value(samples, name, **labels):
    for n, l, v in samples:
        if n == name and all(l.get(k) == str(x) for k, x in labels.items()):
            return v
    return None


def test_metrics_format_and_series(svc, tokens):
    svc.req("GET", "/api/llm-keys", token=tokens.admin1)
    svc.req("GET", "/api/definitely-not-here")
    st, headers, body = svc.req("GET", "/metrics")
    assert st == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = body.decode() if isinstance(body, bytes) else body
    types, samples = parse(text)
    for fam, kind in [("integrationsd_http_requests_total", "counter"),
                      ("integrationsd_http_request_duration_ms", "histogram"),
                      ("integrationsd_db_pool_size", "gauge"), ("integrationsd_db_pool_live", "gauge"),
                      ("integrationsd_db_queue_depth", "gauge"), ("integrationsd_http_connections", "gauge"),
                      ("integrationsd_outbound_in_flight", "gauge"), ("integrationsd_events_total", "counter")]:
        assert types.get(fam) == kind, (fam, types.get(fam))
    assert value(samples, "integrationsd_http_requests_total", route="llm_keys_list", status=200) >= 1
    assert value(samples, "integrationsd_http_requests_total", route="unmatched", status=404) >= 1
    assert value(samples, "integrationsd_db_pool_live") >= 1
    # histogram: cumulative buckets, +Inf equals _count
    buckets = [(l["le"], v) for n, l, v in samples
               if n == "integrationsd_http_request_duration_ms_bucket" and l.get("route") == "llm_keys_list"]
    assert buckets and buckets[-1][0] == "+Inf"
    counts = [v for _, v in buckets]
    assert counts == sorted(counts)
    assert buckets[-1][1] == value(samples, "integrationsd_http_request_duration_ms_count", route="llm_keys_list")


def test_metrics_counters_move_and_never_leak_paths(svc, tokens):
    def scrape():
        st, _, body = svc.req("GET", "/metrics")
        assert st == 200
        return body.decode() if isinstance(body, bytes) else body
    before = value(parse(scrape())[1], "integrationsd_http_requests_total", route="llm_keys_status", status=200) or 0
    for _ in range(3):
        assert svc.req("GET", "/api/llm-keys/status", token=tokens.admin1)[0] == 200
    svc.req("GET", "/api/secret-looking-path-xyz")
    text = scrape()
    after = value(parse(text)[1], "integrationsd_http_requests_total", route="llm_keys_status", status=200)
    assert after == before + 3
    assert "secret-looking-path-xyz" not in text  # labels come from a bounded set
    assert tokens.admin1 not in text
