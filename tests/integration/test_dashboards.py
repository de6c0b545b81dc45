"""The Grafana dashboards in deploy/grafana/ cannot drift from the code.

Every SQL query of the cost dashboard runs against a migrated database (Grafana's macros
replaced by concrete SQL); every metric the operations dashboard asks Prometheus for is one
the services register, with the labels it groups by.
"""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services.common.database import asyncpg_dsn
from tests.metric_families import metric_families

GRAFANA = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
COSTS = GRAFANA / "calltrail-costs.json"
OPERATIONS = GRAFANA / "calltrail-operations.json"

# The time range a user would pick: November 2026, as Grafana renders it into SQL (UTC).
TIME_FROM = "'2026-11-01T00:00:00Z'"
TIME_TO = "'2026-12-01T00:00:00Z'"
MACROS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\$__timeFilter\(\s*([\w.]+)\s*\)"), rf"\1 BETWEEN {TIME_FROM} AND {TIME_TO}"),
    (re.compile(r"\$__timeFrom\(\)"), TIME_FROM),
    (re.compile(r"\$__timeTo\(\)"), TIME_TO),
    (re.compile(r"\$__unixEpochFrom\(\)"), "1793491200"),
    (re.compile(r"\$__unixEpochTo\(\)"), "1796083200"),
]
# Labels the Prometheus scrape (ServiceMonitor) adds to every series.
TARGET_LABELS = {"pod", "namespace", "job", "instance", "service", "container", "endpoint"}


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """All panels, those inside collapsed rows too."""
    out: list[dict[str, Any]] = []
    for panel in board["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def targets(board: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(p["title"], t) for p in panels(board) for t in p.get("targets", [])]


def render_sql(sql: str) -> str:
    for pattern, replacement in MACROS:
        sql = pattern.sub(replacement, sql)
    assert "$" not in sql, f"a Grafana macro or variable the test does not know: {sql}"
    return sql


# ------------------------------------------------------------------ both dashboards


@pytest.mark.parametrize(
    ("path", "plugin"),
    [(COSTS, "grafana-postgresql-datasource"), (OPERATIONS, "prometheus")],
    ids=["costs", "operations"],
)
def test_dashboard_is_well_formed(path: Path, plugin: str) -> None:
    board = load(path)
    assert board["uid"]
    assert board["title"]
    assert 36 <= board["schemaVersion"] <= 41
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == plugin

    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels(board):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": plugin, "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]
        grid = panel["gridPos"]
        assert grid["w"] > 0, panel["title"]
        assert grid["h"] > 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]

    # No two panels overlap on the grid.
    cells: dict[tuple[int, int], str] = {}
    for panel in panels(board):
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


# ------------------------------------------------------------------ costs: SQL on the schema

SEED = """
INSERT INTO tariffs (effective_from, currency, per_minute, number_rental_per_month)
VALUES ('2026-01-01', 'JPY', '{"mobile": 18, "landline": 9}', 550);

INSERT INTO numbers (e164, held_from) VALUES ('+815012345678', '2026-01-15');

INSERT INTO calls (call_sid, parent_call_sid, leg, destination_type, status, status_sequence,
                   to_number, started_at, answered_at, ended_at, duration_s, billable_minutes,
                   charge, currency, rate, billing_month,
                   kintone_app_id, kintone_record_id, user_identity)
VALUES
  ('CA01', NULL, 'browser', 'client', 'completed', 4, NULL,
   '2026-11-10 03:00Z', '2026-11-10 03:00:05Z', '2026-11-10 03:02:10Z', 125, 3,
   0, 'JPY', 0, '2026-11-01', '12', '1001', 'alice'),
  ('CA02', 'CA01', 'pstn', 'mobile', 'completed', 4, '+819012345678',
   '2026-11-10 03:00:01Z', '2026-11-10 03:00:05Z', '2026-11-10 03:02:10Z', 125, 3,
   54, 'JPY', 18, '2026-11-01', '12', '1001', 'alice'),
  ('CA03', 'CA01', 'pstn', 'landline', 'completed', 4, '+81312345678',
   '2026-11-12 05:00Z', '2026-11-12 05:00:03Z', '2026-11-12 05:00:50Z', 47, 1,
   9, 'JPY', 9, '2026-11-01', '12', '1002', 'bob'),
  ('CA04', 'CA01', 'pstn', 'international', 'completed', 4, '+14155550100',
   '2026-11-13 06:00Z', '2026-11-13 06:00:03Z', '2026-11-13 06:01:00Z', 57, 1,
   NULL, 'JPY', NULL, '2026-11-01', '12', '1003', 'bob'),
  ('CA05', NULL, 'browser', 'client', 'ringing', 2, NULL,
   '2026-11-20 07:00Z', NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, '12', '1004', 'carol');
"""


def dashboard_role_sql(database: str, role: str) -> str:
    """The GRANTs docs/dashboards.md tells operators to give Grafana, for this database."""
    doc = (GRAFANA.parent.parent / "docs" / "dashboards.md").read_text()
    (block,) = re.findall(r"```sql\n(.*?)```", doc, re.DOTALL)
    return (
        block.replace("calltrail_dashboards", role)
        .replace("DATABASE calltrail", f'DATABASE "{database}"')
        .replace("'…'", "'unused'")
    )


