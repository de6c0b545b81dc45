"""Builds the gateway's dependencies from its settings, once per application.

``init_app`` calls :func:`bootstrap`; tests call it with fakes (a publisher that needs no
broker, a clock they move) and get the same wiring the service runs with.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from aiohttp import web
from prometheus_client import CollectorRegistry

from services.common.kafka import make_producer
from services.gateway.adapters.publisher import EventPublisher, Publisher
from services.gateway.adapters.spool import Spool
from services.gateway.domain.security import RateLimiter, TwilioSignature
from services.gateway.domain.twiml import (
    Conversation,
    OutboundDial,
    VoicemailAnswer,
    notice_url,
)
from services.gateway.metrics import GatewayMetrics
from services.gateway.settings import GatewaySettings


@dataclass(slots=True)
class Gateway:
    """What the handlers share."""

    settings: GatewaySettings
    registry: CollectorRegistry
    signature: TwilioSignature
    publisher: Publisher
    metrics: GatewayMetrics
    identity_limiter: RateLimiter
    address_limiter: RateLimiter
    conversation: Conversation  # what the TwiML records, transcribes and says first
    outbound_dial: OutboundDial  # /twiml/voice's answer, prepared for that conversation
    voicemail: VoicemailAnswer | None = None  # what a caller nobody answered hears (prepared)


GATEWAY = web.AppKey("gateway", Gateway)


def bootstrap(
    settings: GatewaySettings,
    *,
    publisher: Callable[[GatewayMetrics], Publisher] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Gateway:
    """The gateway as configured; ``publisher`` builds a replacement for the broker + spool
    publisher (it gets the metrics, so a fake can count like the real one)."""
    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry)
    if publisher is None:
        events: Publisher = EventPublisher(
            producer_factory=partial(make_producer, settings),
            topic=settings.kafka_topic,
            spool=Spool(settings.gateway_spool_path),
            metrics=metrics,
            timeout_s=settings.publish_timeout_s,
        )
    else:
        events = publisher(metrics)
    conversation = settings.conversation
    return Gateway(
        settings=settings,
        registry=registry,
        signature=TwilioSignature(
            settings.twilio_auth_token.get_secret_value(),
            settings.public_base_url,
            settings.status_callback_overrides,
        ),
        publisher=events,
        metrics=metrics,
        identity_limiter=RateLimiter(settings.token_rate_per_identity, clock=clock),
        address_limiter=RateLimiter(settings.token_rate_per_address, clock=clock),
        conversation=conversation,
        outbound_dial=OutboundDial.prepare(
            conversation, notice_url(settings.public_base_url, settings.status_callback_overrides)
        ),
        voicemail=settings.voicemail_answer(),
    )
