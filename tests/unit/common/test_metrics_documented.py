"""The README's metrics table is exactly what the services register: names, types, labels."""

from __future__ import annotations

import re
from pathlib import Path

from tests.metric_families import metric_families

README = Path(__file__).resolve().parents[3] / "README.md"
ROW = re.compile(r"^\| `(calltrail_\w+)` \| (\w+) \|([^|]*)\|", re.MULTILINE)


def registered() -> dict[str, tuple[str, set[str]]]:
    return {
        name + ("_total" if kind == "counter" else ""): (kind, labels)
        for name, (kind, labels) in metric_families().items()
    }


def documented() -> dict[str, tuple[str, set[str]]]:
    rows = ROW.findall(README.read_text())
    assert rows, "no metrics table in the README"
    return {name: (kind, set(re.findall(r"`(\w+)`", labels))) for name, kind, labels in rows}


def test_readme_lists_every_metric_with_its_type_and_labels() -> None:
    assert documented() == registered()
