from pathlib import Path
from typing import get_args

import pytest

from switchboard.platform import codec
from switchboard.platform.protogen import OUT_DIR, generate, proto_files
from switchboard.platform.topics import ALL_TOPICS, BY_NAME, CALL_STARTED, PRIVATE_TOPICS, CallEvent, Event
from switchboard.v1 import events_pb2 as pb

REQUIRED = {"call.started", "ivr.completed", "ping.requested", "bid.received", "call.routed", "call.rejected"}


def test_required_topics_exist_with_unique_names():
    names = [t.name for t in ALL_TOPICS]
    assert set(names) >= REQUIRED
    assert len(names) == len(set(names))


def test_codec_round_trip_and_garbage_is_undecodable():
    ev = pb.CallStarted(event_id=codec.new_id(), call_id="c1", occurred_at=codec.now_ts(), dialed_number="+18885550123")
    assert codec.decode(CALL_STARTED, codec.encode(ev)) == ev
    with pytest.raises(codec.UndecodableEvent):
        codec.decode("call.started", b"\xff\xfe not protobuf")
    with pytest.raises(codec.UndecodableEvent):
        codec.decode("call.started", None)
    with pytest.raises(codec.UndecodableEvent):  # parses, but carries no ids
        codec.decode("call.started", b"")


def test_every_topic_message_has_event_id_and_timestamp():
    for t in ALL_TOPICS:
        fields = t.message.DESCRIPTOR.fields_by_name
        assert "event_id" in fields and "occurred_at" in fields, t.name
    assert BY_NAME["deadletter"].message is pb.DeadLetter


def test_event_types_name_the_messages_of_the_topics():
    """topics.CallEvent is every message keyed by call id, topics.Event every message of a topic."""
    messages = {t.message for t in (*ALL_TOPICS, *PRIVATE_TOPICS)}
    assert set(get_args(Event)) == messages
    # agent.events names the agent's call but is keyed by agent id (an agent's states in order).
    keyed_by_call = {m for m in messages if "call_id" in m.DESCRIPTOR.fields_by_name} - {pb.AgentEvent}
    assert set(get_args(CallEvent)) == keyed_by_call


def test_generated_code_is_not_stale(tmp_path: Path):
    """Fails when proto/ changed and `make proto` was not run."""
    generate(tmp_path)
    committed = OUT_DIR
    for proto in proto_files():
        stem = proto.relative_to(proto.parents[2]).with_suffix("")
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
            rel = Path(str(stem) + suffix)
            assert (tmp_path / rel).read_text() == (committed / rel).read_text(), f"{rel} is stale: run `make proto`"
