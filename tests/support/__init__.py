"""Test and benchmark support: real processes on loopback (the service under gunicorn, a
FHIR server as municipal endpoint, a stub endpoint). Not part of the installed package."""

# The id key every test process uses (ADAPTER_ID_KEY, set by tests/conftest.py for the
# processes the tests start): goldens and expected ids depend on it.
TEST_ID_KEY = "test-only id key: never use in production, 0123456789"
