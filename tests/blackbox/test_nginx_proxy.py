# The shipped reverse-proxy configuration (contrib/nginx/verifywise-integrations.conf)
# in front of the real binary and a stub standing for VerifyWise's backend, run by
# Debian's nginx: every integration route of the contract (section 1, plus this
# service's additions) reaches integrationsd, with the same answer as asked directly;
# every other path, near misses included, reaches the stub; a client-supplied
# X-Forwarded-For is not passed on.
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import TOP_SRCDIR, fresh_db, free_port, http_request, token_for
from fakes.base import FakeServer

SHIPPED = os.path.join(TOP_SRCDIR, "contrib", "nginx", "verifywise-integrations.conf")
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)

M = "/api/integrations/mlflow"
G = "/api/integrations/github"
MLFLOW_BODY = {"trackingServerUrl": "", "authMethod": "none", "timeout": 5, "verifySsl": True}

# (method, path, body): every route of the contract and of src/app.c's table, with inputs
# that change nothing (an empty database; invalid bodies; ids that do not exist).
INTEGRATION_REQUESTS = [
    # LLM keys (contract 1.4)
    ("GET", "/api/llm-keys", None),
    ("GET", "/api/llm-keys/status", None),
    ("GET", "/api/llm-keys/Anthropic", None),
    ("POST", "/api/llm-keys", {}),
    ("PATCH", "/api/llm-keys/999999", {"model": "m"}),
    ("DELETE", "/api/llm-keys/999999", None),
    ("POST", "/api/llm-keys/999999/verify", None),
    # GitHub (contract 1.2)
    ("GET", G + "/token", None),
    ("POST", G + "/token", {}),
    ("DELETE", G + "/token", None),
    ("POST", G + "/token/test", {}),
    # MLflow (contract 1.1 and 1.5)
    ("POST", M + "/test", MLFLOW_BODY),
    ("GET", M + "/config", None),
    ("POST", M + "/configure", MLFLOW_BODY),
    ("GET", M + "/models", None),
    ("GET", M + "/models?refresh=false", None),
    ("GET", M + "/sync-status", None),
    ("GET", M + "/health", None),
    ("POST", M + "/sync", None),
    ("GET", M + "/sync-history", None),
    # Slack (contract 1.3; the OAuth install is the POST with the code), both spellings
    ("GET", "/api/slackWebhooks?userId=1", None),
    ("GET", "/api/slackWebhooks?userId=1&channel=%23alerts", None),
    ("POST", "/api/slackWebhooks", {"userId": 1}),
    ("GET", "/api/slackWebhooks/999999", None),
    ("PATCH", "/api/slackWebhooks/999999", {"is_active": True}),
    ("DELETE", "/api/slackWebhooks/999999", None),
    ("POST", "/api/slackWebhooks/999999/send", {"title": "T", "message": "M"}),
    ("GET", "/api/slack-webhooks", None),
    ("POST", "/api/slack-webhooks", {"userId": 1}),
    ("GET", "/api/slack-webhooks/999999", None),
    ("PATCH", "/api/slack-webhooks/999999", {"is_active": True}),
    ("DELETE", "/api/slack-webhooks/999999", None),
    ("POST", "/api/slack-webhooks/999999/send", {"title": "T", "message": "M"}),
    ("POST", "/api/notifications", {}),
]

# Paths that are VerifyWise's: the issue's /api/users, and near misses of every prefix.
VERIFYWISE_REQUESTS = [
    ("GET", "/api/users", None),
    ("POST", "/api/users/login", {"email": "a@b.c"}),
    ("GET", "/api/llm-keysx", None),
    ("GET", "/api/llm", None),
    ("GET", "/api/integrations", None),
    ("GET", "/api/integrations/", None),
    ("GET", "/api/integrations/jira/config", None),
    ("GET", "/api/integrations/mlflow", None),
    ("GET", "/api/integrations/githubx/token", None),
    ("GET", "/api/slackWebhooksX", None),
    ("GET", "/api/slack", None),
    ("GET", "/api/notifications/unread", None),
    ("GET", "/api/notificationsx", None),
    ("GET", "/api/plugins/mlflow/models", None),
    ("GET", "/healthz", None),
    ("GET", "/readyz", None),
    ("GET", "/metrics", None),
    ("GET", "/", None),
]


class VerifyWiseStub(FakeServer):
    name = "verifywise-stub"

    def handle(self, h, rec):
        h.send_json(200, {"backend": "verifywise-stub", "method": rec.method, "path": rec.target},
                    headers=[("X-Backend", "verifywise-stub")])


def render(shipped, listen_port, backend_port, integrationsd_port):
    """The shipped file with the test's addresses; every substitution must apply once."""
    out, n1 = re.subn(r"(upstream verifywise_backend \{\s*server )127\.0\.0\.1:3000;",
                      r"\g<1>127.0.0.1:%d;" % backend_port, shipped)
    out, n2 = re.subn(r"(upstream verifywise_integrationsd \{\s*server )127\.0\.0\.1:3100;",
                      r"\g<1>127.0.0.1:%d;" % integrationsd_port, out)
    out, n3 = re.subn(r"\n(\s*)listen 80;", r"\n\1listen 127.0.0.1:%d;" % listen_port, out)
    assert (n1, n2, n3) == (1, 1, 1), "the shipped file's upstream or listen lines changed"
    return out


