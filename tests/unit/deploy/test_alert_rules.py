"""The alerting rules (deploy/prometheus/calltrail-rules.yaml) against CONTRACT.md section 13,
the metrics the services really expose, and promtool (its checks and the rule unit tests in
calltrail-rules.test.yaml). ``make test`` installs promtool (Debian's prometheus package)."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from services.devtools.prometheus_rule import RESOURCE, ROOT, RULES, render
from tests.metric_families import metric_families
from tests.unit.docs.test_docs import anchors

RULES_TEST = RULES.with_name("calltrail-rules.test.yaml")
RUNBOOKS = ROOT / "docs" / "operations.md"
# CONTRACT.md section 13: the names people route and silence on, and their severities.
CONTRACT_ALERTS = {
    "CalltrailGatewayDown": "page",
    "CalltrailRecorderDown": "page",
    "CalltrailEventsRefused": "page",
    "CalltrailSpoolBacklog": "page",
    "CalltrailRecorderLagging": "page",
    "CalltrailDatabaseFailing": "page",
    "CalltrailKintoneWritebackFailing": "page",
    "CalltrailKintoneDailyQuota": "ticket",
    "CalltrailDeadLetters": "ticket",
    "CalltrailUnratedLegs": "ticket",
    "CalltrailTwilioSignatureRejected": "ticket",
}
JOBS = {"calltrail-gateway", "calltrail-recorder"}
SCRAPE_LABELS = {"job", "instance"}  # what Prometheus adds to every scraped series
SELECTOR = re.compile(r"\b(calltrail_\w+)(?:\{([^}]*)\})?")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
MATCHER = re.compile(r'(\w+)\s*(?:=~|!~|!=|=)\s*"')


def alert_rules() -> list[dict[str, Any]]:
    rules = yaml.safe_load(RULES.read_text())
    return [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool not found: `make prometheus` installs Debian's prometheus package"
    return found


def run_promtool(*args: str) -> None:
    result = subprocess.run(
        [promtool(), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=RULES.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_checks_the_rule_file() -> None:
    run_promtool("check", "rules", RULES.name)


def test_promtool_rule_tests_pass() -> None:
    run_promtool("test", "rules", RULES_TEST.name)


def test_every_contract_alert_is_there_with_its_severity() -> None:
    found = {rule["alert"]: rule.get("labels", {}).get("severity") for rule in alert_rules()}
    assert found == CONTRACT_ALERTS


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_every_alert_carries_its_severity_and_annotations(rule: dict[str, Any]) -> None:
    assert rule.get("labels", {}).get("severity") in {"page", "ticket"}
    annotations = rule.get("annotations", {})
    assert {"summary", "description", "runbook_url"} <= set(annotations)
    assert annotations["runbook_url"].endswith("docs/operations.md#" + rule["alert"].lower())
    # The values that fired it: $value, except where the value says nothing (absent() is 1).
    if not rule["expr"].startswith("absent("):
        assert "$value" in annotations["description"]


def test_every_runbook_url_leads_to_its_section_of_the_operations_page() -> None:
    sections = anchors(RUNBOOKS)
    missing = {
        rule["alert"]
        for rule in alert_rules()
        if rule["annotations"]["runbook_url"].rpartition("#")[2] not in sections
    }
    assert not missing, f"no runbook in docs/operations.md for {sorted(missing)}"


def test_every_alert_is_tested_by_promtool() -> None:
    tested = yaml.safe_load(RULES_TEST.read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tested
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")
    }
    assert fired == set(CONTRACT_ALERTS)


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_expressions_read_only_exposed_metrics_and_labels(rule: dict[str, Any]) -> None:
    families = metric_families()
    expr = rule["expr"]
    for name, matchers in SELECTOR.findall(expr):
        family = name.removesuffix("_total")
        assert family in families, f"{rule['alert']}: {name} is not exposed by the services"
        kind, labels = families[family]
        assert name.endswith("_total") == (kind == "counter"), f"{name} is a {kind}"
        used = set(MATCHER.findall(matchers))
        assert used <= labels | SCRAPE_LABELS, f"{rule['alert']}: {name} has no {used - labels}"
    grouped = {label.strip() for found in GROUPING.findall(expr) for label in found.split(",")}
    every_label = set().union(*(labels for _, labels in families.values()))
    assert grouped <= every_label | SCRAPE_LABELS, rule["alert"]
    assert set(re.findall(r'job="([^"]*)"', expr)) <= JOBS
    assert re.findall(r'job="', expr), f"{rule['alert']}: say which job it reads"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_every_wait_is_in_for(rule: dict[str, Any]) -> None:
    # A wait inside the expression could not be shortened by a test, nor seen in the UI.
    assert "_over_time(" not in rule["expr"], rule["alert"]


def test_prometheus_rule_resource_is_current() -> None:
    assert RESOURCE.read_text() == render(), (
        f"{RESOURCE.name} is out of date: python -m services.devtools.prometheus_rule"
    )
