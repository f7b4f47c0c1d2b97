"""The analytics migration step (`python -m switchboard.services.analytics.migrate`, the analytics
pod's init container): creates the schema on the DSN's store, again without harm, and fails with a
clear exit code when the store does not answer or the DSN is wrong."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from switchboard.analytics import tables
from switchboard.platform.broker import free_port

pytestmark = pytest.mark.integration


def run(module: list[str], dsn: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")} | {"SWITCHBOARD_ANALYTICS_DSN": dsn}
    return subprocess.run([sys.executable, "-m", *module], capture_output=True, text=True, timeout=timeout, env=env)


def test_migrate_creates_the_schema_idempotently(tmp_path):
    dsn = f"chdb://{tmp_path / 'chdb'}"
    for _ in range(2):  # every pod start runs it
        out = run(["switchboard.services.analytics.migrate"], dsn)
        assert out.returncode == 0, out.stderr + out.stdout
        assert "schema_applied" in out.stdout + out.stderr
    # Read back by another process (a chDB directory has one owner at a time).
    listed = run(["switchboard.cli", "analytics", "query", "--json", "SHOW TABLES FROM switchboard"], dsn)
    assert listed.returncode == 0, listed.stderr
    names = {next(iter(json.loads(line).values())) for line in listed.stdout.splitlines() if line.strip()}
    assert names == {t.name for t in tables.ALL_TABLES} | {v.name for v in tables.ALL_VIEWS}


def test_migrate_gives_up_after_its_wait_when_the_server_does_not_answer():
    port = free_port()  # nothing listens there
    out = run(
        ["switchboard.services.analytics.migrate", "--wait", "0.5"], f"http://switchboard:secret-pw@127.0.0.1:{port}/switchboard"
    )
    assert out.returncode == 2
    logs = out.stdout + out.stderr
    assert "store_not_answering" in logs and "schema_not_applied" in logs
    assert "secret-pw" not in logs, "the DSN's password is redacted"


def test_migrate_refuses_an_unsupported_dsn_at_once():
    out = run(["switchboard.services.analytics.migrate", "--wait", "60"], "mysql://x@127.0.0.1/db", timeout=30)
    assert out.returncode == 1
    assert "unsupported analytics DSN" in out.stderr
