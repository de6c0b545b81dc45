"""The PrometheusRule of deploy/k8s/base, generated from deploy/prometheus/calltrail-rules.yaml.

The rule file is the one source of truth (a plain Prometheus loads it with ``rule_files``);
the Prometheus Operator wants the same groups inside a PrometheusRule resource, which kustomize
cannot build from a file. A test fails while the committed resource differs from what this
module makes of the rule file::

    python -m services.devtools.prometheus_rule     # rewrites deploy/k8s/base/prometheus-rule.yaml
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # PyYAML (with yamllint, the test extra): no types

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "calltrail-rules.yaml"
RESOURCE = ROOT / "deploy" / "k8s" / "base" / "prometheus-rule.yaml"

HEADER = """\
# Generated from deploy/prometheus/calltrail-rules.yaml by
# `python -m services.devtools.prometheus_rule`: edit the rule file, not this one.
# kube-prometheus-stack selects PrometheusRules by its release label: the production overlay
# adds it, as for the ServiceMonitor.
# yamllint disable rule:line-length
"""


def prometheus_rule(rules: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "calltrail", "labels": {"app.kubernetes.io/name": "calltrail"}},
        "spec": {"groups": rules["groups"]},
    }


def render() -> str:
    """Block style, long strings kept on one line (a PromQL expression or a URL reads best
    unbroken)."""
    resource = prometheus_rule(yaml.safe_load(RULES.read_text()))
    body = yaml.safe_dump(resource, sort_keys=False, allow_unicode=True, width=sys.maxsize)
    return HEADER + str(body)


def main() -> int:
    RESOURCE.write_text(render())
    print(f"wrote {RESOURCE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
