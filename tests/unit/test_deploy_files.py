"""deploy/: the compose file, Kubernetes manifests, Dockerfile and dashboards hold what
operators rely on. Docker cannot run here, so these are structural checks."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import yaml

from streams import config

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
KNOWN_VARIABLES = {name for name, _, _ in config.describe()}


def load_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_compose_runs_kraft_kafka_two_workers_and_the_monitoring_stack():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert not any("zookeeper" in name for name in services)
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
    workers = [s for name, s in services.items() if name.startswith("liveroom-worker")]
    assert len(workers) >= 2
    for worker in workers:
        assert worker["build"]["dockerfile"] == "Dockerfile"
        assert (DEPLOY / worker["build"]["context"] / "Dockerfile").exists()
        assert worker["environment"]["LIVEROOM_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert set(worker["environment"]) <= KNOWN_VARIABLES
        assert worker["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"
    defaults = config.load({})
    created = re.findall(r"liveroom\.[a-z-]+", " ".join(services["kafka-init"]["command"]))
    assert set(created) == {
        *defaults.input_topics,
        *defaults.output_topics,
        defaults.topic_room_events,
        defaults.topic_room_state,
    }
    for name in ("prometheus", "alertmanager", "grafana"):
        for volume in services[name].get("volumes", []):
            assert (DEPLOY / volume.split(":")[0]).exists(), volume
    assert services["loadgen"]["profiles"] == ["loadgen"]


def test_kubernetes_manifests():
    kustomization = yaml.safe_load((DEPLOY / "k8s/kustomization.yaml").read_text())
    docs = {}
    for resource in kustomization["resources"]:
        for doc in load_all(DEPLOY / "k8s" / resource):
            assert {"apiVersion", "kind", "metadata"} <= set(doc), resource
            docs[(doc["kind"], doc["metadata"]["name"])] = doc
    deployment = docs[("Deployment", "liveroom-worker")]
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert (
        deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    )
    container = pod["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    secret_refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["name"]
        for e in container["env"]
        if "valueFrom" in e
    }
    assert secret_refs == {
        "LIVEROOM_KAFKA_SASL_USERNAME": "liveroom-kafka",
        "LIVEROOM_KAFKA_SASL_PASSWORD": "liveroom-kafka",
    }
    assert ("Secret", "liveroom-kafka") in docs
    configmap = docs[("ConfigMap", "liveroom-config")]["data"]
    env_names = set(configmap) | {e["name"] for e in container["env"]}
    assert env_names <= KNOWN_VARIABLES
    # the ConfigMap's settings are valid for the program itself
    config.load({**configmap, "LIVEROOM_KAFKA_SASL_USERNAME": "u"})
    service = docs[("Service", "liveroom-worker")]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_dockerfile_is_slim_non_root_and_health_checked():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.M)
    users = re.findall(r"^USER (\S+)$", dockerfile, re.M)
    assert users and users[-1] not in ("root", "0")
    assert "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile


def test_dashboards_are_what_the_generator_writes(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("build", DEPLOY / "grafana/build_dashboards.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    monkeypatch.setattr(build, "OUT", tmp_path)
    build.main()
    generated = sorted(p.name for p in tmp_path.glob("*.json"))
    assert generated == ["liveroom-overview.json", "liveroom-processor.json", "liveroom-room.json"]
    for name in generated:
        committed = json.loads((DEPLOY / "grafana/dashboards" / name).read_text())
        assert json.loads((tmp_path / name).read_text()) == committed, (
            f"{name} is stale: run `make dashboards`"
        )
    room = json.loads((DEPLOY / "grafana/dashboards/liveroom-room.json").read_text())
    assert [v["name"] for v in room["templating"]["list"]] == ["room_id"]
    assert room["annotations"]["list"], "the drill-down shows alert annotations"
