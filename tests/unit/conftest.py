"""Unit-test fixtures: settings from a controlled environment (values from tests/conftest.py)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator

import pytest
import structlog

from services.common.settings import ServiceSettings, SettingsError, load_settings
from services.gateway.settings import GatewaySettings
from tests.factories import API_SECRET, AUTH_TOKEN, TOKEN_KEY, gateway_settings_values

SECRETS = (AUTH_TOKEN, API_SECRET, TOKEN_KEY)

SettingsErrorOf = Callable[..., str]


@pytest.fixture
def gateway_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Exactly the valid gateway settings in the environment, whatever the outer one holds."""
    fields = set(GatewaySettings.model_fields)
    for name in list(os.environ):
        if name.lower() in fields:
            monkeypatch.delenv(name)
    for name, value in gateway_settings_values().items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        monkeypatch.setenv(name.upper(), text)
    return monkeypatch


@pytest.fixture
def settings_error() -> SettingsErrorOf:
    """Load settings that must fail; check the message is one line without secrets; return it."""

    def load(cls: type[ServiceSettings] = GatewaySettings, service: str = "gateway") -> str:
        with pytest.raises(SettingsError) as caught:
            load_settings(cls, service)
        message = str(caught.value)
        assert message == caught.value.code
        assert message.startswith(f"calltrail {service}: ")
        assert "\n" not in message
        assert "\r" not in message
        for secret in SECRETS:
            assert secret not in message
        return message

    return load


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state; put it back for the other tests."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    aiokafka_level = logging.getLogger("aiokafka").level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("aiokafka").setLevel(aiokafka_level)
    structlog.reset_defaults()
