"""The test settings the plugin tests share with the rest of the suite. They live in
tests/factories.py once main's test restructuring lands, in tests/conftest.py before it."""

from __future__ import annotations

try:
    from tests.factories import API_KEY, API_SECRET, APP_SID, TOKEN_KEY
except ModuleNotFoundError:  # before tests/factories.py
    from tests.conftest import API_KEY, API_SECRET, APP_SID, TOKEN_KEY

# The plugin tests' ring group: the test gateway is started with RING_IDENTITIES set to it.
RING_USER_ID = "21"
RING_IDENTITIES = [f"kintone_{RING_USER_ID}"]

__all__ = ["API_KEY", "API_SECRET", "APP_SID", "RING_IDENTITIES", "RING_USER_ID", "TOKEN_KEY"]
