"""The Kubernetes manifests parse, run every service hardened, and ship a valid routing config."""

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from switchboard.core.config import load_config

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
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["readinessProbe"]["exec"]["command"][-1] == f"/tmp/ready/{name}.ready"


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
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} is not valid Kubernetes {k8s_version}: {exc.message} at {list(exc.path)}")
