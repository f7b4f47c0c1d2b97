"""Queue snapshots over the record limit are split into chunks and joined back (services/queue/state.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchboard.platform import codec
from switchboard.platform.configfile import load_config
from switchboard.services.queue.service import QueueService
from switchboard.services.queue.settings import QueueSettings
from switchboard.services.queue.state import (
    CHUNK_OVERHEAD_BYTES,
    StateError,
    chunked_head,
    decode_acd,
    encode_acd,
    join_chunks,
    split_snapshot,
)
from switchboard.v1 import events_pb2 as pb

CONFIG = """\
version: 1
queues:
  - {id: sales, max_wait_s: 3600}
agents:
  - {id: a1, queues: [sales]}
"""


def waiting_state(tmp_path: Path, calls: int) -> pb.QueueState:
    """The snapshot of a queue with `calls` calls queued to its one agent (all but one wait)."""
    path = tmp_path / "acd.yaml"
    path.write_text(CONFIG)
    service = QueueService(QueueSettings(config=path), load_config(path))
    for i in range(calls):
        ev = pb.CallQueued(event_id=codec.new_id(), call_id=f"call-{i:06d}-{codec.new_id()}", queue_id="sales")
        service.handle(ev, partition=i % 4, offset=i)
    return pb.QueueState(
        event_id=codec.new_id(), occurred_at=codec.now_ts(), instance="queue", seq=7, clock=1.0, acd=encode_acd(service.acd)
    )


def test_a_snapshot_under_the_limit_is_one_record(tmp_path: Path):
    assert split_snapshot(waiting_state(tmp_path, 10), 900_000) == []


def test_many_waiting_calls_split_under_the_limit_and_join_to_the_same_state(tmp_path: Path):
    state = waiting_state(tmp_path, 20_000)
    size = len(codec.encode(state))
    limit = 50_000
    assert size > 2 * limit  # 20 000 waiting calls do not fit
    chunks = split_snapshot(state, limit)
    assert len(chunks) == -(-size // (limit - CHUNK_OVERHEAD_BYTES))
    assert all(len(codec.encode(c)) <= limit for c in chunks)
    assert [(c.chunk_of, c.chunk_index, c.instance) for c in chunks] == [(7, i, "queue") for i in range(len(chunks))]
    head = chunked_head(state, [pb.QueueChunkRef(partition=0, offset=i, size=len(c.chunk)) for i, c in enumerate(chunks)])
    assert len(codec.encode(head)) < 10_000
    joined = join_chunks(head, chunks)
    assert joined == state
    acd = decode_acd(joined.acd)
    assert len(acd["waiting"]["sales"]) == 19_999 and len(acd["active"]) == 1


def test_a_missing_chunk_is_a_state_error_with_the_fix(tmp_path: Path):
    state = waiting_state(tmp_path, 5_000)
    chunks = split_snapshot(state, 20_000)
    head = chunked_head(state, [pb.QueueChunkRef(partition=0, offset=i) for i in range(len(chunks))])
    with pytest.raises(StateError, match=r"chunks \[1\] are missing.*publish a tombstone"):
        join_chunks(head, [chunks[0], None, *chunks[2:]])
