"""The gateway application: ``init_app(settings)`` builds it, ``run(settings)`` serves it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial

from aiohttp import web
from prometheus_client import CollectorRegistry

from services.common.kafka import make_producer
from services.common.logging import get_logger
from services.common.observability import (
    ACCESS_LOG_CLASS,
    REGISTRY,
    HttpMetrics,
    healthz_view,
    metrics_view,
    serve,
)
from services.gateway import handlers
from services.gateway.handlers import MAX_BODY
from services.gateway.metrics import GatewayMetrics
from services.gateway.publisher import EventPublisher
from services.gateway.resources import GATEWAY, Gateway
from services.gateway.security import RateLimiter, TwilioSignature
from services.gateway.settings import GatewaySettings
from services.gateway.spool import Spool

log = get_logger(__name__)


def init_app(settings: GatewaySettings) -> web.Application:
    registry = CollectorRegistry()
    http_metrics = HttpMetrics(registry)
    metrics = GatewayMetrics(registry)
    publisher = EventPublisher(
        producer_factory=partial(make_producer, settings),
        topic=settings.kafka_topic,
        spool=Spool(settings.gateway_spool_path),
        metrics=metrics,
        timeout_s=settings.publish_timeout_s,
    )
    app = web.Application(client_max_size=MAX_BODY)
    app[REGISTRY] = registry
    app[ACCESS_LOG_CLASS] = http_metrics.access_logger()
    app[GATEWAY] = Gateway(
        settings=settings,
        signature=TwilioSignature(
            settings.twilio_auth_token.get_secret_value(),
            settings.public_base_url,
            settings.status_callback_overrides,
        ),
        publisher=publisher,
        metrics=metrics,
        identity_limiter=RateLimiter(settings.token_rate_per_identity),
        address_limiter=RateLimiter(settings.token_rate_per_address),
    )
    app.cleanup_ctx.append(_publisher_ctx)
    app.router.add_post("/token", handlers.issue_token)
    app.router.add_route("OPTIONS", "/token", handlers.token_preflight)
    app.router.add_post("/twiml/voice", handlers.twiml_voice)
    app.router.add_post("/twiml/sip", handlers.twiml_sip)
    app.router.add_post("/twilio/status", handlers.twilio_status)
    app.router.add_get("/healthz", healthz_view)
    app.router.add_get("/readyz", handlers.readyz)
    app.router.add_get("/metrics", metrics_view)
    return app


async def _publisher_ctx(app: web.Application) -> AsyncIterator[None]:
    publisher = app[GATEWAY].publisher
    await publisher.start()
    yield
    # Runs after the server stopped accepting and in-flight requests finished (graceful
    # shutdown): whatever the producer still batches is flushed to the broker here.
    await publisher.close()
    log.info("publisher_closed")


def run(settings: GatewaySettings) -> None:
    """Serve until SIGTERM/SIGINT, then shut down gracefully (see ``_publisher_ctx``)."""
    log.info(
        "gateway_starting",
        host=settings.gateway_host,
        port=settings.gateway_port,
        public_base_url=settings.public_base_url,
        topic=settings.kafka_topic,
    )
    serve(
        init_app(settings),
        settings.gateway_host,
        settings.gateway_port,
        shutdown_timeout=settings.shutdown_timeout_s,
    )
