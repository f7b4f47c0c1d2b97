"""The architecture's import rules ([tool.importlinter] in pyproject.toml, run by `make lint`) hold,
and they fail when broken: each deliberate case adds one forbidden import to a copy of the tree."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MEMBER_SOURCES = sorted(REPO.glob("*/*/src/switchboard"))

# Runs import-linter over the tree copied to sys.argv[1] only: the workspace's own src folders
# (on sys.path through the editable installs' .pth files) are taken off, so the copy is what it reads.
LINT = """
import sys
repo, tree, config = sys.argv[1:4]
sys.path = [tree] + [p for p in sys.path if not (p.startswith(repo + "/") and p.endswith("/src"))]
from importlinter.cli import lint_imports
sys.exit(lint_imports(config_filename=config, no_cache=True, no_logo=True))
"""


def lint_copy(tmp_path: Path, extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    tree = tmp_path / "tree"
    for src in MEMBER_SOURCES:
        shutil.copytree(src, tree / "switchboard", dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    for rel, code in extra.items():
        (tree / rel).write_text(code)
    return subprocess.run(
        [sys.executable, "-c", LINT, str(REPO), str(tree), str(REPO / "pyproject.toml")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_member_is_copied() -> None:
    assert {p.parts[-3] for p in MEMBER_SOURCES} >= {"core", "platform", "contracts", "router", "ivr", "simulator", "cli"}


def test_the_tree_keeps_every_contract(tmp_path: Path) -> None:
    done = lint_copy(tmp_path, {})
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("module", "code", "broken"),
    [
        ("switchboard/core/leak.py", "import aiokafka\n", "switchboard.core is not allowed to import aiokafka"),
        ("switchboard/core/leak.py", "import yaml\n", "switchboard.core is not allowed to import yaml"),
        ("switchboard/core/leak.py", "from grpc import aio\n", "switchboard.core is not allowed to import grpc"),
        (
            "switchboard/core/leak.py",
            "import switchboard.platform.kafka\n",
            "switchboard.core is not allowed to import switchboard.platform",
        ),
        (
            "switchboard/services/router/leak.py",
            "import switchboard.services.queue.state\n",
            "switchboard.services.router is not allowed to import switchboard.services.queue",
        ),
        (
            "switchboard/simulation/leak.py",
            "import switchboard.services.bidder.settings\n",
            "switchboard.simulation is not allowed to import switchboard.services",
        ),
    ],
)
def test_a_forbidden_import_breaks_the_build(tmp_path: Path, module: str, code: str, broken: str) -> None:
    done = lint_copy(tmp_path, {module: code})
    assert done.returncode == 1, done.stdout + done.stderr
    assert broken in done.stdout, done.stdout
    assert "leak" in done.stdout
