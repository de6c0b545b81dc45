"""Benchmark: evaluating the alerting rules over a day of series of four gateways and one
recorder, with promtool.

    .venv/bin/python bench/rules.py [--gateways 4] [--hours 24] [--scrape 30] [--runs 3]

Writes a promtool rule test whose input is every series the services expose, with the label
values a busy deployment has (8 routes × 4 statuses, 14 latency buckets a route, …), one sample
per scrape for ``--hours``; promtool then evaluates the rule group at every scrape, as
Prometheus would. The same test without rules is timed too: the difference, divided by the
evaluations, is what one evaluation of the group costs.

Figures are printed and written to bench/results/rules.json.
Target (issue 23): negligible beside a Prometheus's other work (well under 10 ms an evaluation).
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "deploy" / "prometheus" / "calltrail-rules.yaml"
RESULTS = ROOT / "bench" / "results"
ROUTES = ("/twilio/status", "/twiml/voice", "/twiml/incoming", "/twiml/sip", "/token")
ROUTES += ("/healthz", "/readyz", "/metrics")
LE = ("0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0")
LE += ("2.5", "5.0", "10.0", "+Inf")
STATUSES = ("queued", "initiated", "ringing", "in-progress", "completed", "busy", "no-answer")
STATUSES += ("canceled", "failed")


def day_of_series(gateways: int, samples: int) -> list[dict[str, str]]:
    """Every series the services expose, steady: counters rising, nothing firing."""
    out: list[dict[str, str]] = []

    def add(name: str, labels: dict[str, str], values: str) -> None:
        selector = ", ".join(f'{key}="{value}"' for key, value in labels.items())
        out.append({"series": f"{name}{{{selector}}}", "values": values})

    rising, flat = f"0+3x{samples}", f"0x{samples}"
    for i in range(gateways):
        t = {"job": "calltrail-gateway", "instance": f"10.0.0.{i}:8080"}
        add("up", t, f"1x{samples}")
        for route in ROUTES:
            for status in ("200", "204", "403", "503"):
                add(
                    "calltrail_http_requests_total",
                    {**t, "route": route, "method": "POST", "status": status},
                    rising,
                )
            for n, le in enumerate(LE):
                bucket = {**t, "route": route, "le": le}
                add("calltrail_http_request_duration_seconds_bucket", bucket, f"0+{n}x{samples}")
            add("calltrail_http_request_duration_seconds_sum", {**t, "route": route}, rising)
            add("calltrail_http_request_duration_seconds_count", {**t, "route": route}, rising)
        for status in STATUSES:
            add("calltrail_status_callbacks_total", {**t, "status": status}, rising)
        for outcome in ("broker", "spool", "failed"):
            add("calltrail_events_published_total", {**t, "outcome": outcome}, flat)
        for reason in ("signature", "token_key", "rate_limit_address", "rate_limit_identity"):
            add("calltrail_requests_rejected_total", {**t, "reason": reason}, flat)
        for kind, outcome in itertools.product(
            ("number", "line"), ("rung", "answered", "forwarded", "forward_answered", "unanswered")
        ):
            add("calltrail_inbound_calls_total", {**t, "kind": kind, "outcome": outcome}, rising)
        for outcome in ("dialled", "refused"):
            add("calltrail_dials_total", {**t, "outcome": outcome}, rising)
        add("calltrail_spool_depth", t, flat)
        add("calltrail_publish_groups_total", t, rising)
        add("calltrail_access_tokens_issued_total", t, rising)
    t = {"job": "calltrail-recorder", "instance": "10.0.1.0:8081"}
    add("up", t, f"1x{samples}")
    for outcome in ("new", "duplicate", "dead_lettered"):
        add("calltrail_recorder_events_total", {**t, "outcome": outcome}, flat)
    for outcome in ("written", "retried", "parked"):
        add("calltrail_kintone_writebacks_total", {**t, "outcome": outcome}, rising)
    for outcome in ("ok", "conflict", "rate_limited", "unavailable"):
        add("calltrail_kintone_requests_total", {**t, "outcome": outcome}, rising)
    add("calltrail_kintone_requests_today", {**t, "app": "12"}, f"100x{samples}")
    add("calltrail_kintone_writeback_oldest_seconds", t, f"10x{samples}")
    add("calltrail_recorder_consumer_lag", t, f"5x{samples}")
    add("calltrail_recorder_db_failures_total", t, flat)
    add("calltrail_unrated_legs_total", t, flat)
    for name, buckets in (
        ("calltrail_recorder_batch_size", 10),
        ("calltrail_recorder_db_write_seconds", 12),
    ):
        for n in range(buckets):
            add(f"{name}_bucket", {**t, "le": str(n)}, f"0+{n}x{samples}")
        add(f"{name}_sum", t, rising)
        add(f"{name}_count", t, rising)
    return out


def rule_test(rule_file: str, series: list[dict[str, str]], scrape_s: int, hours: int) -> Any:
    last = f"{hours * 60 - 1}m"
    return {
        "rule_files": [rule_file],
        "evaluation_interval": f"{scrape_s}s",
        "tests": [
            {
                "interval": f"{scrape_s}s",
                "input_series": series,
                # Nothing fires on a quiet day: the test passes, every evaluation ran.
                "alert_rule_test": [
                    {"eval_time": last, "alertname": "CalltrailGatewayDown", "exp_alerts": []}
                ],
            }
        ],
    }


def timed(promtool: str, test: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [promtool, "test", "rules", test.name], cwd=test.parent, check=True, capture_output=True
    )
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateways", type=int, default=4)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--scrape", type=int, default=30, help="seconds between samples")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    promtool = shutil.which("promtool")
    if promtool is None:
        parser.error("promtool not found: `make prometheus` installs it")
    samples = args.hours * 3600 // args.scrape
    series = day_of_series(args.gateways, samples)
    with tempfile.TemporaryDirectory(prefix="calltrail-rules-") as name:
        tmp = Path(name)
        shutil.copy(RULES, tmp / RULES.name)
        (tmp / "none.yaml").write_text("groups: []\n")
        seconds = {}
        for rules in (RULES.name, "none.yaml"):
            test = tmp / f"test-{rules}"
            test.write_text(yaml.safe_dump(rule_test(rules, series, args.scrape, args.hours)))
            seconds[rules] = statistics.median(timed(promtool, test) for _ in range(args.runs))
    evaluations = samples
    per_evaluation_ms = 1000 * (seconds[RULES.name] - seconds["none.yaml"]) / evaluations
    result = {
        "series": len(series),
        "samples_per_series": samples,
        "evaluations": evaluations,
        "seconds_with_rules": round(seconds[RULES.name], 3),
        "seconds_without_rules": round(seconds["none.yaml"], 3),
        "ms_per_evaluation": round(per_evaluation_ms, 3),
    }
    print(
        f"rules: {len(series)} series ({args.gateways} gateways, 1 recorder), {samples} samples"
        f" each; {evaluations} evaluations of the group: {seconds[RULES.name]:.2f}s with the"
        f" rules, {seconds['none.yaml']:.2f}s without (median of {args.runs}):"
        f" {per_evaluation_ms:.2f} ms an evaluation"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "rules.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
