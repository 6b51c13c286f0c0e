"""deploy/ and docs/operations.md agree with the code: commands, probes, ports, users, names."""

from __future__ import annotations

import argparse
import json
import re
import shlex
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel

from scheduler.core.clock import FixedClock
from scheduler.core.policy import load_policy_text
from scheduler.entrypoints.cli import build_parser
from scheduler.entrypoints.metrics import METRIC_NAMES, Metrics, StoreCollector
from scheduler.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCS = ROOT / "docs" / "operations.md"
OPS_PORT = 9464
UID = 10001
COMMANDS = {"serve", "worker", "tick", "migrate"}


def setting_names() -> list[str]:
    names = []
    for name, field in Settings.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            names += [f"GOODWILL_{name.upper()}__{sub.upper()}" for sub in kind.model_fields]
        else:
            names.append(f"GOODWILL_{name.upper()}")
    return names


def yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def k8s_objects() -> dict[tuple[str, str], dict[str, Any]]:
    objects = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml_docs(path):
            if doc.get("kind") != "Kustomization":
                objects[(doc["kind"], doc["metadata"]["name"])] = doc
    return objects


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def systemd_unit() -> dict[str, list[str]]:
    values: dict[str, list[str]] = defaultdict(list)
    for line in (DEPLOY / "systemd" / "goodwill.service").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            values[key.strip()].append(value.strip())
    return values


# -- the CLI the deploy files call -------------------------------------------------------------


def test_deploy_commands_exist_in_the_cli() -> None:
    parser = build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(sub.choices) >= COMMANDS


# -- Dockerfile ----------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_slim_non_root_with_a_curl_free_healthcheck() -> None:
    steps = dockerfile_instructions()
    froms = [rest for kw, rest in steps if kw == "FROM"]
    assert len(froms) >= 2
    assert all(f.startswith("python:3.12-slim") for f in froms)
    assert any(kw == "COPY" and "--from=build" in rest for kw, rest in steps)
    assert any(kw == "RUN" and '".[all]"' in rest for kw, rest in steps)
    users = [rest for kw, rest in steps if kw == "USER"]
    assert users == [str(UID)]
    assert ("EXPOSE", str(OPS_PORT)) in steps
    assert json.loads(dict(steps)["ENTRYPOINT"]) == ["goodwill"]
    assert json.loads(dict(steps)["CMD"]) == ["serve"]
    [health] = [rest for kw, rest in steps if kw == "HEALTHCHECK"]
    assert "/livez" in health
    assert "python" in health
    assert "curl" not in health
    # The embedded probe really is valid Python.
    exec_form = json.loads(health[health.index("CMD") + 3 :].strip())
    assert exec_form[:2] == ["python", "-c"]
    compile(exec_form[2], "<healthcheck>", "exec")


# -- compose -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    [doc] = yaml_docs(DEPLOY / "compose.yaml")
    return doc


