"""Prometheus metrics and health endpoints shared by both services' HTTP servers."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

REGISTRY = web.AppKey("registry", CollectorRegistry)


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "calltrail_http_requests_total",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "calltrail_http_request_duration_seconds",
            "HTTP request latency by route.",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )

    def middleware(self) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            started = time.perf_counter()
            resource = request.match_info.route.resource
            # The route template, never the raw path: unknown paths must not explode cardinality.
            route = resource.canonical if resource is not None else "unmatched"
            status = 500
            try:
                response = await handler(request)
                status = response.status
                return response
            except web.HTTPException as exc:
                status = exc.status
                raise
            finally:
                self.requests.labels(route, request.method, str(status)).inc()
                self.latency.labels(route).observe(time.perf_counter() - started)

        return record


async def metrics_view(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def healthz_view(_request: web.Request) -> web.Response:
    """Liveness: the event loop answers. Nothing external is checked, so a broker outage
    never gets healthy pods killed."""
    return web.json_response({"status": "ok"})
