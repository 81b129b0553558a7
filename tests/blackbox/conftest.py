# Black-box suite: its fixtures and helpers live in tests/lib/integrationsd_test.py, shared
# with the fault and package suites (pytest.ini puts tests/lib on sys.path). Imported here so
# that pytest finds the fixtures and the hook, and test modules keep `from conftest import ...`.
from integrationsd_test import *  # noqa: F401,F403
from integrationsd_test import _clean_env, _openssl, _slack_key_hex, pytest_configure  # noqa: F401
