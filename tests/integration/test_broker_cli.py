"""`switchboard broker`: starts Tansu on a loopback port with every topic, stops cleanly on Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from switchboard.platform.topics import ALL_TOPICS

pytestmark = pytest.mark.integration


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def test_broker_command_creates_topics_and_stops_cleanly():
    proc = subprocess.Popen(
        [sys.executable, "-m", "switchboard.cli", "broker", "--port", "0", "--partitions", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    broker_pids: list[int] = []
    try:
        seen: list[str] = []
        line = ""
        deadline = time.monotonic() + 60
        while "broker on" not in line and time.monotonic() < deadline:
            line = proc.stdout.readline()
            seen.append(line)
            assert line or proc.poll() is None, f"broker command exited early: {''.join(seen)}"
        found = re.search(r"127\.0\.0\.1:\d+", line)
        assert found, f"no address in the output: {''.join(seen)}"
        bootstrap = found.group(0)
        broker_pids = _children(proc.pid)
        assert broker_pids, "tansu runs as a child process"

        async def describe():
            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
            await admin.start()
            try:
                return await admin.describe_topics([t.name for t in ALL_TOPICS])
            finally:
                await admin.close()

        described = asyncio.run(describe())
        assert {d["topic"] for d in described} == {t.name for t in ALL_TOPICS}
        assert {d["topic"]: len(d["partitions"]) for d in described} == {t.name: 3 for t in ALL_TOPICS}

        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        for pid in broker_pids:  # the broker child is gone too
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in broker_pids:  # a failed check must not leave the broker running (its own session: not killed with us)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
