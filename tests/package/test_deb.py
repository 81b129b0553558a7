# The Debian package, installed into a throw-away root with `dpkg --root` (maintainer
# scripts run chrootless with DPKG_ROOT set, as dpkg does for such roots): its files and
# modes, the conffile, the unit enabled and not started, the installed binary serving
# /readyz and an authenticated request against the test PostgreSQL and Redis with the
# shipped environment file filled in, `systemd-analyze verify` on the installed unit, an
# upgrade that keeps the operator's file, and a purge that removes it.
#
# INTEGRATIONSD_DEB: the .deb to test (tests/package/run builds it with contrib/dev/package).
import os
import re
import shutil
import stat
import subprocess

import pytest

from integrationsd_test import Service, free_port, token_for, seed_users  # noqa: F401

DEB = os.environ.get("INTEGRATIONSD_DEB", "")
REQUIRED = ("JWT_SECRET", "ENCRYPTION_KEY", "ENCRYPTION_PASSWORD", "ENCRYPTION_ALGORITHM")
SECRETS = ("JWT_SECRET", "ENCRYPTION_KEY", "ENCRYPTION_PASSWORD")
ENV_REL = "etc/integrationsd/integrationsd.env"
UNIT_REL = "lib/systemd/system/integrationsd.service"
WANTS_REL = "etc/systemd/system/multi-user.target.wants/integrationsd.service"

pytestmark = pytest.mark.skipif(not DEB, reason="INTEGRATIONSD_DEB not set (tests/package/run builds the package)")


def dpkg(root, *args, check=True):
    cmd = ["dpkg", "--root=" + root, "--force-script-chrootless", "--force-depends",
           "--log=/dev/null"] + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if check and r.returncode != 0:
        pytest.fail("%s failed (%d):\n%s\n%s" % (" ".join(cmd), r.returncode, r.stdout, r.stderr), pytrace=False)
    return r


def new_root(tmp_path_factory, name):
    root = str(tmp_path_factory.mktemp(name))
    for d in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "var/log"):
        os.makedirs(os.path.join(root, d))
    open(os.path.join(root, "var/lib/dpkg/status"), "w").close()
    return root


def read_env(path):
    """KEY=value lines as systemd's EnvironmentFile reads the ones we write (no escapes)."""
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            k, _, v = line.partition("=")
            if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
                v = v[1:-1]
            env[k] = v
    return env


def fill_env(path, values):
    """Set each KEY: its live line, else its commented default line, else a new line."""
    with open(path) as f:
        lines = f.read().split("\n")
    for k, v in values.items():
        for pat in (r"^%s=" % k, r"^#%s=" % k):
            idx = [i for i, ln in enumerate(lines) if re.match(pat, ln)]
            if idx:
                lines[idx[0]] = "%s=%s" % (k, v)
                break
        else:
            lines.append("%s=%s" % (k, v))
    with open(path, "w") as f:
        f.write("\n".join(lines))


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    if not os.path.isfile(DEB):
        pytest.fail("INTEGRATIONSD_DEB=%s is not a file" % DEB, pytrace=False)
    root = new_root(tmp_path_factory, "debroot")
    r = dpkg(root, "-i", DEB)
    return root, r.stdout + r.stderr


def test_control_fields():
    f = {k: subprocess.run(["dpkg-deb", "-f", DEB, k], capture_output=True, text=True, check=True).stdout.strip()
         for k in ("Package", "Depends", "Recommends")}
    assert f["Package"] == "integrationsd"
    deps = f["Depends"]
    for lib in ("libc6", "libpq5", "libevhtp0", "libssl3", "libjansson4", "libhiredis"):
        assert lib in deps, deps  # ${shlibs:Depends}
    # dlopened at the first outbound call, so named by hand, with the oldest it accepts
    assert "libcurl4 (>= 7.85.0)" in deps, deps
    names = [d.split()[0] for d in deps.split(",")]
    assert not [n for n in names if n.startswith(("postgresql", "redis"))], deps
    assert "postgresql" in f["Recommends"] and "redis-server" in f["Recommends"], f["Recommends"]


def test_files_modes_and_conffile(installed):
    root, _ = installed
    binary = os.path.join(root, "usr/sbin/integrationsd")
    assert os.access(binary, os.X_OK)
    assert os.path.isfile(os.path.join(root, "usr/share/man/man8/integrationsd.8.gz"))
    assert os.path.isfile(os.path.join(root, UNIT_REL))
    docs = os.listdir(os.path.join(root, "usr/share/doc/integrationsd"))
    for d in ("README.md.gz", "NEWS.gz", "copyright", "openapi.yaml.gz"):
        assert d in docs, docs
    st = os.stat(os.path.join(root, ENV_REL))
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_uid == 0 and st.st_gid == 0
    with open(os.path.join(root, "var/lib/dpkg/info/integrationsd.conffiles")) as f:
        assert "/" + ENV_REL in f.read().split()
    # the installed binary is this build
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0 and out.stdout.startswith("integrationsd ")


