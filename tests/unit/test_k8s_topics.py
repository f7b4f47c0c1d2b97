"""One source for the topics: the declarations in code (platform.topics, the router's router_topics)
make the Strimzi KafkaTopics (deploy/kafka/topics.yaml, `switchboard topics manifest`) and what
`switchboard topics create` and ensure_topics create; these tests fail when they drift."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from google.protobuf.message import Message

from switchboard.platform.configfile import load_config
from switchboard.platform.topics import (
    CALL_QUEUED,
    CALLERS_SEEN,
    CTI_HISTORY,
    DEAD_LETTER,
    DEAD_LETTER_REPLAYS,
    DEFAULT_RETENTION,
    LIVE_CALLS,
    QUEUE_STATE,
    QUEUE_SUMMARY,
    Topic,
)
from switchboard.services.router.app import create_app
from switchboard.services.router.service import changelog_topics
from switchboard.services.router.settings import RouterSettings
from switchboard.topicset import MANIFEST_PATH, k8s_name, kafka_topic_manifests, project_topics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def _base_settings() -> dict[str, str]:
    kust = yaml.safe_load((DEPLOY / "base" / "kustomization.yaml").read_text())
    [settings] = [g for g in kust["configMapGenerator"] if g["name"] == "switchboard-settings"]
    return dict(lit.split("=", 1) for lit in settings["literals"])


def test_committed_kafka_topics_are_the_generator_output():
    settings = _base_settings()
    [kafka] = [d for d in yaml.safe_load_all((DEPLOY / "kafka" / "kafka.yaml").read_text()) if d and d["kind"] == "Kafka"]
    partitions, replicas = int(settings["SWITCHBOARD_KAFKA_PARTITIONS"]), int(settings["SWITCHBOARD_KAFKA_REPLICATION_FACTOR"])
    expected = kafka_topic_manifests(project_topics(), partitions, replicas, kafka["metadata"]["name"])
    assert (ROOT / MANIFEST_PATH).read_text() == expected, (
        f"{MANIFEST_PATH} is stale: run `switchboard topics manifest --partitions {partitions} "
        f"--replication-factor {replicas} --cluster {kafka['metadata']['name']} > {MANIFEST_PATH}`"
    )


def test_manifest_command_prints_the_same():
    out = subprocess.run(
        [sys.executable, "-m", "switchboard.cli", "topics", "manifest", "--partitions", "12", "--replication-factor", "3"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout == kafka_topic_manifests(project_topics(), 12, 3, "switchboard")


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) is not installed")
@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_every_overlay_has_exactly_the_code_topics_with_their_configs(overlay):
    out = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY / "overlays" / overlay)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    rendered = {d["spec"]["topicName"]: d for d in yaml.safe_load_all(out.stdout) if d and d["kind"] == "KafkaTopic"}
    assert {name: d["spec"]["config"] for name, d in rendered.items()} == {t.name: t.configs for t in project_topics()}
    assert all(d["metadata"]["name"] == k8s_name(name) for name, d in rendered.items())


def test_state_topics_are_compacted_and_history_kept_for_its_retention():
    topics = {t.name: t for t in project_topics()}
    router = RouterSettings()
    compacted = {
        CALLERS_SEEN.name,
        LIVE_CALLS.name,
        DEAD_LETTER_REPLAYS.name,
        QUEUE_STATE.name,
        QUEUE_SUMMARY.name,
        CTI_HISTORY.name,
        router.internal_topic("view"),
        *(f"{router.app_id}-{table}-changelog" for table in ("auctions", "finished", "loads", "tiers")),
    }
    assert {n for n, t in topics.items() if t.compacted} == compacted
    for name, t in topics.items():
        if name in compacted:
            assert t.configs == {"cleanup.policy": "compact"}
        else:
            assert t.configs["cleanup.policy"] == "delete"
            assert int(t.configs["retention.ms"]) >= DEFAULT_RETENTION.total_seconds() * 1000
    # queue.state snapshots point at call.queued records of live calls: kept longer than the longest call.
    assert int(topics[CALL_QUEUED.name].configs["retention.ms"]) > timedelta(hours=4).total_seconds() * 1000
    assert DEAD_LETTER.configs["retention.ms"] == str(30 * 86_400_000)


def test_topic_declarations_refuse_contradictions():
    with pytest.raises(ValueError, match=r"compacted topic .* takes no retention"):
        Topic("x", Message, "x", compacted=True, retention=timedelta(days=1))
    with pytest.raises(ValueError, match="retention must be positive"):
        Topic("x", Message, "x", retention=timedelta(0))


def test_router_changelog_topics_are_the_faust_apps_tables(tmp_path):
    """TABLES in the router's service.py names every Faust table of the app: the app itself says which."""
    settings = RouterSettings(data_dir=tmp_path, app_id="some-router")
    app, _ = create_app(settings, load_config(DEPLOY / "base" / "routing.yaml"))
    faust_changelogs = {table.changelog_topic.get_topic_name() for table in app.tables.values()}
    assert faust_changelogs == {t.name for t in changelog_topics(settings)}
    assert all(table.changelog_topic.compacting for table in app.tables.values()), "Faust compacts them too"
    # Every topic its agents read is declared too.
    read = {name for agent in app.agents.values() for name in agent.channel.topics}
    assert settings.internal_topic("ledger") in read
    assert read <= {t.name for t in project_topics(settings)}


def test_kubernetes_names_are_valid_and_unique():
    names = [k8s_name(t.name) for t in project_topics()]
    assert len(set(names)) == len(names)
    with pytest.raises(ValueError, match="two topics map to one KafkaTopic name"):
        kafka_topic_manifests([Topic("a.b", Message, ""), Topic("a-b", Message, "")], 1, 1, "c")
