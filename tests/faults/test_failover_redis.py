# Redis Sentinel failover (issue 14). A Redis master on 127.0.0.2:P, one replica on
# 127.0.0.3:P and three redis-sentinel processes (quorum 2, down-after 1 s) on 127.0.0.1;
# the service finds the master through REDIS_SENTINELS / REDIS_SENTINEL_MASTER (its
# REDIS_URL names a port where nothing listens). Either the master is killed (SIGKILL) and
# the Sentinels promote the replica, or an operator runs SENTINEL FAILOVER (the old master
# stays up and becomes a replica, where PUBLISH still succeeds but reaches nobody on the
# new master: the links must follow +switch-master and check ROLE). Pass conditions:
#   - after the switch, an llm_key.created event reaches a subscriber on the new master,
#     and a `notify` message published there is acted on (delivered to the matching Slack
#     webhook of a fake Slack), within 10 s of the switch;
#   - /readyz then reports the new master (redis_server) and the subscription, /metrics
#     counts a Redis failover;
#   - REST unaffected throughout: a normal client (GET /healthz, /api/llm-keys) gets 200
#     within 1 s for every probe, and key creation keeps answering 201.
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time

import msgpack
import pytest
import redis

import integrationsd_test as bb
from conftest import Prober, assert_alive, metric_value, new_key, report, timed_request
from ha import shared_port, wait_until

PREFIX = "verifywise:integrations:"
POLICY = "Policy reminders and status"
SWITCH_BOUND_S = 10.0
SENTINEL = shutil.which("redis-sentinel") or "/usr/bin/redis-sentinel"