def test_unit_enabled_not_started(installed):
    root, output = installed
    link = os.path.join(root, WANTS_REL)
    assert os.path.islink(link) and os.readlink(link) == "/" + UNIT_REL
    # postinst tells the operator what to do and never starts anything
    assert "not started" in output and "--check-config" in output, output
    assert "deb-systemd-invoke" not in output


def test_shipped_env_file_lists_required_and_empty_secrets(installed):
    root, _ = installed
    env = read_env(os.path.join(root, ENV_REL))
    for k in REQUIRED:
        assert k in env, k
    for k in SECRETS:
        assert env[k] == "", k
    # each required variable is explained by a comment right above it
    with open(os.path.join(root, ENV_REL)) as f:
        text = f.read()
    for k in SECRETS:
        assert re.search(r"#[^\n]*\n%s=\n" % k, text), k


def test_check_config_names_what_is_missing(installed):
    root, _ = installed
    binary = os.path.join(root, "usr/sbin/integrationsd")
    env = dict(read_env(os.path.join(root, ENV_REL)), PATH=os.environ.get("PATH", "/usr/bin:/bin"))
    r = subprocess.run([binary, "--check-config"], env=env, capture_output=True, text=True, timeout=10)
    assert r.returncode != 0
    for k in SECRETS:
        assert k in r.stderr, r.stderr


def test_systemd_analyze_verify(installed, tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed (contrib/dev/deps package installs it)")
    root, _ = installed
    # The unit names /usr/sbin/integrationsd and man:integrationsd(8): point both at the
    # throw-away root (systemd-analyze --root needs a whole systemd tree there).
    with open(os.path.join(root, UNIT_REL)) as f:
        unit = f.read()
    assert "ExecStart=/usr/sbin/integrationsd\n" in unit
    copy = tmp_path / "integrationsd.service"
    copy.write_text(unit.replace("/usr/sbin/integrationsd", os.path.join(root, "usr/sbin/integrationsd")))
    env = dict(os.environ, MANPATH=os.path.join(root, "usr/share/man"), SYSTEMD_LOG_LEVEL="notice")
    # Documentation=man:integrationsd(8) is resolved with man(1) when it is installed (not
    # on a minimal Debian: the page's presence is checked by test_files_modes_and_conffile).
    args = ["systemd-analyze", "verify"] + ([] if shutil.which("man") else ["--man=no"]) + [str(copy)]
    r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr


def test_installed_binary_serves_with_the_filled_env_file(installed, pg, redis_server, itest_db, logdir):
    root, _ = installed
    path = os.path.join(root, ENV_REL)
    port = free_port()
    fill_env(path, {
        "JWT_SECRET": bb_secret("JWT_SECRET"),
        "ENCRYPTION_KEY": bb_secret("ENCRYPTION_KEY"),
        "ENCRYPTION_PASSWORD": bb_secret("ENCRYPTION_PASSWORD"),
        "DATABASE_URL": pg.dsn(itest_db),
        "REDIS_URL": redis_server.url,
        "PORT": port,
        "BIND_ADDRESS": "127.0.0.1",
    })
    env = read_env(path)
    binary = os.path.join(root, "usr/sbin/integrationsd")
    r = subprocess.run([binary, "--check-config"], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    for k in SECRETS:
        assert env[k] not in r.stdout + r.stderr

    import integrationsd_test as bb
    saved = bb.INTEGRATIONSD_BIN
    bb.INTEGRATIONSD_BIN = binary
    try:
        svc = Service(env, logdir, "package")
        svc.start()  # waits for /healthz and /readyz 200
    finally:
        bb.INTEGRATIONSD_BIN = saved
    try:
        st, _, body = svc.req("GET", "/readyz")
        assert st == 200, body
        st, _, body = svc.req("GET", "/api/llm-keys/status", token=token_for(1, 1))
        assert st == 200 and body["data"]["hasKeys"] in (True, False), body
        st, _, body = svc.req("GET", "/api/llm-keys/status")
        assert st == 400, body  # the authentication is really checked
    finally:
        svc.stop_and_check()


def bb_secret(name):
    import integrationsd_test as bb
    return getattr(bb, name)


def test_upgrade_keeps_env_file_and_purge_removes_it(tmp_path_factory):
    root = new_root(tmp_path_factory, "debroot-upgrade")
    dpkg(root, "-i", DEB)
    path = os.path.join(root, ENV_REL)
    fill_env(path, {"JWT_SECRET": "operator-secret-value"})
    with open(path) as f:
        mine = f.read()
    r = dpkg(root, "--force-confold", "-i", DEB)  # an upgrade (same version re-installed)
    with open(path) as f:
        assert f.read() == mine
    assert "not started" not in r.stdout  # the first-install message only
    assert os.path.islink(os.path.join(root, WANTS_REL))
    dpkg(root, "--remove", "integrationsd")
    assert os.path.exists(path)  # remove keeps the configuration
    assert not os.path.exists(os.path.join(root, "usr/sbin/integrationsd"))
    dpkg(root, "--purge", "integrationsd")
    assert not os.path.exists(path)
    assert not os.path.lexists(os.path.join(root, WANTS_REL))
