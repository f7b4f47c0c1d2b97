"""The overlays (deploy/overlays/dev, prod) render with `kubectl kustomize` into manifests that are
strictly valid, custom resources included (Strimzi Kafka, KafkaNodePool, KafkaTopic; ServiceMonitor:
their schemas are in deploy/schemas), and that agree with each other and with the code: partitions
and replication of every topic, probes on the ops port, autoscaling within the partition count,
the network open only at the edge and to the buyers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema  # a dependency of kubernetes-validate (its schemas are JSON Schema too)
import kubernetes_validate
import pytest
import yaml

from switchboard.platform.settings import KafkaSettings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SCHEMAS = DEPLOY / "schemas"
OVERLAYS = sorted(p.name for p in (DEPLOY / "overlays").iterdir() if (p / "kustomization.yaml").is_file())
SERVICES = {"ivr", "router", "bidder", "queue", "cti", "analytics"}
K8S_VERSION = "1.30.0"
# The CRDs the manifests use, by (apiVersion, kind): the schema file shipped for each.
CRD_SCHEMAS = {
    ("kafka.strimzi.io/v1beta2", "Kafka"): "kafka.strimzi.io_v1beta2_kafka.json",
    ("kafka.strimzi.io/v1beta2", "KafkaNodePool"): "kafka.strimzi.io_v1beta2_kafkanodepool.json",
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"): "kafka.strimzi.io_v1beta2_kafkatopic.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com_v1_servicemonitor.json",
}

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) is not installed")


@cache
def render(path: str) -> tuple[dict[str, Any], ...]:
    out = subprocess.run(["kubectl", "kustomize", str(DEPLOY / path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


def validate(doc: dict[str, Any]) -> None:
    """Strict: an unknown or misspelt field fails, built-in kinds and custom resources alike."""
    key = (doc["apiVersion"], doc["kind"])
    where = f"{doc['kind']}/{doc['metadata']['name']}"
    if key in CRD_SCHEMAS:
        schema = json.loads((SCHEMAS / CRD_SCHEMAS[key]).read_text())
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
        if errors:
            pytest.fail(f"{where}: " + "; ".join(f"{e.message} at {list(e.path)}" for e in errors))
        return
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        pytest.fail(f"{where}: no schema for {key}: ship the CRD's in deploy/schemas and name it in CRD_SCHEMAS")
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{where} is not valid Kubernetes {K8S_VERSION}: {exc.message} at {list(exc.path)}")


def of_kind(docs: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def settings_of(docs: tuple[dict[str, Any], ...]) -> dict[str, str]:
    [cm] = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("switchboard-settings")]
    return cm["data"]


def test_the_overlays_exist():
    assert {"dev", "prod"} <= set(OVERLAYS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_strictly_valid_manifests(overlay):
    docs = render(f"overlays/{overlay}")
    kinds = {d["kind"] for d in docs}
    assert {"Kafka", "KafkaNodePool", "KafkaTopic", "StatefulSet", "ServiceMonitor", "NetworkPolicy"} <= kinds
    assert set(of_kind(docs, "Deployment")) == SERVICES
    for doc in docs:
        validate(doc)
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {"switchboard"}


COMPONENTS = sorted(p.name for p in (DEPLOY / "components").iterdir() if (p / "kustomization.yaml").is_file())


@pytest.mark.parametrize("component", COMPONENTS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_with_each_component_renders_strictly_valid_manifests(overlay, component, tmp_path):
    """The components still apply on top of the overlays (their JSON patches find their paths)."""
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(DEPLOY / "overlays" / overlay, tmp_path)],
                "components": [os.path.relpath(DEPLOY / "components" / component, tmp_path)],
            }
        )
    )
    out = subprocess.run(["kubectl", "kustomize", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    assert {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"} == SERVICES
    for doc in docs:
        validate(doc)


def test_the_crd_schemas_refuse_unknown_fields():
    """The shipped schemas are strict at the spec level: a misspelt field fails, as the API server would refuse it."""
    docs = render("overlays/prod")
    for kind, bad in [
        ("Kafka", {"entityOperatr": {}}),
        ("KafkaNodePool", {"replica": 3}),
        ("KafkaTopic", {"partition": 3}),
        ("ServiceMonitor", {"endpoint": []}),
    ]:
        doc = json.loads(json.dumps(next(d for d in docs if d["kind"] == kind)))
        doc["spec"] |= bad
        with pytest.raises(pytest.fail.Exception, match="Additional properties are not allowed"):
            validate(doc)
    topic = json.loads(json.dumps(next(d for d in docs if d["kind"] == "KafkaTopic")))
    topic["spec"]["partitions"] = "12"
    with pytest.raises(pytest.fail.Exception, match="is not of type 'integer'"):
        validate(topic)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kafka_topics_and_settings_agree(overlay):
    """Every KafkaTopic has the services' partition count and replication factor, within the cluster's nodes."""
    docs = render(f"overlays/{overlay}")
    settings = settings_of(docs)
    kafka_settings = KafkaSettings(
        **{k[len("SWITCHBOARD_KAFKA_") :].lower(): v for k, v in settings.items() if k.startswith("SWITCHBOARD_KAFKA_")}
    )
    [kafka] = of_kind(docs, "Kafka").values()
    brokers = sum(
        p["spec"]["replicas"]
        for p in of_kind(docs, "KafkaNodePool").values()
        if p["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"] and "broker" in p["spec"]["roles"]
    )
    rf = kafka_settings.replication_factor
    assert rf <= brokers, f"replication factor {rf} needs {rf} brokers, the node pools have {brokers}"
    config = kafka["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] == rf
    assert config["offsets.topic.replication.factor"] <= brokers
    # One broker may be down (a rolling restart) and producers with acks=all still write: min ISR < RF when RF > 1.
    assert config["min.insync.replicas"] == (rf - 1 if rf > 1 else 1)
    assert config["auto.create.topics.enable"] is False
    assert kafka_settings.bootstrap_servers == f"{kafka['metadata']['name']}-kafka-bootstrap:9092"
    for topic in of_kind(docs, "KafkaTopic").values():
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        assert (topic["spec"]["partitions"], topic["spec"]["replicas"]) == (kafka_settings.partitions, rf), topic["spec"][
            "topicName"
        ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_serve_ops_and_are_hardened(overlay):
    docs = render(f"overlays/{overlay}")
    settings = settings_of(docs)
    assert (settings["SWITCHBOARD_OPS_HOST"], settings["SWITCHBOARD_OPS_PORT"]) == ("0.0.0.0", "9400")
    accounts = of_kind(docs, "ServiceAccount")
    for name, deployment in of_kind(docs, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        assert accounts[pod["serviceAccountName"]]["automountServiceAccountToken"] is False
        assert pod["automountServiceAccountToken"] is False and pod["securityContext"]["runAsNonRoot"] is True
        for c in [*pod.get("initContainers", []), *pod["containers"]]:
            assert c["securityContext"]["readOnlyRootFilesystem"] is True, f"{name}/{c['name']}"
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, f"{name}/{c['name']}"
        [c] = pod["containers"]
        assert {"name": "ops", "containerPort": 9400} in c["ports"]
        assert {p: c[p]["httpGet"]["path"] for p in ("startupProbe", "livenessProbe", "readinessProbe")} == {
            "startupProbe": "/readyz",
            "livenessProbe": "/livez",
            "readinessProbe": "/readyz",
        }
        assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] >= 180, "slow recoveries need time"
    # ClickHouse too: non-root, read-only root, data on a claim.
    clickhouse = of_kind(docs, "StatefulSet")["clickhouse"]
    [c] = clickhouse["spec"]["template"]["spec"]["containers"]
    assert c["image"].startswith("clickhouse/clickhouse-server:")
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert clickhouse["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert {m["mountPath"]: m["name"] for m in c["volumeMounts"]}["/var/lib/clickhouse"] == "data"
    assert [t["metadata"]["name"] for t in clickhouse["spec"]["volumeClaimTemplates"]] == ["data"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_analytics_writes_to_the_clickhouse_server_after_its_migration(overlay):
    docs = render(f"overlays/{overlay}")
    pod = of_kind(docs, "Deployment")["analytics"]["spec"]["template"]["spec"]
    [migrate] = pod["initContainers"]
    assert migrate["command"][:3] == ["python", "-m", "switchboard.services.analytics.migrate"]
    assert migrate["image"] == pod["containers"][0]["image"]
    assert migrate["env"] == pod["containers"][0]["env"], "the migration step applies the schema where the sink writes"
    for c in (migrate, pod["containers"][0]):
        env = {e["name"]: e for e in c["env"]}
        assert env["SWITCHBOARD_ANALYTICS_DSN"]["value"].startswith("http://switchboard:$(CLICKHOUSE_PASSWORD)@clickhouse:8123/")
        assert list(env).index("CLICKHOUSE_PASSWORD") < list(env).index("SWITCHBOARD_ANALYTICS_DSN"), (
            "$(VAR) needs it defined first"
        )
    assert not [v for v in pod["volumes"] if "chdb" in v["name"]], "no embedded chDB on an emptyDir in the cluster"
    assert "SWITCHBOARD_ANALYTICS_DSN" not in settings_of(docs)
    [service] = [
        s for s in of_kind(docs, "Service").values() if s["spec"]["selector"] == {"app.kubernetes.io/name": "clickhouse"}
    ]
    assert service["metadata"]["name"] == "clickhouse" and service["spec"]["ports"][0]["port"] == 8123


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_autoscaling_only_where_safe_and_within_the_partitions(overlay):
    docs = render(f"overlays/{overlay}")
    partitions = int(settings_of(docs)["SWITCHBOARD_KAFKA_PARTITIONS"])
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in of_kind(docs, "HorizontalPodAutoscaler").values()}
    assert set(hpas) == {"router", "bidder", "ivr"}  # queue: one owner; cti, analytics: by hand (deploy/base/hpa.yaml)
    deployments = of_kind(docs, "Deployment")
    for name, hpa in hpas.items():
        assert "replicas" not in deployments[name]["spec"], f"{name}: the HPA owns the count; a replicas field resets it on apply"
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    for consumer in ("router", "bidder"):
        assert hpas[consumer]["spec"]["maxReplicas"] <= partitions
    assert deployments["queue"]["spec"]["replicas"] == 1 and deployments["queue"]["spec"]["strategy"]["type"] == "Recreate"
    pdbs = {
        p["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]: p for p in of_kind(docs, "PodDisruptionBudget").values()
    }
    assert set(pdbs) == SERVICES
    assert all(p["spec"] == {"maxUnavailable": 1, "selector": p["spec"]["selector"]} for p in pdbs.values())


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        assert expr["operator"] == "In", "the test reads In expressions only"
        if labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_is_closed_but_for_the_edge_the_buyers_and_the_crms(overlay):
    docs = render(f"overlays/{overlay}")
    policies = list(of_kind(docs, "NetworkPolicy").values())
    [deny] = [
        p for p in policies if p["spec"]["podSelector"] == {} and not p["spec"].get("ingress") and not p["spec"].get("egress")
    ]
    assert set(deny["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    pods = {
        name: d["spec"]["template"]["metadata"]["labels"]
        for name, d in [*of_kind(docs, "Deployment").items(), *of_kind(docs, "StatefulSet").items()]
    }

    def rules(direction: str, pod: str) -> list[dict[str, Any]]:
        return [
            rule
            for p in policies
            if direction.capitalize() in p["spec"]["policyTypes"] and _selects(p["spec"]["podSelector"], pods[pod])
            for rule in p["spec"].get(direction, [])
        ]

    def open_to_outside(rule: dict[str, Any], key: str) -> bool:
        """A rule any address matches: no peers, or an ipBlock peer."""
        return not rule.get(key) or any("ipBlock" in peer for peer in rule[key])

    outside_in = {pod for pod in pods if any(open_to_outside(r, "from") for r in rules("ingress", pod))}
    outside_out = {pod for pod in pods if any(open_to_outside(r, "to") for r in rules("egress", pod))}
    assert outside_in == {"ivr"}, "only the edge takes connections from anywhere"
    assert outside_out == {"bidder", "cti"}, "only the bidder (to the buyers) and cti (to the CRMs' webhooks) call out"
    [edge] = [r for r in rules("ingress", "ivr") if open_to_outside(r, "from")]
    assert {p["port"] for p in edge["ports"]} == {"grpc", "http"}
    [buyers] = [r for r in rules("egress", "bidder") if open_to_outside(r, "to")]
    assert [p["port"] for p in buyers["ports"]] == [443]
    [crms] = [r for r in rules("egress", "cti") if open_to_outside(r, "to")]
    assert [p["port"] for p in crms["ports"]] == [443]
    for pod in pods:  # everyone resolves names
        assert any(p.get("port") == 53 for r in rules("egress", pod) for p in r.get("ports", [])), pod
    for service in SERVICES:
        assert any(
            _selects(peer.get("podSelector", {}), {"strimzi.io/cluster": "switchboard", "strimzi.io/broker-role": "true"})
            for r in rules("egress", service)
            for peer in r.get("to", [])
            if "podSelector" in peer
        ), f"{service} cannot reach Kafka"
        assert any(p.get("port") == "ops" for r in rules("ingress", service) for p in r.get("ports", [])), f"{service}: no scrape"
    assert any(
        _selects(peer.get("podSelector", {}), pods["clickhouse"])
        for r in rules("egress", "analytics")
        for peer in r.get("to", [])
    )
    assert [peer["podSelector"] for r in rules("ingress", "clickhouse") for peer in r["from"]] == [
        {"matchLabels": {"app.kubernetes.io/name": "analytics"}}
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_monitor_scrapes_every_service_ops_port(overlay):
    docs = render(f"overlays/{overlay}")
    [monitor] = of_kind(docs, "ServiceMonitor").values()
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["ops"]
    selected = [s for s in of_kind(docs, "Service").values() if _selects(monitor["spec"]["selector"], s["metadata"]["labels"])]
    jobs = {s["metadata"]["labels"][monitor["spec"]["jobLabel"]] for s in selected}
    assert jobs == SERVICES, "one Prometheus job per service, named after it"
    for s in selected:
        assert [(p["name"], p["port"], p["targetPort"]) for p in s["spec"]["ports"]] == [("ops", 9400, "ops")]
    [dashboard] = [d for d in docs if d["kind"] == "ConfigMap" and "switchboard.json" in d.get("data", {})]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["switchboard.json"]) == json.loads((DEPLOY / "grafana" / "switchboard.json").read_text())


@pytest.mark.parametrize(
    ("deployment", "prefix", "volume", "secret"),
    [("ivr", "SWITCHBOARD_IVR_GRPC_", "edge", "ivr-edge"), ("queue", "SWITCHBOARD_QUEUE_DESK_", "desk", "queue-desk")],
)
def test_the_grpc_servers_are_closed_in_prod_and_open_only_in_dev(deployment, prefix, volume, secret):
    """The ivr refuses an open gRPC edge and the queue an open AgentDesk unless told (<prefix>INSECURE): prod
    gives them TLS and tokens from a Secret, dev opens them explicitly; neither would start otherwise."""
    for overlay, open_port in (("dev", True), ("prod", False)):
        (container,) = of_kind(render(f"overlays/{overlay}"), "Deployment")[deployment]["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        if open_port:
            assert env.get(f"{prefix}INSECURE") == "true"
            assert not any(k.startswith(f"{prefix}TLS") or k.endswith("TOKENS_FILE") for k in env)
            continue
        assert f"{prefix}INSECURE" not in env
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        for key in ("TLS_CERT_FILE", "TLS_KEY_FILE", "TOKENS_FILE"):
            assert env[prefix + key].startswith(mounts[volume] + "/"), key
        volumes = {
            v["name"]: v
            for v in of_kind(render("overlays/prod"), "Deployment")[deployment]["spec"]["template"]["spec"]["volumes"]
        }
        assert volumes[volume]["secret"]["secretName"] == secret
