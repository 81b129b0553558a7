# Package test fixtures: everything (the private PostgreSQL cluster and Redis, JWT minting,
# the Service class with its clean-exit check) comes from tests/lib/integrationsd_test.py,
# shared with the black-box and fault suites (pytest.ini puts tests/lib on sys.path).
from integrationsd_test import itest_db, logdir, pg, pytest_configure, redis_server  # noqa: F401