class Nginx:
    """Debian's nginx in the foreground, one process, everything under a temp dir."""

    def __init__(self, conf_text):
        self.dir = tempfile.mkdtemp(prefix="itest-nginx-")
        self.port = None
        with open(os.path.join(self.dir, "verifywise-integrations.conf"), "w") as f:
            f.write(conf_text)
        temp = " ".join("%s_temp_path %s;" % (k, os.path.join(self.dir, k))
                        for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        self.main = os.path.join(self.dir, "nginx.conf")
        with open(self.main, "w") as f:
            f.write("daemon off;\nmaster_process off;\npid %s;\nerror_log %s warn;\n"
                    "events { worker_connections 256; }\n"
                    "http {\n  access_log off;\n  %s\n  include %s;\n}\n"
                    % (os.path.join(self.dir, "nginx.pid"), os.path.join(self.dir, "error.log"), temp,
                       os.path.join(self.dir, "verifywise-integrations.conf")))
        self.proc = None

    def run(self, args, **kw):
        return subprocess.run([NGINX, "-p", self.dir + "/", "-e", os.path.join(self.dir, "error.log"),
                               "-c", self.main] + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)

    def start(self, port):
        self.port = port
        t = self.run(["-t"], timeout=30)
        assert t.returncode == 0, t.stdout.decode(errors="replace")
        self.proc = subprocess.Popen([NGINX, "-p", self.dir + "/", "-e", os.path.join(self.dir, "error.log"),
                                      "-c", self.main], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "nginx exited: " + self.log()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("nginx did not listen: " + self.log())

    def log(self):
        try:
            with open(os.path.join(self.dir, "error.log"), errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def proxied(pg, service):
    if not NGINX:
        pytest.skip("nginx is not installed (contrib/dev/deps installs it): cannot check "
                    "contrib/nginx/verifywise-integrations.conf")
    stub = VerifyWiseStub().start()
    svc = service(db=fresh_db(pg, "itest_nginx"))
    with open(SHIPPED) as f:
        shipped = f.read()
    port = free_port()
    ngx = Nginx(render(shipped, port, stub.port, svc.port))
    try:
        ngx.start(port)
        yield ngx, svc, stub
    finally:
        ngx.stop()
        stub.close()


def comparable(path, data):
    if isinstance(data, dict) and path.endswith("/health"):
        data = dict(data, timestamp=None)
    return data


def test_integration_routes_reach_integrationsd(proxied):
    ngx, svc, stub = proxied
    admin = token_for(1, 1, "Admin")
    for method, path, body in INTEGRATION_REQUESTS:
        direct = http_request(svc.port, method, path, body=body, token=admin, timeout=20)
        via = http_request(ngx.port, method, path, body=body, token=admin, timeout=20)
        assert via[1].get("X-Backend") is None, (method, path)
        # integrationsd's own headers, and the answer it gives when asked directly
        assert via[1].get("Cross-Origin-Resource-Policy") == "same-origin", (method, path, via)
        assert (via[0], comparable(path, via[2])) == (direct[0], comparable(path, direct[2])), (method, path)
        # unauthenticated, so a 2xx cannot come from somewhere else by chance
        st, hdrs, data = http_request(ngx.port, method, path, body=body, timeout=20)
        assert st == 400 and data == {"message": "Bad Request", "data": {"message": "Token not found"}}, \
            (method, path, st, data)
    # a CORS preflight is answered by integrationsd
    st, hdrs, _ = http_request(ngx.port, "OPTIONS", "/api/llm-keys",
                               headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST"})
    assert st == 204 and hdrs.get("Access-Control-Allow-Origin") == "http://localhost:5173"
    assert stub.requests == [], [r.target for r in stub.requests]


def test_other_paths_reach_verifywise(proxied):
    ngx, svc, stub = proxied
    admin = token_for(1, 1, "Admin")
    for method, path, body in VERIFYWISE_REQUESTS:
        stub.clear()
        st, hdrs, data = http_request(ngx.port, method, path, body=body, token=admin,
                                      headers={"X-Forwarded-For": "203.0.113.7"})
        assert st == 200 and hdrs.get("X-Backend") == "verifywise-stub", (method, path, st, data)
        assert data == {"backend": "verifywise-stub", "method": method, "path": path}
        (rec,) = stub.requests
        assert rec.headers.get("Authorization") == "Bearer " + admin
        # the peer's address replaces whatever the client claimed
        assert rec.headers.get("X-Forwarded-For") == "127.0.0.1", rec.headers
        assert rec.headers.get("Host") == "127.0.0.1", rec.headers  # the client's, not the upstream name
