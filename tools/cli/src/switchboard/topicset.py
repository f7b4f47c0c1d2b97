"""Every topic a Switchboard deployment uses: created on a cluster, or written as Strimzi KafkaTopics.

One list (`project_topics`): the platform's topic table (`switchboard.platform.topics`: the events,
the dead letters, the services' private state) and the router's own topics (internal ones and its
tables' changelogs, named from RouterSettings). Each topic's cleanup policy and retention are its
`Topic.configs`. `switchboard topics create` and `switchboard topics manifest` both read this list,
so a cluster made either way gets the same topics.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from google.protobuf.message import Message

from switchboard.platform.kafka import ensure_topics, wait_for_broker
from switchboard.platform.settings import KafkaSettings
from switchboard.platform.topics import ALL_TOPICS, PRIVATE_TOPICS, Topic
from switchboard.services.router.service import router_topics
from switchboard.services.router.settings import RouterSettings

MANIFEST_PATH = "deploy/kafka/topics.yaml"


def project_topics(router: RouterSettings | None = None) -> list[Topic[Message]]:
    """Every topic, in declaration order: the platform table, private state, the router's own."""
    topics: list[Topic[Message]] = [*ALL_TOPICS, *PRIVATE_TOPICS, *router_topics(router or RouterSettings())]
    names = [t.name for t in topics]
    if len(set(names)) != len(names):
        raise ValueError(f"topic declared twice: {sorted({n for n in names if names.count(n) > 1})}")
    return topics


@dataclass(frozen=True)
class TopicStatus:
    """What `create_topics` found or did for one topic."""

    name: str
    created: bool
    problems: tuple[str, ...] = ()  # how an existing topic differs from its declaration


async def create_topics(kafka: KafkaSettings, topics: Sequence[Topic[Message]], timeout_s: float = 30.0) -> list[TopicStatus]:
    """Create the missing topics with kafka.partitions, kafka.replication_factor and each topic's configs;
    check the existing ones against the same. Idempotent. Raises TimeoutError when the broker does not answer."""
    await wait_for_broker(kafka, timeout_s)
    created = set(await ensure_topics(kafka, topics, timeout_s))
    existing = [t for t in topics if t.name not in created]
    problems = await _differences(kafka, existing, timeout_s) if existing else {}
    return [TopicStatus(t.name, t.name in created, tuple(problems.get(t.name, ()))) for t in topics]


async def _differences(kafka: KafkaSettings, topics: Sequence[Topic[Message]], timeout_s: float) -> dict[str, list[str]]:
    admin = AIOKafkaAdminClient(**kafka.client_kwargs(), request_timeout_ms=int(timeout_s * 1000))
    await admin.start()
    try:
        described = {d["topic"]: d for d in await admin.describe_topics([t.name for t in topics])}
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t.name) for t in topics])
    finally:
        await admin.close()
    configs: dict[str, dict[str, str]] = {}
    for response in responses:
        for _error, _message, _type, name, entries in response.resources:
            configs[name] = {entry[0]: entry[1] for entry in entries}
    out: dict[str, list[str]] = {}
    for t in topics:
        found: list[str] = []
        partitions = described.get(t.name, {}).get("partitions") or []
        if len(partitions) != kafka.partitions:
            found.append(f"{len(partitions)} partitions, not {kafka.partitions}")
        replicas = {len(p.get("replicas") or ()) for p in partitions}
        if partitions and replicas != {kafka.replication_factor}:
            found.append(f"replication factor {'/'.join(map(str, sorted(replicas)))}, not {kafka.replication_factor}")
        have = configs.get(t.name, {})
        for key, want in t.configs.items():
            if have.get(key) != want:
                found.append(f"{key}={have.get(key, '(not set)')}, not {want}")
        if found:
            out[t.name] = found
    return out


def k8s_name(topic: str) -> str:
    """A KafkaTopic resource name for a topic name (the topic's own name goes into spec.topicName)."""
    name = re.sub(r"[^a-z0-9-]+", "-", topic.lower()).strip("-")
    if not name or len(name) > 253:
        raise ValueError(f"topic {topic!r} gives no valid Kubernetes name")
    return name


def kafka_topic_manifests(topics: Iterable[Topic[Message]], partitions: int, replicas: int, cluster: str) -> str:
    """Strimzi KafkaTopic resources (kafka.strimzi.io/v1beta2), one per topic, as one YAML stream."""
    docs: list[dict[str, Any]] = []
    for t in topics:
        docs.append(
            {
                "apiVersion": "kafka.strimzi.io/v1beta2",
                "kind": "KafkaTopic",
                "metadata": {"name": k8s_name(t.name), "labels": {"strimzi.io/cluster": cluster}},
                "spec": {"topicName": t.name, "partitions": partitions, "replicas": replicas, "config": dict(t.configs)},
            }
        )
    names = [d["metadata"]["name"] for d in docs]
    if len(set(names)) != len(names):
        raise ValueError(f"two topics map to one KafkaTopic name: {sorted({n for n in names if names.count(n) > 1})}")
    header = (
        "# Generated from the topic declarations in code (switchboard.platform.topics, the router's\n"
        "# service.router_topics) by\n"
        f"#   switchboard topics manifest --partitions {partitions} --replication-factor {replicas} --cluster {cluster}"
        f" > {MANIFEST_PATH}\n"
        "# Do not edit: tests/unit/test_k8s_topics.py fails when this file and the code drift.\n"
        "# partitions must equal SWITCHBOARD_KAFKA_PARTITIONS (every topic has the same count: calls are joined\n"
        "# by partition); the overlays patch replicas (dev 1, prod 3) with SWITCHBOARD_KAFKA_REPLICATION_FACTOR.\n"
    )
    body = "---\n".join(yaml.safe_dump(d, sort_keys=False, default_flow_style=False) for d in docs)
    return header + body
