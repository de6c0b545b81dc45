"""The metrics table of docs/operations.md is exactly what the services register: names, types
and labels."""

from __future__ import annotations

import re
from pathlib import Path

from tests.metric_families import metric_families

OPERATIONS = Path(__file__).resolve().parents[3] / "docs" / "operations.md"
ROW = re.compile(r"^\| `(calltrail_\w+)` \| (\w+) \|([^|]*)\|", re.MULTILINE)


def registered() -> dict[str, tuple[str, set[str]]]:
    return {
        name + ("_total" if kind == "counter" else ""): (kind, labels)
        for name, (kind, labels) in metric_families().items()
    }


def documented() -> dict[str, tuple[str, set[str]]]:
    rows = ROW.findall(OPERATIONS.read_text())
    assert rows, "no metrics table in docs/operations.md"
    return {name: (kind, set(re.findall(r"`(\w+)`", labels))) for name, kind, labels in rows}


def test_operations_page_lists_every_metric_with_its_type_and_labels() -> None:
    assert documented() == registered()
