"""The operations page's "Deploy on Kubernetes" against the manifests: the overlay it tells
operators to write builds, and every name, label, port and namespace its commands use exists."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from tests.unit.deploy.test_manifests import (
    K8S,
    ROOT,
    build,
    container_of,
    kustomize,
    of_kind,
    one,
    resolved_env,
)

OPERATIONS = (ROOT / "docs" / "operations.md").read_text()
SECTION = OPERATIONS[OPERATIONS.index("## Deploy on Kubernetes") : OPERATIONS.index("## Logs")]


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", SECTION, re.DOTALL)


def build_readme_overlay(tmp_path: Path) -> tuple[dict[str, Any], ...]:
    """Step 3: the production overlay with the page's example changes, as an operator's copy."""
    (snippet,) = blocks("yaml")
    overlay = yaml.safe_load(snippet)
    overlay["resources"] = [os.path.relpath(K8S / "overlays" / "production", tmp_path)]
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(overlay, allow_unicode=True))
    return kustomize(tmp_path)


def test_the_example_overlay_builds_and_serves_its_public_url(tmp_path: Path) -> None:
    docs = build_readme_overlay(tmp_path)
    gateway = resolved_env(docs, container_of(docs, "gateway"))
    recorder = resolved_env(docs, container_of(docs, "recorder"))
    assert gateway["PUBLIC_BASE_URL"] == "https://calltrail.acme.co.jp"
    assert recorder["KINTONE_WRITEBACK"] == "subtable"
    assert gateway["KAFKA_BOOTSTRAP"] == recorder["KAFKA_BOOTSTRAP"]
    ingress = one(docs, "Ingress", "calltrail-gateway")
    host = urlsplit(gateway["PUBLIC_BASE_URL"]).hostname
    assert ingress["spec"]["tls"][0]["hosts"] == [host]
    assert [rule["host"] for rule in ingress["spec"]["rules"]] == [host]


def test_shipped_overlays_serve_their_public_url() -> None:
    for overlay in ("dev", "production"):
        docs = build(overlay)
        host = urlsplit(resolved_env(docs, container_of(docs, "gateway"))["PUBLIC_BASE_URL"])
        for rule in one(docs, "Ingress", "calltrail-gateway")["spec"]["rules"]:
            assert rule.get("host") in (None, host.hostname), overlay


def test_the_commands_name_what_the_manifests_hold() -> None:
    docs = build("production")
    commands = "\n".join(blocks("sh"))
    for key, value in re.findall(r"-l ([\w./-]+)=([\w.-]+)", commands):
        matching = [d for d in docs if d["metadata"].get("labels", {}).get(key) == value]
        assert matching, f"-l {key}={value} selects nothing"
    # The topics are waited for where the production overlay puts them.
    (namespace,) = re.findall(r"-n (\S+) wait [^\n]* kafkatopic -l", commands)
    assert {t["metadata"]["namespace"] for t in of_kind(docs, "KafkaTopic")} == {namespace}
    for kind, name in re.findall(r"\s(job|deployment|deploy|svc)/([\w-]+)", commands):
        full = {"job": "Job", "deployment": "Deployment", "deploy": "Deployment", "svc": "Service"}
        assert one(docs, full[kind], name)["metadata"]["namespace"] == "calltrail"
    for name, port in re.findall(r"port-forward svc/([\w-]+) (\d+)", commands):
        ports = [p["port"] for p in one(docs, "Service", name)["spec"]["ports"]]
        assert int(port) in ports, f"{name} has no port {port}"
    secret_keys = set(re.findall(r"--from-literal=(\w+)=", commands))
    referenced = {
        var["valueFrom"]["secretKeyRef"]["key"]
        for workload in of_kind(docs, "Deployment") + of_kind(docs, "Job")
        for container in workload["spec"]["template"]["spec"]["containers"]
        for var in container.get("env", [])
        if "secretKeyRef" in var.get("valueFrom", {})
    }
    assert secret_keys == referenced
