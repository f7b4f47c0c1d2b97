"""`switchboard deadletter list / replay` on a real broker: letters written by the real consume path."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import ConsumerRecord
from typer.testing import CliRunner

from switchboard.cli import app
from switchboard.platform import codec
from switchboard.platform.kafka import EventBus, consume, ensure_topics
from switchboard.platform.replay import read_topic
from switchboard.platform.settings import KafkaSettings
from switchboard.platform.topics import DEAD_LETTER, Topic
from switchboard.v1 import events_pb2 as pb
from tests.support import publish_raw, read_topics, until

pytestmark = pytest.mark.integration

runner = CliRunner()


def cli(kafka: KafkaSettings, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--bootstrap", kafka.bootstrap_servers], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


async def dead_letter_through_consume(kafka: KafkaSettings, topic: Topic[pb.CallRouted], records: int) -> None:
    """Run the real consume loop on `topic` with a handler that fails every event (so each is dead-lettered)."""
    bus = EventBus(kafka, "test-cli")
    await bus.start()
    stop = asyncio.Event()

    async def handler(_t: Topic[pb.CallRouted], event: pb.CallRouted, _r: ConsumerRecord) -> None:
        raise ValueError(f"refusing {event.call_id}")

    task = asyncio.create_task(consume(bus, [topic], handler, f"cli-{uuid.uuid4().hex}", stop))
    try:

        async def all_written() -> bool:
            return await _count(kafka, topic) >= records

        await until("every letter written", all_written, timeout_s=60)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await bus.stop()


async def _count(kafka: KafkaSettings, topic: Topic[pb.CallRouted]) -> int:
    return sum(1 for _, e in await read_topics(kafka, [DEAD_LETTER]) if e.source_topic == topic.name)


def test_list_filters_and_replay_publishes_each_original_record_once(kafka: KafkaSettings):
    run = uuid.uuid4().hex[:8]
    topic: Topic[pb.CallRouted] = Topic(f"robust.cli.{run}", pb.CallRouted, "input of this test")
    other: Topic[pb.CallRouted] = Topic(f"robust.cli.{run}.to", pb.CallRouted, "replay target")
    asyncio.run(ensure_topics(kafka, [topic, other]))
    good = pb.CallRouted(event_id=codec.new_id(), call_id=f"{run}-good", occurred_at=codec.now_ts())
    items = [
        (topic.name, f"{run}-junk".encode(), b"\xffnot an event"),
        (topic.name, f"{run}-good".encode(), codec.encode(good)),
    ]
    asyncio.run(publish_raw(kafka, items))
    asyncio.run(dead_letter_through_consume(kafka, topic, 2))

    code, out, _ = cli(kafka, "deadletter", "list", "--topic", topic.name, "--json")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert sorted(r["key"] for r in rows) == [f"{run}-good", f"{run}-junk"]
    by_key = {r["key"]: r for r in rows}
    assert by_key[f"{run}-junk"]["reason"].startswith("undecodable:")
    assert by_key[f"{run}-good"]["reason"] == f"handler error: ValueError: refusing {run}-good"
    assert {r["service"] for r in rows} == {"test-cli"} and all(r["replayed_to"] is None for r in rows)
    assert {r["source_topic"] for r in rows} == {topic.name}
    # Filters: reason text, time.
    code, out, _ = cli(kafka, "deadletter", "list", "--topic", topic.name, "--reason", "HANDLER ERROR", "--json")
    assert [json.loads(line)["key"] for line in out.splitlines()] == [f"{run}-good"]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    code, out, _ = cli(kafka, "deadletter", "list", "--topic", topic.name, "--since", future, "--json")
    assert code == 0 and out == ""
    code, out, _ = cli(kafka, "deadletter", "list", "--topic", topic.name, "--since", "10m", "--json")
    assert len(out.splitlines()) == 2
    code, out, _ = cli(kafka, "deadletter", "list", "--topic", topic.name)
    assert code == 0 and "2 dead letters" in out
    code, _, err = cli(kafka, "deadletter", "list", "--since", "yesterday")
    assert code == 2 and "neither an age" in err

    # Without a selection, replay refuses (no accidental replay of everything).
    code, _, err = cli(kafka, "deadletter", "replay")
    assert code == 2 and "--all" in err

    before = Counter(_records(kafka, topic))
    code, out, err = cli(kafka, "deadletter", "replay", "--topic", topic.name, "--dry-run")
    assert code == 0 and out.count("would_replay:") == 2 and "2 would replay" in err
    assert Counter(_records(kafka, topic)) == before, "a dry run publishes nothing"

    code, out, err = cli(kafka, "deadletter", "replay", "--topic", topic.name, "--reason", "handler error")
    assert code == 0 and out.count("replayed:") == 1, out
    after = Counter(_records(kafka, topic))
    assert after - before == Counter({(f"{run}-good".encode(), codec.encode(good)): 1}), "the original bytes, once"

    # A second replay of the same selection publishes nothing; the list shows where it went.
    code, out, err = cli(kafka, "deadletter", "replay", "--topic", topic.name, "--reason", "handler error")
    assert code == 0 and out.count("already_replayed:") == 1 and "1 already replayed" in err
    assert Counter(_records(kafka, topic)) == after
    code, out, _ = cli(kafka, "deadletter", "list", "--topic", topic.name, "--json")
    replayed = {json.loads(line)["key"]: json.loads(line)["replayed_to"] for line in out.splitlines()}
    assert replayed[f"{run}-junk"] is None and replayed[f"{run}-good"].startswith(f"{topic.name}/")

    # --to another topic, by id.
    junk_id = by_key[f"{run}-junk"]["id"]
    code, out, _ = cli(kafka, "deadletter", "replay", "--id", junk_id, "--to", other.name)
    assert code == 0 and out.startswith(f"replayed: {junk_id}"), out
    assert _records(kafka, other) == [(f"{run}-junk".encode(), b"\xffnot an event")]


def _records(kafka: KafkaSettings, topic: Topic[pb.CallRouted]) -> list[tuple[bytes, bytes]]:
    """Every record of `topic` as (key, value), undecodable ones too."""
    return [(r.key, r.value) for r, _ in asyncio.run(read_topic(kafka, topic, "test"))]