class RedisProc:
    def __init__(self, base, name, args):
        self.name = name
        self.log = os.path.join(base, name + ".log")
        self.proc = subprocess.Popen(args + ["--logfile", self.log], cwd=base, env=bb._clean_env(),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        bb._CLEANUPS.append(self.stop)

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class SentinelSetup:
    def __init__(self):
        self.base = tempfile.mkdtemp(prefix="integrationsd-sentinel-", dir=bb._scratch_dir())
        self.port = shared_port(["127.0.0.2", "127.0.0.3"])
        self.procs = []
        common = ["--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", self.base,
                  "--protected-mode", "no", "--port", str(self.port)]
        self.master = RedisProc(self.base, "master", [bb.REDIS_SERVER, "--bind", "127.0.0.2"] + common)
        self.replica = RedisProc(self.base, "replica", [bb.REDIS_SERVER, "--bind", "127.0.0.3",
                                                        "--replica-announce-ip", "127.0.0.3",
                                                        "--replicaof", "127.0.0.2", str(self.port)] + common)
        self.procs += [self.master, self.replica]
        self.sentinel_ports = []
        for i in range(3):
            sp = bb.free_port()
            conf = os.path.join(self.base, "sentinel%d.conf" % i)
            with open(conf, "w") as f:
                f.write("port %d\nbind 127.0.0.1\nprotected-mode no\ndaemonize no\ndir %s\n"
                        "sentinel monitor mymaster 127.0.0.2 %d 2\n"
                        "sentinel down-after-milliseconds mymaster 1000\n"
                        "sentinel failover-timeout mymaster 5000\n"
                        "sentinel parallel-syncs mymaster 1\n" % (sp, self.base, self.port))
            self.procs.append(RedisProc(self.base, "sentinel%d" % i, [SENTINEL, conf]))
            self.sentinel_ports.append(sp)

    def client(self, host):
        return redis.Redis(host=host, port=self.port, socket_timeout=2, socket_connect_timeout=1)

    def sentinel(self, i):
        return redis.Redis(host="127.0.0.1", port=self.sentinel_ports[i], socket_timeout=2, socket_connect_timeout=1)

    def master_addr(self, i=0):
        try:
            r = self.sentinel(i).execute_command("SENTINEL", "get-master-addr-by-name", "mymaster")
            return (r[0].decode(), int(r[1])) if r else None
        except (redis.RedisError, OSError):
            return None

    def wait_settled(self, timeout=20):
        def ok():
            try:
                for i in range(3):
                    m = self.sentinel(i).execute_command("SENTINEL", "master", "mymaster")
                    d = dict(zip([m[k].decode() for k in range(0, len(m), 2)], m[1::2]))
                    if int(d["num-slaves"]) < 1 or int(d["num-other-sentinels"]) < 2:
                        return False
                return self.client("127.0.0.3").info("replication")["master_link_status"] == "up"
            except (redis.RedisError, OSError, KeyError):
                return False
        assert wait_until(ok, timeout, 0.2), "Sentinels did not settle:\n" + self.logs()

    def logs(self):
        out = []
        for p in self.procs:
            try:
                with open(p.log, errors="replace") as f:
                    out.append("--- %s ---\n%s" % (p.name, "".join(f.readlines()[-20:])))
            except OSError:
                pass
        return "\n".join(out)

    def destroy(self):
        for p in self.procs:
            p.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def _wait_subscribed(svc, server, timeout):
    def ok():
        st, data, _ = timed_request(svc.port, "GET", "/readyz", timeout=5)
        return (isinstance(data, dict) and data.get("redis") == "up" and data["events"]["subscribed"]
                and data.get("redis_server") == server and data)
    return wait_until(ok, timeout, 0.05)


@pytest.mark.parametrize("how", ["kill", "manual"])
def test_sentinel_failover(service, fresh_db, tokens, how):
    s = SentinelSetup()
    fake = bb.FakeSlack().start()
    bb._CLEANUPS.append(fake.close)
    prober = None
    try:
        s.wait_settled()
        svc = service(db=fresh_db("faults_sentinel"), REDIS_URL="redis://127.0.0.1:1/0",
                      REDIS_SENTINELS=",".join("127.0.0.1:%d" % p for p in s.sentinel_ports),
                      REDIS_SENTINEL_MASTER="mymaster", TRUST_PROXY="true", LOG_LEVEL="info",
                      **bb.slack_env(fake))
        old = "127.0.0.2:%d" % s.port
        new = "127.0.0.3:%d" % s.port
        assert _wait_subscribed(svc, old, 10), "service not on the master at start\n" + svc.describe(40)
        # a Slack webhook for org 1 routed to POLICY (acts on notify messages)
        code, inst = fake.install()
        st, _, data = svc.req("POST", "/api/slackWebhooks", {"code": code}, token=tokens.admin1,
                              headers={"X-Forwarded-For": "10.1.%d.%d" % (random.randint(0, 255), random.randint(1, 254))})
        assert st == 201, data
        st, _, data = svc.req("PATCH", "/api/slackWebhooks/%d" % data["data"]["id"], {"routing_type": [POLICY]},
                              token=tokens.admin1)
        assert st == 202, data

        prober = Prober(svc.port, tokens.admin1, interval=0.1, max_seconds=60)
        prober.start()
        time.sleep(0.5)
        t_kill = time.monotonic()
        if how == "kill":
            s.master.stop(signal.SIGKILL)
        else:
            s.sentinel(0).execute_command("SENTINEL", "FAILOVER", "mymaster")
        during = []
        t_switch = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and t_switch is None:
            key = new_key("sk-sentinel-")
            st, data, dt = timed_request(svc.port, "POST", "/api/llm-keys", timeout=10, token=tokens.admin1,
                                         body={"name": "OpenAI", "key": key, "model": "gpt-4o"})
            during.append((st, dt))
            if s.master_addr() == ("127.0.0.3", s.port):
                t_switch = time.monotonic()
            time.sleep(0.1)
        assert t_switch, "Sentinels did not promote the replica within 30 s\n" + s.logs()

        # a subscriber on the new master; events created from now on must reach it
        ps = s.client("127.0.0.3").pubsub()
        ps.subscribe(PREFIX + "llm_key.created")
        assert wait_until(lambda: (ps.get_message(timeout=0.05) or {}).get("type") == "subscribe", 5)
        t_event = None
        ids = set()
        deadline = t_switch + 15
        while time.monotonic() < deadline and t_event is None:
            st, data, dt = timed_request(svc.port, "POST", "/api/llm-keys", timeout=10, token=tokens.admin1,
                                         body={"name": "OpenAI", "key": new_key("sk-sentinel-"), "model": "gpt-4o"})
            during.append((st, dt))
            if st == 201:
                ids.add(data["data"]["id"])
            end = time.monotonic() + 0.2
            while time.monotonic() < end and t_event is None:
                m = ps.get_message(timeout=0.05)
                if m and m["type"] == "message" and msgpack.unpackb(m["data"], raw=False)["data"].get("id") in ids:
                    t_event = time.monotonic()
        ps.close()
        assert t_event, "no event reached the new master within 15 s of the switch\n" + svc.describe(60)

        # a notify message published on the new master is acted on (Slack delivery)
        title = "Sentinel switch %d" % random.randint(0, 1 << 30)
        payload = msgpack.packb({"organization_id": 1, "routing_type": POLICY, "title": title,
                                 "message": "after the failover", "idempotency_key": title}, use_bin_type=True)
        t_notify = None
        deadline = t_switch + 20
        published = False
        while time.monotonic() < deadline:
            if not published and s.client("127.0.0.3").publish(PREFIX + "notify", payload) >= 1:
                published = True
            if published and any(m["body"]["blocks"][0]["text"]["text"] == title
                                 for m in fake.messages_for(inst.channel_id)):
                t_notify = time.monotonic()
                break
            time.sleep(0.05)
        assert t_notify, "notify on the new master not acted on (published=%s)\n%s" % (published, svc.describe(60))
        results = prober.stop()
        prober.check(1.0, "normal client during the Sentinel failover")
        bad = [d for d in during if d[0] != 201 or d[1] >= 1.0]
        assert not bad, "key creation affected: %r" % bad[:10]
        report("Sentinel (%s): replica promoted after the %s" % (how, how), t_switch - t_kill, "s")
        report("Sentinel (%s): event on the new master after the switch" % how, t_event - t_switch, "s",
               SWITCH_BOUND_S)
        report("Sentinel (%s): notify on the new master acted on after the switch" % how, t_notify - t_switch, "s",
               SWITCH_BOUND_S)
        report("Sentinel (%s): probes / slowest REST answer" % how, "%d / %.3f s" % (
            len(results) + len(during), max([r[2] for r in results] + [d[1] for d in during])), "", "1.0 s")
        assert t_event - t_switch < SWITCH_BOUND_S
        assert t_notify - t_switch < SWITCH_BOUND_S
        assert _wait_subscribed(svc, new, 5), "readyz does not show the new master"
        assert metric_value(svc.port, "integrationsd_failovers_total", {"service": "redis"}) >= 1
        assert_alive(svc, "after the Sentinel failover")
    finally:
        if prober is not None and prober.is_alive():
            prober.stop()
        fake.close()
        s.destroy()
