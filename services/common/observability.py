"""Prometheus metrics and health endpoints shared by both services' HTTP servers."""

from __future__ import annotations

import asyncio
import logging
import signal
from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from itertools import accumulate
from typing import ClassVar

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import generate_latest

REGISTRY = web.AppKey("registry", CollectorRegistry)
ACCESS_LOG_CLASS = web.AppKey("access_log_class", type)
FAILURES = web.AppKey("failures", list)

log = logging.getLogger("calltrail.service")


LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_LE = [str(float(bound)) for bound in LATENCY_BUCKETS] + ["+Inf"]  # as prometheus_client writes


class HttpMetrics:
    """Requests by route, method and status, and latency by route: counted as plain numbers on
    every request and turned into Prometheus series only when scraped (a custom collector).

    prometheus_client's ``Counter.inc`` and ``Histogram.observe`` take a lock each and walk the
    buckets in Python: measured with callgrind through aiohttp's access-log hook, they cost
    ~22,000 CPU instructions a request, a tenth of a bare aiohttp request. Here it is a dict
    update and a bisection. Only the event loop's thread counts and scrapes, so no lock."""

    #: The series this collector exposes, with their labels (what a dashboard may query).
    FAMILIES: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "calltrail_http_requests": ("route", "method", "status"),
        "calltrail_http_request_duration_seconds": ("route",),
    }

    def __init__(self, registry: CollectorRegistry) -> None:
        self._requests: dict[tuple[str, str, int], int] = {}
        # Per route: a count per bucket (the last one past every bound: +Inf), and the sum.
        self._latency: dict[str, tuple[list[int], list[float]]] = {}
        registry.register(self)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        latency = self._latency.get(route)
        if latency is None:
            latency = self._latency[route] = ([0] * (len(LATENCY_BUCKETS) + 1), [0.0])
        latency[0][bisect_left(LATENCY_BUCKETS, seconds)] += 1
        latency[1][0] += seconds

    def describe(self) -> Iterator[Metric]:
        # Without describe(), registering would call collect() to learn the names.
        yield from self.collect()

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "calltrail_http_requests",
            "HTTP requests by route, method and status.",
            labels=self.FAMILIES["calltrail_http_requests"],
        )
        for (route, method, status), count in self._requests.items():
            requests.add_metric([route, method, str(status)], count)
        yield requests
        latency = HistogramMetricFamily(
            "calltrail_http_request_duration_seconds",
            "HTTP request latency by route.",
            labels=self.FAMILIES["calltrail_http_request_duration_seconds"],
        )
        for route, (counts, total) in self._latency.items():
            cumulative = list(accumulate(counts))
            latency.add_metric([route], list(zip(_LE, cumulative, strict=True)), total[0])
        yield latency

    def access_logger(self) -> type[AbstractAccessLogger]:
        """An aiohttp access-log class that records these metrics (pass it to ``run_app`` /
        ``AppRunner`` as ``access_log_class``). Cheaper than a middleware (measured: about 10%
        of the gateway's throughput): no extra coroutine layer per request, and aiohttp times
        the request itself."""
        observe = self.observe

        class MetricsAccessLogger(AbstractAccessLogger):
            def log(
                self, request: web.BaseRequest, response: web.StreamResponse, time: float
            ) -> None:
                match_info = getattr(request, "_match_info", None)
                resource = match_info.route.resource if match_info is not None else None
                route = resource.canonical if resource is not None else "unmatched"
                observe(route, request.method, response.status, time)

        return MetricsAccessLogger


class LoopCounter:
    """A Prometheus counter (exposed as ``<name>_total``, with or without labels) counted as a
    plain number and turned into its series only when scraped, like :class:`HttpMetrics`.

    For code on the event loop's thread, which is the only one to count and to scrape: no
    lock. prometheus_client's ``Counter.inc`` takes one on every call: measured with callgrind,
    4,450 CPU instructions an ``inc`` against 950 here, where a status callback costs the
    gateway about 175,000 above a bare aiohttp request. The exposition is prometheus_client's,
    ``_created`` lines apart (tests/unit/common/test_loop_counter.py pins it)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        registry: CollectorRegistry,
    ) -> None:
        self.name = name.removesuffix("_total")  # as prometheus_client names a counter
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._counts: dict[tuple[str, ...], Count] = {}
        if not self.labelnames:
            self._counts[()] = self._unlabelled = Count()
        registry.register(self)

    def labels(self, *values: str) -> Count:
        """The count of one set of label values (their ``str``, as prometheus_client does):
        bind it once where it is counted on every request."""
        if len(values) != len(self.labelnames) or not values:
            raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {values!r}")
        key = tuple(map(str, values))
        count = self._counts.get(key)
        if count is None:
            count = self._counts[key] = Count()
        return count

    def inc(self, amount: float = 1.0) -> None:
        if self.labelnames:
            raise ValueError(f"{self.name}: counted by labels {self.labelnames}")
        self._unlabelled.inc(amount)

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for key, count in self._counts.items():
            family.add_metric(list(key), count.value)
        yield family


class Count:
    """One series of a :class:`LoopCounter`."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        self.value += amount


async def metrics_view(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def healthz_view(_request: web.Request) -> web.Response:
    """Liveness: the event loop answers. Nothing external is checked, so a broker outage
    never gets healthy pods killed."""
    return web.json_response({"status": "ok"})


def stop_if_it_fails(app: web.Application, task: asyncio.Task[None]) -> None:
    """A background task the service is nothing without (the consumer, the write-back
    worker): if it ends with an exception, log it and shut the process down gracefully, so
    that :func:`serve` exits non-zero. Kubernetes restarts the pod and the bug shows, where a
    task that died quietly would leave a healthy-looking service doing nothing."""
    failures: list[BaseException] = app[FAILURES]  # set by init_app: the app is frozen now

    def ended(done: asyncio.Task[None]) -> None:
        if done.cancelled() or done.exception() is None:
            return
        error = done.exception()
        assert error is not None
        failures.append(error)
        log.critical("background task %s failed: %r", done.get_name(), error, exc_info=error)
        # The same path as a SIGTERM from Kubernetes: aiohttp's handler stops the server and
        # runs the cleanup contexts.
        signal.raise_signal(signal.SIGTERM)

    task.add_done_callback(ended)


def serve(app: web.Application, host: str, port: int, shutdown_timeout: float = 60.0) -> None:
    """Serve a service's app until SIGTERM/SIGINT, on uvloop where available, then shut down
    gracefully: stop accepting, let in-flight requests finish, run the cleanup contexts.
    Exits 1 if a task under :func:`stop_if_it_fails` failed."""
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover - uvloop is not on Windows
        pass
    web.run_app(
        app,
        host=host,
        port=port,
        shutdown_timeout=shutdown_timeout,
        # No access log lines: the "access log" hook only records the HTTP metrics.
        access_log_class=app[ACCESS_LOG_CLASS],
        access_log=logging.getLogger("calltrail.http"),
        print=None,
        handle_signals=True,
    )
    if app.get(FAILURES):
        raise SystemExit(1)
