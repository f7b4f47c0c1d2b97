"""The Kubernetes manifests parse, run every service hardened, and ship a valid routing config."""

import os
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import trustme
import yaml

from switchboard.platform.configfile import load_config
from switchboard.platform.settings import KafkaSettings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SERVICES = {"ivr", "router", "bidder", "queue", "cti", "analytics"}


def _docs():
    kust = yaml.safe_load((DEPLOY / "base" / "kustomization.yaml").read_text())
    for res in kust["resources"]:
        yield from (d for d in yaml.safe_load_all((DEPLOY / "base" / res).read_text()) if d)


def test_every_service_has_a_hardened_deployment():
    deployments = {d["metadata"]["name"]: d for d in _docs() if d["kind"] == "Deployment"}
    assert set(deployments) == SERVICES
    for name, d in deployments.items():
        pod = d["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        (c,) = pod["containers"]
        assert c["command"][-1] == f"switchboard.services.{name}"
        assert c["image"] == f"switchboard-{name}", "one image per service (deploy/Dockerfile, SERVICE build arg)"
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["serviceAccountName"] == name and pod["automountServiceAccountToken"] is False
        # The ops server's honest health (docs/OPERATIONS.md), not a file written once.
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "ops"}
        assert c["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "ops"}
        assert c["startupProbe"]["httpGet"] == {"path": "/readyz", "port": "ops"}
        assert {"name": "ops", "containerPort": 9400} in c["ports"]


def test_every_service_image_is_set_in_one_place():
    kust = yaml.safe_load((DEPLOY / "base" / "kustomization.yaml").read_text())
    assert {i["name"]: i["newName"] for i in kust["images"]} == {f"switchboard-{s}": f"ghcr.io/switchboard/{s}" for s in SERVICES}


def test_base_routing_config_is_valid():
    load_config(DEPLOY / "base" / "routing.yaml")


@pytest.mark.parametrize("k8s_version", ["1.30.0", kubernetes_validate.utils.latest_version()])
def test_every_manifest_matches_the_kubernetes_schema(k8s_version):
    """Strict: an unknown or misspelt field (e.g. `readinesProbe`) fails, as `kubectl apply --validate=strict` would."""
    docs = list(_docs())
    assert len(docs) >= len(SERVICES)
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, k8s_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(
                f"{doc['kind']}/{doc['metadata']['name']} is not valid Kubernetes {k8s_version}: {exc.message} at {list(exc.path)}"
            )


COMPONENTS = sorted(p.name for p in (DEPLOY / "components").iterdir() if (p / "kustomization.yaml").is_file())


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) is not installed")
@pytest.mark.parametrize("component", COMPONENTS)
def test_base_with_each_component_renders_valid_manifests_and_settings(component, tmp_path):
    """An overlay of base + the component, rendered by `kubectl kustomize` as a platform team would:
    every document strictly valid, and the settings ConfigMap loads as the services' KafkaSettings."""
    rel = os.path.relpath(DEPLOY, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [f"{rel}/base"],
                "components": [f"{rel}/components/{component}"],
            }
        )
    )
    rendered = subprocess.run(["kubectl", "kustomize", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert rendered.returncode == 0, rendered.stderr
    docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    assert {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"} == SERVICES
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, "1.30.0", strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{component}: {doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")
    [settings] = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("switchboard-settings")]
    kafka = {k[len("SWITCHBOARD_KAFKA_") :].lower(): v for k, v in settings["data"].items() if k.startswith("SWITCHBOARD_KAFKA_")}
    # What the pods get from Secrets: mounted files (a throwaway CA stands in) and, for SASL, the login.
    ca = trustme.CA()
    for key, value in list(kafka.items()):
        if key.startswith("ssl_") and key.endswith("file"):
            stand_in = tmp_path / Path(value).name
            (ca.cert_pem if key == "ssl_cafile" else ca.issue_cert("client").cert_chain_pems[0]).write_to_path(str(stand_in))
            kafka[key] = str(stand_in)
    if kafka.get("security_protocol", "PLAINTEXT").startswith("SASL"):
        kafka |= {"sasl_username": "from-the-secret", "sasl_password": "from-the-secret"}
    KafkaSettings(**kafka)  # raises with every problem, naming the variable
