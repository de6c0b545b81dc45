from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.gateway.app import init_app
from services.gateway.settings import GatewaySettings
from tests.integration.writeback_support import make_harness  # noqa: F401 - a fixture

GatewayFactory = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def make_gateway(gateway_settings: GatewaySettings) -> AsyncIterator[GatewayFactory]:
    """Start the gateway in process against the real broker, with settings overridden."""
    async with AsyncExitStack() as stack:

        async def start(*, wait_for_broker: bool = True, **overrides: object) -> TestClient:
            settings = gateway_settings.model_copy(update=overrides)
            client = await stack.enter_async_context(TestClient(TestServer(init_app(settings))))
            if wait_for_broker:
                await wait_broker(client)
            return client

        yield start


@pytest.fixture
async def gateway(make_gateway: GatewayFactory) -> TestClient:
    return await make_gateway()


async def wait_broker(client: TestClient, up: bool = True, timeout_s: float = 15.0) -> None:
    for _ in range(int(timeout_s / 0.05)):
        response = await client.get("/readyz")
        if (await response.json())["broker"] is up:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"gateway broker connection never became {up}")
