"""The analytics sink as a real process: real broker in, embedded chDB out.

How we know events landed without reading chDB while the sink owns it (one
process per chDB path): the sink commits a record's offset only after its row
was inserted, so we wait until the group's committed offsets pass every record
we published, stop the sink (SIGTERM → flush, commit, close, exit 0) and then
read the path from a child process (see test_analytics_reports for why reads
never happen in the pytest process).

The broker is shared by the whole session and every sink group reads all
topics from the beginning: each test uses its own group and data path, and
assertions filter by this test's call ids.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from switchboard.platform import codec
from switchboard.platform.settings import KafkaSettings
from switchboard.platform.topics import ALL_TOPICS, CALL_ROUTED, CALL_STARTED, DEAD_LETTER, Topic
from switchboard.v1 import events_pb2 as pb
from tests.support import ServiceProcess, publish_raw, service_env, wait_records

pytestmark = pytest.mark.integration

TYPED = {
    "call.started": "calls_started",
    "ping.requested": "pings",
    "bid.received": "bids",
    "call.routed": "calls_routed",
    "call.rejected": "calls_rejected",
    "call.ended": "calls_ended",
    "cti.events": "cti_events",
    "call.dispositions": "call_dispositions",
    "deadletter": "dead_letters",
}

QUERY = textwrap.dedent(
    """
    import json, sys
    from switchboard.analytics.reports import open_client
    client = open_client(sys.argv[1])
    try:
        out = [[list(r) for r in client.query(sql).result_rows] for sql in json.loads(sys.argv[2])]
    finally:
        client.close()
    print(json.dumps(out, default=str))
    """
)


def chdb_query(dsn: str, *sqls: str) -> list[list[list]]:
    """Run queries on a chDB path from a child process (the path must not be open elsewhere)."""
    proc = subprocess.run([sys.executable, "-c", QUERY, dsn, json.dumps(sqls)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ processes


def sink_process(kafka: KafkaSettings, dsn: str, group: str, ready_dir: Path, log: Path, **env: str) -> ServiceProcess:
    """The analytics service on `dsn` as consumer group `group` (started, not yet ready)."""
    return ServiceProcess(
        "analytics",
        service_env(kafka, SWITCHBOARD_ANALYTICS_DSN=dsn, SWITCHBOARD_ANALYTICS_GROUP_ID=group, **env),
        ready_dir,
        log,
    )


# ------------------------------------------------------------------ kafka helpers


def sample_event(topic: Topic, call_id: str) -> object:
    """One valid event of `topic` for `call_id`, with the fields the typed tables read."""
    base = {"event_id": codec.new_id(), "occurred_at": codec.now_ts()}
    m = topic.message
    if m is pb.DeadLetter:
        return m(**base, service="test", source_topic="call.started", key=call_id.encode(), value=b"\x01", reason="test")
    ev = m(**base, call_id=call_id)
    if m is pb.CallRouted:
        ev.kind, ev.buyer_id, ev.price = pb.TARGET_KIND_BUYER, "acme", "40.00"
        ev.routing_started_at.CopyFrom(ev.occurred_at)
    elif m is pb.CallRejected:
        ev.reason = "no_bid"
    elif m is pb.BidReceived:
        ev.outcome, ev.amount, ev.buyer_id = pb.BID_OUTCOME_BID, "12.34", "acme"
    elif m is pb.PingRequested:
        ev.buyer_ids.append("acme")
    elif m is pb.AgentEvent:  # keyed by agent: an agent's event needs its agent id (it has a call only on one)
        ev.agent_id, ev.state = "ana", pb.AGENT_STATE_WRAP_UP
    return ev


async def find_dead_letter(
    kafka: KafkaSettings, key: bytes, timeout_s: float = 60.0
) -> tuple[TopicPartition, int, pb.DeadLetter]:
    """The dead letter the sink wrote for the record with `key` (read without a group)."""
    found = await wait_records(kafka, DEAD_LETTER, lambda r, e: r.key == key and e.service == "analytics", timeout_s)
    r, letter = found[0]
    return TopicPartition(r.topic, r.partition), r.offset, letter


async def wait_committed(kafka: KafkaSettings, group: str, last: dict[TopicPartition, int], timeout_s: float = 60.0) -> None:
    """Wait until `group` committed past every offset in `last` (= those rows are in ClickHouse)."""
    admin = AIOKafkaAdminClient(**kafka.client_kwargs())
    await admin.start()
    try:
        deadline = time.monotonic() + timeout_s
        missing: dict = {}
        while time.monotonic() < deadline:
            committed = await admin.list_consumer_group_offsets(group, partitions=list(last))
            missing = {
                tp: (off, committed[tp].offset if tp in committed else None)
                for tp, off in last.items()
                if tp not in committed or committed[tp].offset <= off
            }
            if not missing:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"group {group} did not commit past {missing}")
    finally:
        await admin.close()


async def committed(kafka: KafkaSettings, group: str, last: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
    """Of the partitions in `last`, those whose committed offset is past it, with that offset minus one."""
    admin = AIOKafkaAdminClient(**kafka.client_kwargs())
    await admin.start()
    try:
        got = await admin.list_consumer_group_offsets(group, partitions=list(last))
    finally:
        await admin.close()
    return {tp: got[tp].offset - 1 for tp, off in last.items() if tp in got and got[tp].offset > off}


def merge(*lasts: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
    out: dict[TopicPartition, int] = {}
    for last in lasts:
        for tp, off in last.items():
            out[tp] = max(out.get(tp, -1), off)
    return out


def in_list(ids: list[str]) -> str:
    return "(" + ", ".join("'" + i + "'" for i in ids) + ")"


# ------------------------------------------------------------------ tests


def test_sink_stores_every_topic_once_and_dead_letters_garbage(kafka: KafkaSettings, tmp_path: Path):
    run = codec.new_id()[:12]
    dsn = f"chdb://{tmp_path / 'ch'}"
    group = f"analytics-test-{run}"
    sink = sink_process(kafka, dsn, group, tmp_path, tmp_path / "sink.log")
    try:
        sink.wait_ready()
        call_ids = {t.name: f"{run}-{t.name}" for t in ALL_TOPICS}
        items = []
        for t in ALL_TOPICS:
            ev = sample_event(t, call_ids[t.name])
            items.append((t.name, call_ids[t.name].encode(), codec.encode(ev)))
            if t is CALL_ROUTED:  # at-least-once: the same record delivered twice
                items.append(items[-1])
        garbage_key = f"{run}-garbage".encode()
        items.append((CALL_STARTED.name, garbage_key, b"\xff\xfe definitely not protobuf"))
        last = asyncio.run(publish_raw(kafka, items))

        dl_tp, dl_offset, letter = asyncio.run(find_dead_letter(kafka, garbage_key))
        assert letter.source_topic == CALL_STARTED.name and letter.reason.startswith("undecodable")
        asyncio.run(wait_committed(kafka, group, merge(last, {dl_tp: dl_offset})))
        assert sink.stop() == 0, sink.logs()
    finally:
        sink.kill()

    ids = list(call_ids.values())
    queries = [
        f"SELECT topic, call_id, count() FROM events FINAL WHERE call_id IN {in_list(ids)} GROUP BY topic, call_id ORDER BY topic",
        f"SELECT count() FROM events WHERE call_id IN {in_list(ids)}",  # no FINAL: at most one extra
        f"SELECT count(), any(reason), any(source_topic), any(service) FROM dead_letters FINAL WHERE call_id = '{garbage_key.decode()}'",
        "SELECT count() FROM events FINAL WHERE topic = 'deadletter' AND call_id = '" + garbage_key.decode() + "'",
    ]
    for topic, table in TYPED.items():
        queries.append(f"SELECT '{topic}', count(), any(call_id) FROM {table} FINAL WHERE call_id = '{call_ids[topic]}'")
    queries.append(
        f"SELECT kind, buyer_id, price = 40, decision_latency_ms FROM calls_routed FINAL WHERE call_id = '{call_ids['call.routed']}'"
    )
    queries.append(f"SELECT outcome, amount = 12.34 FROM bids FINAL WHERE call_id = '{call_ids['bid.received']}'")
    res = chdb_query(dsn, *queries)

    per_topic = {(topic, cid): n for topic, cid, n in res[0]}
    assert per_topic == {(t.name, call_ids[t.name]): 1 for t in ALL_TOPICS}
    assert res[1][0][0] in (len(ALL_TOPICS), len(ALL_TOPICS) + 1)  # the duplicate may not be merged yet
    n, reason, source_topic, service = res[2][0]
    assert (n, source_topic, service) == (1, "call.started", "analytics") and reason.startswith("undecodable")
    assert res[3] == [[1]]
    for row in res[4 : 4 + len(TYPED)]:
        topic, count, cid = row[0]
        assert (count, cid) == (1, call_ids[topic]), topic
    assert res[4 + len(TYPED)] == [["buyer", "acme", True, 0]]
    assert res[5 + len(TYPED)] == [["bid", True]]


def test_sink_restarts_on_existing_tables_and_path_has_one_owner(kafka: KafkaSettings, tmp_path: Path):
    run = codec.new_id()[:12]
    dsn = f"chdb://{tmp_path / 'ch'}?database=sink_restart"
    group = f"analytics-test-{run}"
    first_ids = [f"{run}-a{i}" for i in range(5)]
    second_ids = [f"{run}-b{i}" for i in range(5)]

    def started(ids: list[str]) -> list[tuple[str, bytes, bytes]]:
        return [(CALL_STARTED.name, i.encode(), codec.encode(sample_event(CALL_STARTED, i))) for i in ids]

    sink = sink_process(kafka, dsn, group, tmp_path, tmp_path / "sink1.log")
    intruder = None
    try:
        sink.wait_ready()
        # A second process cannot open the same chDB path: it must exit with an error, not hang.
        intruder = sink_process(kafka, dsn, group + "-x", tmp_path / "x", tmp_path / "intruder.log")
        assert intruder.proc.wait(timeout=60) != 0
        assert "storage_unavailable" in intruder.logs()
        asyncio.run(wait_committed(kafka, group, asyncio.run(publish_raw(kafka, started(first_ids)))))
        assert sink.stop() == 0, sink.logs()
    finally:
        sink.kill()
        if intruder:
            intruder.kill()

    # Restart on the same path, with a flush interval longer than the test: rows reach
    # ClickHouse (and offsets Kafka) only through the flush that SIGTERM triggers.
    sink = sink_process(
        kafka,
        dsn,
        group,
        tmp_path,
        tmp_path / "sink2.log",
        SWITCHBOARD_ANALYTICS_FLUSH_INTERVAL_MS="3600000",
        SWITCHBOARD_LOG_LEVEL="DEBUG",
    )
    try:
        sink.wait_ready()  # CREATE ... IF NOT EXISTS on the existing tables
        last = asyncio.run(publish_raw(kafka, started(second_ids)))
        deadline = time.monotonic() + 60
        while max(map(int, re.findall(r"fetched\s.*pending=(\d+)", sink.logs(tail=0))), default=0) < len(second_ids):
            assert time.monotonic() < deadline, sink.logs()
            time.sleep(0.05)
        assert asyncio.run(committed(kafka, group, last)) == {}, "nothing may be committed before the flush"
        assert sink.stop() == 0, sink.logs()
        assert asyncio.run(committed(kafka, group, last)).keys() == last.keys()  # committed on the way out
    finally:
        sink.kill()

    res = chdb_query(
        dsn,
        f"SELECT call_id FROM calls_started FINAL WHERE call_id LIKE '{run}-%' ORDER BY call_id",
        f"SELECT count() FROM events FINAL WHERE call_id LIKE '{run}-%'",
        "SELECT currentDatabase()",
    )
    assert [r[0] for r in res[0]] == sorted(first_ids + second_ids)
    assert res[1] == [[10]]
    assert res[2] == [["sink_restart"]]


PREPARE = textwrap.dedent(
    """
    import sys
    from switchboard.analytics import tables
    from switchboard.analytics.client import open_client
    client = open_client(sys.argv[1])
    try:
        tables.ensure_schema(client, client.database)
        client.command(sys.argv[2])
    finally:
        client.close()
    """
)


def test_a_batch_clickhouse_refuses_is_bisected_and_the_refused_row_dead_lettered(kafka: KafkaSettings, tmp_path: Path):
    """A row that fails a table constraint: dead-lettered with ClickHouse's error, every other row stored, all committed."""
    run = codec.new_id()[:12]
    dsn = f"chdb://{tmp_path / 'ch'}"
    group = f"analytics-test-{run}"
    # An operator's constraint on the existing table (the sink keeps existing tables as they are).
    constraint = "ALTER TABLE calls_routed ADD CONSTRAINT price_sane CHECK price IS NULL OR price < 10000"
    proc = subprocess.run([sys.executable, "-c", PREPARE, dsn, constraint], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    good = [f"{run}-good{i}" for i in range(6)]
    bad = f"{run}-bad"
    items = []
    for cid in [*good[:3], bad, *good[3:]]:
        ev = sample_event(CALL_ROUTED, cid)
        if cid == bad:
            ev.price = "20000.00"
        items.append((CALL_ROUTED.name, cid.encode(), codec.encode(ev)))
    # One flush for all of them: the batch holds the refused row among good ones.
    sink = sink_process(kafka, dsn, group, tmp_path, tmp_path / "sink.log", SWITCHBOARD_ANALYTICS_FLUSH_INTERVAL_MS="1500")
    try:
        sink.wait_ready()
        last = asyncio.run(publish_raw(kafka, items))
        dl_tp, dl_offset, letter = asyncio.run(find_dead_letter(kafka, bad.encode()))
        assert letter.source_topic == CALL_ROUTED.name
        assert letter.reason.startswith("clickhouse refused its calls_routed row: DatabaseError: Code: 469.")
        assert "VIOLATED_CONSTRAINT" in letter.reason and "price_sane" in letter.reason
        asyncio.run(wait_committed(kafka, group, merge(last, {dl_tp: dl_offset})))
        assert "rows_refused" in sink.logs()
        assert sink.stop() == 0, sink.logs()
    finally:
        sink.kill()
    res = chdb_query(
        dsn,
        f"SELECT call_id FROM calls_routed FINAL WHERE call_id IN {in_list([*good, bad])} ORDER BY call_id",
        f"SELECT count() FROM events FINAL WHERE topic = 'call.routed' AND call_id IN {in_list([*good, bad])}",
        f"SELECT count(), any(reason) FROM dead_letters FINAL WHERE call_id = '{bad}'",
    )
    assert res[0] == [[c] for c in sorted(good)]
    assert res[1] == [[len(good) + 1]]  # its events row was not refused
    assert res[2][0][0] == 1 and "VIOLATED_CONSTRAINT" in res[2][0][1]
