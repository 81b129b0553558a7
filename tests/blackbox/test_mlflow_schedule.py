# MLflow scheduled sync (issue 4, contract 5.6): MLFLOW_SYNC_SCHEDULE is validated at start;
# with "* * * * *" the next minute's tick syncs every configured tenant whose last test
# succeeded, records the pre-check skip for the others, and runs once across two instances
# sharing the database. This holds the only long wait of the suite (at most ~75 s).
import subprocess
import time

import pytest

from conftest import INTEGRATIONSD_BIN, fresh_db, tenant_hash, token_for

BASE = "/api/integrations/mlflow"
SCHED_DB = "itest_mlflow_sched"


@pytest.mark.parametrize("schedule", ["61 * * * *", "* * *", "0 0 30 2 *", "every hour"])
def test_invalid_schedule_refuses_to_start(service, schedule):
    svc = service(start=False, MLFLOW_SYNC_SCHEDULE=schedule)
    p = subprocess.run([INTEGRATIONSD_BIN], env=svc.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=20)
    assert p.returncode != 0
    assert b"MLFLOW_SYNC_SCHEDULE" in p.stderr, p.stderr[-2000:]


def test_schedule_fires_once_across_instances_and_syncs_every_tenant(pg, service, mlflow_fakes):
    db_name = fresh_db(pg, SCHED_DB)
    fakes = {1: mlflow_fakes(n_experiments=3, runs_per_experiment=5, n_models=2, versions_per_model=2),
             2: mlflow_fakes(n_experiments=2, runs_per_experiment=4, n_models=1, versions_per_model=3)}
    admins = {1: token_for(1, 1, "Admin"), 2: token_for(3, 2, "Admin"), 10: token_for(5, 10, "Admin")}
    # configure (and test) with an instance whose schedule will not fire during the test
    setup = service(db=db_name, MLFLOW_SYNC_SCHEDULE="0 0 1 1 *")
    for org, fake in fakes.items():
        body = {"trackingServerUrl": fake.url, "authMethod": "none", "timeout": 10, "verifySsl": True}
        st, _, data = setup.req("POST", BASE + "/configure", body=body, token=admins[org])
        assert st == 200, data
        st, _, data = setup.req("POST", BASE + "/test", body={}, token=admins[org])
        assert st == 200, data
    # org 10: configured but never tested -> the pre-check skips it
    st, _, data = setup.req("POST", BASE + "/configure", token=admins[10],
                            body={"trackingServerUrl": fakes[1].url, "authMethod": "none"})
    assert st == 200, data
    setup.stop_and_check()

    a = service(db=db_name, MLFLOW_SYNC_SCHEDULE="* * * * *")
    b = service(db=db_name, MLFLOW_SYNC_SCHEDULE="* * * * *")
    conn = pg.connect(db_name)

    def scheduled(org):
        with conn.cursor() as cur:
            cur.execute('SELECT status, message, records_new FROM "%s".mlflow_sync_history'
                        " WHERE trigger_type = 'scheduled' ORDER BY id" % tenant_hash(org))
            return cur.fetchall()

    deadline = time.monotonic() + 75
    while time.monotonic() < deadline:
        done = [scheduled(o) for o in (1, 2, 10)]
        if all(d and all(r[0] != "running" for r in d) for d in done):
            break
        time.sleep(0.25)
    else:
        pytest.fail("the scheduled sync did not run within 75 s: %r" % ([scheduled(o) for o in (1, 2, 10)],))
    time.sleep(1.0)  # let a duplicate (if any) show up
    try:
        for org in (1, 2):
            rows = scheduled(org)
            assert len(rows) == 1, rows  # one run across both instances
            assert rows[0][0] == "success" and rows[0][1] == "Synced %d model(s) via scheduled job" % rows[0][2]
            expected = len(fakes[org].expected_run_ids()) + len(fakes[org].expected_versions())
            assert rows[0][2] == expected
        rows = scheduled(10)
        assert rows == [("error", "Scheduled sync skipped: run a successful connection test.", 0)]
        st, _, data = a.req("GET", BASE + "/sync-status", token=admins[2])
        assert data["data"]["lastSyncStatus"] == "success"
        st, _, data = a.req("GET", BASE + "/sync-status", token=admins[10])
        assert data["data"]["lastSyncStatus"] == "error"
        ran = [s for s in (a, b) if "mlflow scheduled sync tick finished" in s.log_text()]
        assert len(ran) == 1
        other = b if ran[0] is a else a
        assert "runs on another instance" in other.log_text()
    finally:
        conn.close()
