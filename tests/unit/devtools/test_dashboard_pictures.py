"""The pictures of the dashboards in docs/ are drawn from the dashboard JSON, and current."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from services.devtools.dashboard_pictures import (
    GRAFANA,
    data_source,
    pictures,
    render,
    select_columns,
)

SVG = "{http://www.w3.org/2000/svg}"


def test_committed_pictures_are_current() -> None:
    drawn = pictures()
    assert len(drawn) == 2
    for path, svg in drawn.items():
        assert path.exists(), f"{path.name} missing: python -m services.devtools.dashboard_pictures"
        assert path.read_text() == svg, (
            f"{path.name} is out of date: python -m services.devtools.dashboard_pictures"
        )


@pytest.mark.parametrize("path", sorted(GRAFANA.glob("*.json")), ids=lambda p: p.stem)
def test_every_panel_is_drawn_with_its_title(path: Path) -> None:
    board = json.loads(path.read_text())
    root = ET.fromstring(render(board))
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    for panel in board["panels"]:
        assert f"{panel['id']} · {panel['type']}" in texts
        title = panel["title"]
        assert any(t == title or (t.endswith("…") and title.startswith(t[:-1])) for t in texts)


def test_select_columns_reads_names_and_aliases() -> None:
    sql = (
        "SELECT m.month, coalesce(u, '(unknown)') AS user_identity, sum(charge) AS charge,\n"
        "  (SELECT count(*) FROM numbers n WHERE n.a < 1) AS numbers_held\nFROM monthly_charges m"
    )
    assert select_columns(sql) == ["month", "user_identity", "charge", "numbers_held"]
    assert select_columns("WITH x AS (SELECT 1) SELECT * FROM x") == []


def test_data_source_names_metrics_and_tables() -> None:
    panel = {
        "targets": [
            {"expr": "sum(rate(calltrail_http_requests_total[5m])) / calltrail_spool_depth"},
            {"rawSql": "SELECT 1 FROM calls c JOIN numbers n ON true"},
        ]
    }
    assert (
        data_source(panel) == "calltrail_http_requests_total, calltrail_spool_depth, calls, numbers"
    )