def test_compose_services_and_commands(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "migrate", "tick", "worker"}
    assert services["migrate"]["command"] == ["migrate"]
    assert services["tick"]["command"] == ["tick"]
    assert services["worker"]["command"] == ["worker"]
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("tick", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["redis"]["condition"] == "service_healthy"


def test_compose_redis_is_durable_and_never_evicts(compose: dict[str, Any]) -> None:
    command = " ".join(compose["services"]["redis"]["command"])
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command


def test_compose_env_and_ports(compose: dict[str, Any]) -> None:
    published = []
    for name in ("migrate", "tick", "worker"):
        service = compose["services"][name]
        env = service["environment"]
        assert env["GOODWILL_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert env["GOODWILL_BROKER_URL"] == "redis://redis:6379/0"
        assert "GOODWILL_SECRET_KEY" not in env  # comes from the env file
        assert [f["path"] for f in service["env_file"]] == ["goodwill.env"]
        assert set(env) <= set(setting_names())
        published += service.get("ports", [])
    assert published == [f"127.0.0.1:{OPS_PORT}:{OPS_PORT}"]
    for service in compose["services"].values():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:")


# -- Kubernetes --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def k8s() -> dict[tuple[str, str], dict[str, Any]]:
    return k8s_objects()


def port_number(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container["ports"] if p["name"] == port)


@pytest.mark.parametrize(
    ("name", "command", "replicas"), [("tick", "tick", 2), ("worker", "worker", 3)]
)
def test_deployments_probe_ops_endpoint(
    k8s: dict[tuple[str, str], dict[str, Any]], name: str, command: str, replicas: int
) -> None:
    deployment = k8s[("Deployment", f"goodwill-{name}")]
    assert deployment["spec"]["replicas"] == replicas
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["args"] == [command]
    probes = {
        k: container[k]["httpGet"] for k in ("livenessProbe", "readinessProbe", "startupProbe")
    }
    assert probes["livenessProbe"]["path"] == "/livez"
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert probes["startupProbe"]["path"] == "/livez"
    for probe in probes.values():
        assert port_number(container, probe["port"]) == OPS_PORT
    assert container["startupProbe"]["failureThreshold"] >= 10
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["GOODWILL_OPS__PORT"] == str(OPS_PORT)
    assert set(env) <= set(setting_names())
    assert {"secretRef": {"name": "goodwill-env"}} in container["envFrom"]


def test_every_pod_runs_as_non_root(k8s: dict[tuple[str, str], dict[str, Any]]) -> None:
    pods = [
        obj["spec"]["template"]["spec"]
        for obj in k8s.values()
        if obj["kind"] in {"Deployment", "Job"}
    ]
    assert len(pods) == 3
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == UID
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["capabilities"]["drop"] == ["ALL"]
            assert container["args"][0] in COMMANDS


def test_migrate_job_secret_template_and_policies(
    k8s: dict[tuple[str, str], dict[str, Any]],
) -> None:
    job = k8s[("Job", "goodwill-migrate")]["spec"]["template"]["spec"]
    assert job["containers"][0]["args"] == ["migrate"]
    assert job["restartPolicy"] == "Never"
    secret = k8s[("Secret", "goodwill-env")]["stringData"]
    assert "GOODWILL_SECRET_KEY" in secret
    assert set(secret) <= set(setting_names())
    assert all("CHANGE-ME" in v or v.startswith(("redis://", "0000")) for v in secret.values())
    policies = k8s[("ConfigMap", "goodwill-policies")]["data"]
    assert policies
    for filename, text in policies.items():
        load_policy_text(text, source=filename, fmt="yaml")  # raises PolicyError when invalid


def test_kustomization_lists_every_manifest() -> None:
    [kustomization] = yaml_docs(DEPLOY / "k8s" / "kustomization.yaml")
    files = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


# -- systemd -----------------------------------------------------------------------------------


def test_systemd_unit_is_single_process_and_hardened() -> None:
    unit = systemd_unit()
    [start] = unit["ExecStart"]
    assert shlex.split(start)[-1] == "serve"
    assert shlex.split(start)[0].endswith("/goodwill")
    assert unit["DynamicUser"] == ["yes"] or unit.get("User") == ["goodwill"]
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["StateDirectory"] == ["goodwill"]
    assert unit["NoNewPrivileges"] == ["yes"]
    env = dict(e.split("=", 1) for e in unit["Environment"])
    assert env["GOODWILL_DATA_DIR"] == "/var/lib/goodwill"
    assert env["GOODWILL_OPS__HOST"] == "127.0.0.1"
    assert set(env) - {"PYTHONUNBUFFERED"} <= set(setting_names())


# -- docs ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docs() -> str:
    return DOCS.read_text()


def test_docs_name_every_setting(docs: str) -> None:
    missing = [name for name in setting_names() if f"`{name}`" not in docs]
    assert missing == []


class _Store:
    def counts_by_state(self) -> dict[str, int]:
        return {"approved": 1}

    def last_tick(self) -> tuple[str, datetime] | None:
        return ("host:1", datetime(2026, 3, 2, tzinfo=UTC))

    def heartbeat(self, name: str) -> None:
        return None  # no round completed yet: the lease row is used

    def database_now(self) -> datetime:
        return datetime(2026, 3, 2, tzinfo=UTC)


def test_docs_name_every_metric(docs: str) -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    registry.register(StoreCollector(_Store(), FixedClock(datetime(2026, 3, 2, tzinfo=UTC))))
    text = generate_latest(registry).decode()
    # prometheus_client adds a *_created gauge per counter/histogram; it is bookkeeping.
    exposed = {f.name for f in text_string_to_metric_families(text)} - {
        f"{n.removesuffix('_total')}_created" for n in METRIC_NAMES
    }
    # METRIC_NAMES is complete (counters are listed with their _total suffix).
    assert exposed == {n.removesuffix("_total") for n in METRIC_NAMES}
    documented = set(re.findall(r"`(goodwill_[a-z_]+)`", docs))
    assert set(METRIC_NAMES) <= documented


def test_docs_name_every_readiness_check_and_the_google_scopes(docs: str) -> None:
    for check in ("database", "migrations", "broker", "tick", "credentials"):
        assert f"| `{check}` |" in docs
    assert "https://www.googleapis.com/auth/calendar.events," in docs
    assert "https://www.googleapis.com/auth/calendar.events.freebusy" in docs
    for command in COMMANDS:
        assert f"goodwill {command}" in docs
