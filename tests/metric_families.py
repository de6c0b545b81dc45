"""Every metric family the services register, for the tests that hold the metrics table of
docs/operations.md and the dashboards to the code."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from services.common.observability import HttpMetrics, LoopCounter
from services.gateway.metrics import GatewayMetrics
from services.recorder.metrics import RecorderMetrics


def metric_families() -> dict[str, tuple[str, set[str]]]:
    """Family name (as collected: a counter's without ``_total``) → its type and label names.

    prometheus_client's metrics and LoopCounters say their labels; a custom collector like
    HttpMetrics declares its families' labels (``FAMILIES``); the type is what is collected."""
    registry = CollectorRegistry()
    owners = (HttpMetrics(registry), GatewayMetrics(registry), RecorderMetrics(registry))
    labels: dict[str, set[str]] = {}
    for owner in owners:
        for metric in vars(owner).values():
            if isinstance(metric, MetricWrapperBase):
                labels[metric._name] = set(metric._labelnames)
            elif isinstance(metric, LoopCounter):
                labels[metric.name] = set(metric.labelnames)
        for name, declared in getattr(owner, "FAMILIES", {}).items():
            labels[name] = set(declared)
    return {family.name: (family.type, labels[family.name]) for family in registry.collect()}