def cost_queries() -> list[tuple[str, str]]:
    out = [(title, t["rawSql"]) for title, t in targets(load(COSTS))]
    assert len(out) >= 7
    return out


async def test_every_cost_query_runs_on_the_schema_and_finds_the_rows(database_url: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    # Roles are per cluster, and test runs may share one: a name of this run's own.
    role = f"dashboards_{secrets.token_hex(4)}"
    try:
        await connection.execute(SEED)
        database = await connection.fetchval("SELECT current_database()")
        await connection.execute(dashboard_role_sql(database, role))
        results: dict[str, list[asyncpg.Record]] = {}
        for title, sql in cost_queries():
            # Read-only, as the role the docs grant Grafana: a query that writes, or reads
            # a table that role cannot see, fails here.
            async with connection.transaction(readonly=True):
                await connection.execute(f"SET LOCAL ROLE {role}")
                try:
                    results[title] = await connection.fetch(render_sql(sql))
                except asyncpg.PostgresError as error:
                    pytest.fail(f"{title!r}: {error}\n{render_sql(sql)}")
            assert results[title], f"{title!r} found nothing in the seeded month"
    finally:
        await connection.execute(f"DROP OWNED BY {role}; DROP ROLE IF EXISTS {role}")
        await connection.close()

    # Spot-check that the numbers are the ones the rows make, not merely that SQL parses.
    (usage,) = results["Usage charges, month to date"]
    assert (usage["currency"], usage["charge"]) == ("JPY", 63)
    assert results["Call legs"][0]["legs"] == 5
    assert results["Unrated legs"][0]["unrated_legs"] == 1
    assert [r["call_sid"] for r in results["Unrated calls"]] == ["CA04"]
    top = results["Most expensive kintone records (top 20)"]
    assert [(r["kintone_record_id"], r["charge"]) for r in top] == [("1001", 54), ("1002", 9)]
    users = {r["user_identity"]: r["charge"] for r in results["Month to date by user"]}
    assert users == {"alice": 54, "bob": 9, "carol": None}
    (rental,) = results["Number rental"]
    assert (rental["rental_charge"], rental["numbers_held"]) == (550, 1)
    november = [r for r in results["Monthly charges (last 12 months)"] if r["usage_charge"]]
    assert [(r["usage_charge"], r["rental_charge"], r["total"]) for r in november] == [
        (63, 550, 613)
    ]


# ------------------------------------------------------------------ operations: PromQL on code

METRIC = re.compile(r"\bcalltrail_[a-z0-9_]+\b")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
SELECTOR_LABEL = re.compile(r"\{([^}]*)\}")
LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def exposed_series() -> dict[str, set[str]]:
    """Every series name the services expose, mapped to its labels."""
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
    }
    series: dict[str, set[str]] = {}
    for name, (kind, labels) in metric_families().items():
        for suffix in suffixes[kind]:
            extra = {"le"} if suffix == "_bucket" else set()
            series[name + suffix] = labels | extra
    return series


def test_exposed_series_are_what_prometheus_scrapes() -> None:
    series = exposed_series()
    # Sanity of the helper itself: suffixes as prometheus_client exposes them.
    assert "calltrail_http_requests_total" in series
    assert "calltrail_http_request_duration_seconds_bucket" in series
    assert "calltrail_http_request_duration_seconds" not in series
    assert "calltrail_spool_depth" in series
    assert series["calltrail_status_callbacks_total"] == {"status"}


def test_operations_dashboard_uses_only_metrics_and_labels_the_code_registers() -> None:
    series = exposed_series()
    board = load(OPERATIONS)
    used: set[str] = set()
    for title, target in targets(board):
        expr = target["expr"]
        names = set(METRIC.findall(expr))
        assert names, f"{title!r} queries no calltrail metric: {expr}"
        unknown = names - series.keys()
        assert not unknown, f"{title!r} uses metrics no service registers: {unknown}"
        used |= names

        labels = set().union(*(series[name] for name in names)) | TARGET_LABELS
        grouped = {
            label.strip()
            for group in GROUPING.findall(expr)
            for label in group.split(",")
            if label.strip()
        }
        matched = {
            m.split("=")[0].strip().rstrip("!~")
            for selector in SELECTOR_LABEL.findall(expr)
            for m in selector.split(",")
            if m.strip()
        }
        legend = set(LEGEND_LABEL.findall(target.get("legendFormat", "")))
        assert grouped <= labels, f"{title!r} groups by unknown labels {grouped - labels}"
        assert matched <= labels, f"{title!r} selects unknown labels {matched - labels}"
        assert legend <= grouped | matched | TARGET_LABELS, f"{title!r} legend {legend}"

    # The list of what operators watch is all on the dashboard.
    for wanted in (
        "calltrail_http_requests_total",
        "calltrail_http_request_duration_seconds_bucket",
        "calltrail_status_callbacks_total",
        "calltrail_events_published_total",
        "calltrail_spool_depth",
        "calltrail_recorder_consumer_lag",
        "calltrail_recorder_batch_size_bucket",
        "calltrail_recorder_db_write_seconds_bucket",
        "calltrail_kintone_requests_total",
        "calltrail_kintone_requests_today",
        "calltrail_unrated_legs_total",
    ):
        assert wanted in used, f"the operations dashboard does not show {wanted}"
