"""The README's metrics table is exactly what the services register: names, types, labels."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from services.common.observability import HttpMetrics, LoopCounter
from services.gateway.metrics import GatewayMetrics
from services.recorder.metrics import RecorderMetrics

README = Path(__file__).resolve().parents[3] / "README.md"
ROW = re.compile(r"^\| `(calltrail_\w+)` \| (\w+) \|([^|]*)\|", re.MULTILINE)


def registered() -> dict[str, tuple[str, set[str]]]:
    registry = CollectorRegistry()
    owners = (HttpMetrics(registry), GatewayMetrics(registry), RecorderMetrics(registry))
    found = {}
    for owner in owners:
        for metric in vars(owner).values():
            if isinstance(metric, MetricWrapperBase):
                name = metric._name + ("_total" if metric._type == "counter" else "")
                found[name] = (metric._type, set(metric._labelnames))
            elif isinstance(metric, LoopCounter):
                found[metric.name + "_total"] = ("counter", set(metric.labelnames))
    # A custom collector (HttpMetrics) declares its families' labels; the type is collected.
    declared = {
        name: labels for owner in owners for name, labels in getattr(owner, "FAMILIES", {}).items()
    }
    for family in registry.collect():
        if family.name in declared:
            name = family.name + ("_total" if family.type == "counter" else "")
            found[name] = (family.type, set(declared[family.name]))
    return found


def documented() -> dict[str, tuple[str, set[str]]]:
    rows = ROW.findall(README.read_text())
    assert rows, "no metrics table in the README"
    return {name: (kind, set(re.findall(r"`(\w+)`", labels))) for name, kind, labels in rows}


def test_readme_lists_every_metric_with_its_type_and_labels() -> None:
    assert documented() == registered()
