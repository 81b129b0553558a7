# Redis stopped and restarted (SPEC 7: "Redis down: the REST API keeps working; events are
# counted as dropped; reconnects with backoff"; doc/events.md: events wait in a bounded queue
# and are published in order once Redis is back; the notify subscriber subscribes again).
#
# Pass conditions:
#   - before: an llm_key.created event reaches a test subscriber (msgpack, no secret in it);
#   - Redis stopped: /readyz reports redis down (not "up") within 2 s while staying 200 (Redis
#     never makes the service unready); creating and listing keys keeps succeeding, each
#     answer within 1 s;
#   - Redis started again on the same port: /readyz reports redis "up" and the notify
#     subscription back within 7 s (publisher backoff cap 5 s + connect);
#   - events published after the restart reach the (reconnected) test subscriber, and the
#     events queued during the outage are published too (integrationsd_events_total{result=
#     "published"} grows by all of them, nothing counted as dropped); the service never crashed.
import threading
import time

import msgpack
import redis

from conftest import assert_alive, metric_value, new_key, report, timed_request

PREFIX = "verifywise:integrations:"
CHANNEL = PREFIX + "llm_key.created"


class Subscriber(threading.Thread):
    """SUBSCRIBE to CHANNEL, reconnecting (every 50 ms) whenever Redis goes away."""

    def __init__(self, port, max_seconds=60):
        super().__init__(daemon=True)
        self.port = port
        self.max_seconds = max_seconds
        self.messages = []  # (monotonic time, raw bytes, decoded map)
        self.connected = threading.Event()
        self.reconnects = 0
        self.halt = threading.Event()

    def run(self):
        deadline = time.monotonic() + self.max_seconds
        while not self.halt.is_set() and time.monotonic() < deadline:
            ps = None
            try:
                ps = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2,
                                 socket_connect_timeout=1).pubsub()
                ps.subscribe(CHANNEL)
                while not self.halt.is_set() and time.monotonic() < deadline:
                    m = ps.get_message(timeout=0.1)
                    if m is None:
                        continue
                    if m["type"] == "subscribe":
                        self.connected.set()
                    elif m["type"] == "message":
                        raw = m["data"]
                        self.messages.append((time.monotonic(), raw, msgpack.unpackb(raw, raw=False)))
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                if self.connected.is_set():
                    self.reconnects += 1
                self.connected.clear()
                self.halt.wait(0.05)
            finally:
                if ps is not None:
                    try:
                        ps.close()
                    except Exception:
                        pass

    def wait_event_for(self, key_id, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for _, raw, m in list(self.messages):
                if isinstance(m, dict) and m.get("data", {}).get("id") == key_id:
                    return raw, m
            time.sleep(0.02)
        return None, None


def _create(svc, token):
    key = new_key("sk-redisfault-")
    st, data, dt = timed_request(svc.port, "POST", "/api/llm-keys", timeout=10, token=token,
                                 body={"name": "OpenAI", "key": key, "model": "gpt-4o"})
    return st, data, dt, key


def _readyz(svc):
    st, data, _ = timed_request(svc.port, "GET", "/readyz", timeout=5)
    return st, data


def _wait_readyz(svc, pred, timeout):
    deadline = time.monotonic() + timeout
    st, data = None, None
    while time.monotonic() < deadline:
        st, data = _readyz(svc)
        if isinstance(data, dict) and pred(data):
            return time.monotonic(), st, data
        time.sleep(0.05)
    return None, st, data


def test_redis_restart(service, fresh_db, tokens, redis_server):
    svc = service(db=fresh_db("faults_redis"))
    token = tokens.admin1
    t_ok, st, data = _wait_readyz(svc, lambda d: d.get("redis") == "up" and d["events"]["subscribed"], 5)
    assert t_ok, "redis not up at start: %s %r" % (st, data)

    sub = Subscriber(redis_server.port)
    sub.start()
    try:
        assert sub.connected.wait(5), "test subscriber could not subscribe"
        st, data, dt, key = _create(svc, token)
        assert st == 201, data
        raw, ev = sub.wait_event_for(data["data"]["id"], 3)
        assert ev is not None, "no llm_key.created event before the outage"
        assert ev["type"] == "llm_key.created" and ev["organization_id"] == 1, ev
        assert key.encode() not in raw
        published0 = metric_value(svc.port, "integrationsd_events_total", {"result": "published"})
        dropped0 = metric_value(svc.port, "integrationsd_events_total", {"result": "dropped"})

        # ---- Redis goes away
        t_stop = time.monotonic()
        redis_server.stop()
        t_seen, st, data = _wait_readyz(svc, lambda d: d.get("redis") != "up", 5)
        assert t_seen, "/readyz still says redis up: %r" % data
        assert st == 200, "Redis down must not make the service unready: %s %r" % (st, data)
        report("Redis stop: /readyz reports it after", t_seen - t_stop, "s", "2.0")
        assert t_seen - t_stop < 2.0
        during = []
        outage_ids = []
        for _ in range(5):
            st, data, dt, _ = _create(svc, token)
            during.append(("POST", st, dt))
            if st == 201:
                outage_ids.append(data["data"]["id"])
            st, data, dt = timed_request(svc.port, "GET", "/api/llm-keys", timeout=10, token=token)
            during.append(("GET", st, dt))
            time.sleep(0.1)
        bad = [d for d in during if d[1] not in (200, 201) or d[2] >= 1.0]
        assert not bad, "REST affected by the Redis outage: %r" % bad
        report("Redis outage: slowest REST answer", max(d[2] for d in during), "s", "1.0")
        assert_alive(svc, "during the Redis outage")

        # ---- Redis comes back (same port)
        redis_server.start()
        t_up = time.monotonic()
        t_back, st, data = _wait_readyz(svc, lambda d: d.get("redis") == "up" and d["events"]["subscribed"], 10)
        assert t_back, "/readyz did not report redis up again within 10 s: %r" % data
        report("Redis restart: publisher and notify subscriber back after", t_back - t_up, "s", "7.0")
        assert t_back - t_up < 7.0

        # ---- events after the restart reach the (reconnected) test subscriber
        assert sub.connected.wait(5), "test subscriber did not reconnect"
        st, data, dt, key = _create(svc, token)
        assert st == 201, data
        raw, ev = sub.wait_event_for(data["data"]["id"], 3)
        assert ev is not None, "no event after the Redis restart\n" + svc.describe(60)
        assert key.encode() not in raw
        # ... and the queued ones were published, none dropped
        want = len(outage_ids) + 1
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            published = metric_value(svc.port, "integrationsd_events_total", {"result": "published"})
            if published - published0 >= want:
                break
            time.sleep(0.1)
        dropped = metric_value(svc.port, "integrationsd_events_total", {"result": "dropped"})
        got_outage = [i for i in outage_ids if sub.wait_event_for(i, 0.01)[1] is not None]
        report("Redis restart: events queued during the outage / published after it / seen by the subscriber",
               "%d / %d / %d" % (len(outage_ids), int(published - published0) - 1, len(got_outage)))
        assert published - published0 >= want, "published %d of %d events" % (published - published0, want)
        assert dropped == dropped0, "events dropped: %s -> %s" % (dropped0, dropped)
    finally:
        sub.halt.set()
        sub.join(10)
        if redis_server.proc is None:
            redis_server.start()
    assert_alive(svc, "after the Redis restart")
