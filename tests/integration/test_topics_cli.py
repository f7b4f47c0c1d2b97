"""`switchboard topics create` on a real broker (Tansu, started empty): every topic of the project
with its partitions, replication and configs (read back with DescribeTopics and DescribeConfigs,
which Tansu answers); idempotent; existing topics that differ are reported; an unreachable broker
is a clear error."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from switchboard.platform.broker import EmbeddedBroker, free_port
from switchboard.topicset import project_topics

pytestmark = pytest.mark.integration


@pytest.fixture
def empty_broker(tmp_path) -> Iterator[EmbeddedBroker]:
    """A broker of its own, with no topic (the session broker has the platform's already)."""
    b = EmbeddedBroker(log_path=tmp_path / "tansu.log", create_topics=False)
    asyncio.run(b.start())
    try:
        yield b
    finally:
        b.stop()


def topics_create(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    return subprocess.run(
        [sys.executable, "-m", "switchboard.cli", "topics", "create", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


async def describe(bootstrap: str, names: list[str]) -> tuple[dict[str, tuple[int, int]], dict[str, dict[str, str]]]:
    """{topic: (partitions, replicas)} and {topic: configs} as the broker reports them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = await admin.describe_topics(names)
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
    finally:
        await admin.close()
    shapes = {}
    for d in topics:
        if not d["error_code"]:
            [replicas] = {len(p["replicas"]) for p in d["partitions"]}  # the same for every partition
            shapes[d["topic"]] = (len(d["partitions"]), replicas)
    configs = {name: {e[0]: e[1] for e in entries} for r in responses for _err, _msg, _type, name, entries in r.resources}
    return shapes, configs


def test_topics_create_makes_every_topic_with_its_settings_once(empty_broker):
    bootstrap = empty_broker.bootstrap_servers
    topics = project_topics()
    names = [t.name for t in topics]

    first = topics_create("--bootstrap", bootstrap, "--replication-factor", "1", "--partitions", "3")
    assert first.returncode == 0, first.stderr
    assert f"{len(topics)} created, 0 existing (0 differing)" in first.stdout
    assert all(f"{n}: created" in first.stdout for n in names)

    shapes, configs = asyncio.run(describe(bootstrap, names))
    assert shapes == dict.fromkeys(names, (3, 1))
    for t in topics:
        assert {k: configs[t.name].get(k) for k in t.configs} == t.configs, t.name
    assert configs["ivr.callers"]["cleanup.policy"] == "compact"
    assert configs["switchboard-router.view"]["cleanup.policy"] == "compact"
    assert configs["call.routed"]["cleanup.policy"] == "delete"

    again = topics_create("--bootstrap", bootstrap, "--replication-factor", "1", "--partitions", "3")
    assert again.returncode == 0, again.stderr
    assert f"0 created, {len(topics)} existing (0 differing)" in again.stdout

    # The services would refuse other partition counts: the command says which topics and how.
    other = topics_create("--bootstrap", bootstrap, "--replication-factor", "2", "--partitions", "4")
    assert other.returncode == 1
    assert "call.started: exists, differs: 3 partitions, not 4; replication factor 1, not 2" in other.stdout
    assert "existing topics differ" in other.stderr
    assert asyncio.run(describe(bootstrap, names))[0] == dict.fromkeys(names, (3, 1)), "existing topics are never changed"


def test_topics_create_says_so_when_the_broker_does_not_answer():
    port = free_port()  # nothing listens there
    out = topics_create("--bootstrap", f"127.0.0.1:{port}", "--replication-factor", "1", "--timeout", "1")
    assert out.returncode == 2
    assert f"Kafka at 127.0.0.1:{port} did not answer within 1.0s" in out.stderr
    assert "check --bootstrap" in out.stderr
    assert "Traceback" not in out.stderr
