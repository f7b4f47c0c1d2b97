"""Encoding and decoding of events: protobuf values, call-id keys, fresh ids and timestamps."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar, overload

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.protobuf.timestamp_pb2 import Timestamp

from switchboard.platform.topics import BY_NAME, Event, Topic
from switchboard.v1 import events_pb2 as pb


class UndecodableEvent(ValueError):
    """A message that is not a valid event of its topic; goes to the dead-letter topic."""


def new_id() -> str:
    return uuid.uuid4().hex


def now_ts() -> Timestamp:
    ts = Timestamp()
    ts.GetCurrentTime()
    return ts


def ts_to_datetime(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def ts_ms(ts: Timestamp) -> int:
    return ts.ToMilliseconds()


def encode(event: Message) -> bytes:
    return event.SerializeToString()


M = TypeVar("M", bound=Message)


@overload
def decode(topic: Topic[M], value: bytes | None) -> M: ...
@overload
def decode(topic: str, value: bytes | None) -> Event: ...
def decode(topic: Topic[Message] | str, value: bytes | None) -> Message:
    """Decode a value of `topic`; raise UndecodableEvent with the reason when it is not one."""
    t: Topic[Message] = BY_NAME[topic] if isinstance(topic, str) else topic
    if value is None:
        raise UndecodableEvent(f"{t.name}: empty value (tombstone)")
    msg = t.message()
    try:
        msg.ParseFromString(value)
    except DecodeError as exc:
        raise UndecodableEvent(f"{t.name}: not a {t.message.DESCRIPTOR.full_name}: {exc}") from exc
    # Every event carries its ids; a message without them is garbage that parsed by accident
    # (getattr: `msg` is typed as the Message base here).
    # An agent's event (agent.events, keyed by agent id) has a call only while the agent has one: its agent_id instead.
    ids = (
        getattr(msg, "agent_id", "")
        if t.message.DESCRIPTOR.full_name == "switchboard.v1.AgentEvent"
        else getattr(msg, "call_id", "x")
    )
    if not ids or not getattr(msg, "event_id", ""):
        raise UndecodableEvent(f"{t.name}: {t.message.DESCRIPTOR.full_name} without event_id/call_id")
    return msg


class SourceRecord(Protocol):
    """A consumed record: an aiokafka ConsumerRecord or a Faust message."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def dead_letter(service: str, record: SourceRecord, reason: str) -> pb.DeadLetter:
    """The dead letter of a record `service` could not decode or handle: the record as it came, and why."""
    return pb.DeadLetter(
        event_id=new_id(),
        occurred_at=now_ts(),
        service=service,
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        key=record.key or b"",
        value=record.value or b"",
        reason=reason[:2000],
    )


def to_dict(event: Message) -> dict[str, Any]:
    return json_format.MessageToDict(event, preserving_proto_field_name=True)


def to_json(event: Message) -> str:
    return json_format.MessageToJson(event, preserving_proto_field_name=True, indent=None)
