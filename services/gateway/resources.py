"""What the gateway's handlers share, built once per application by ``init_app``."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from services.gateway.metrics import GatewayMetrics
from services.gateway.publisher import EventPublisher
from services.gateway.security import RateLimiter, TwilioSignature
from services.gateway.settings import GatewaySettings


@dataclass(slots=True)
class Gateway:
    settings: GatewaySettings
    signature: TwilioSignature
    publisher: EventPublisher
    metrics: GatewayMetrics
    identity_limiter: RateLimiter
    address_limiter: RateLimiter


GATEWAY = web.AppKey("gateway", Gateway)
