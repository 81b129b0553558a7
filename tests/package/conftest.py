# Package test fixtures: everything (the private PostgreSQL cluster and Redis, JWT minting,
# the Service class with its clean-exit check) comes from tests/blackbox/conftest.py, loaded
# under the module name `bb_conftest` as the fault suite does.
import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS_DIR = os.path.dirname(HERE)

if "bb_conftest" not in sys.modules:
    _spec = importlib.util.spec_from_file_location("bb_conftest", os.path.join(TESTS_DIR, "blackbox", "conftest.py"))
    _mod = importlib.util.module_from_spec(_spec)
    sys.modules["bb_conftest"] = _mod
    _spec.loader.exec_module(_mod)
bb = sys.modules["bb_conftest"]

pytest_configure = bb.pytest_configure
pg = bb.pg
redis_server = bb.redis_server
itest_db = bb.itest_db
logdir = bb.logdir
