"""The webhook body of a CtiEvent (COMMON contract, docs/CTI.md): envelope, type names, protobuf JSON data."""

from __future__ import annotations

import json

import pytest
from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from switchboard.platform.webhook_payload import WEBHOOK_TYPES, webhook_body, webhook_type
from switchboard.v1 import events_pb2 as pb


def _ts(seconds: int, nanos: int = 0) -> Timestamp:
    return Timestamp(seconds=seconds, nanos=nanos)


def routed() -> pb.CtiEvent:
    return pb.CtiEvent(
        event_id="e1",
        call_id="c1",
        occurred_at=_ts(1_767_225_600, 250_000_000),  # 2026-01-01T00:00:00.250Z
        type=pb.CTI_EVENT_TYPE_CALL_ROUTED,
        campaign_id="solar",
        publisher_id="pub-1",
        caller=pb.Caller(number="+15125550100", state="TX", zip="78701"),
        answers={"homeowner": "yes"},
        kind=pb.TARGET_KIND_BUYER,
        buyer_id="b1",
        destination="+18885550199",
        price="37.50",
        attempt=1,
    )


def test_type_names_are_the_contract() -> None:
    assert webhook_type(routed()) == "call.routed"
    assert webhook_type(pb.CtiEvent(type=pb.CTI_EVENT_TYPE_CALL_ENDED)) == "call.ended"


def test_every_cti_event_type_has_a_webhook_type() -> None:
    # A new CtiEventType without a name here would fail at delivery time: fail here first.
    named = {v.number for v in pb.CtiEventType.DESCRIPTOR.values if v.number != pb.CTI_EVENT_TYPE_UNSPECIFIED}
    assert named == set(WEBHOOK_TYPES)
    names = list(WEBHOOK_TYPES.values())
    assert len(names) == len(set(names))
    assert all(n == n.lower() and "." in n for n in names)


def test_unspecified_type_is_refused_with_the_event_id() -> None:
    with pytest.raises(ValueError, match=r"CtiEvent e9: type 0 has no webhook type"):
        webhook_type(pb.CtiEvent(event_id="e9"))
    with pytest.raises(ValueError, match="no webhook type"):
        webhook_body(pb.CtiEvent(event_id="e9", type=99))  # type: ignore[arg-type]  # a value this build does not know


def test_body_is_the_envelope_with_protobuf_json_data() -> None:
    ev = routed()
    body = webhook_body(ev)
    assert body == {
        "type": "call.routed",
        "timestamp": "2026-01-01T00:00:00.250Z",
        "data": {
            "event_id": "e1",
            "call_id": "c1",
            "occurred_at": "2026-01-01T00:00:00.250Z",
            "type": "CTI_EVENT_TYPE_CALL_ROUTED",
            "campaign_id": "solar",
            "publisher_id": "pub-1",
            "caller": {"number": "+15125550100", "state": "TX", "zip": "78701"},
            "answers": {"homeowner": "yes"},
            "kind": "TARGET_KIND_BUYER",
            "buyer_id": "b1",
            "destination": "+18885550199",
            "price": "37.50",
            "attempt": 1,
        },
    }
    # JSON-serialisable as is, and the data parses back into the same event (what a client in any
    # language with protobuf's JSON parser gets).
    wire = json.loads(json.dumps(body))
    assert json_format.ParseDict(wire["data"], pb.CtiEvent()) == ev


def test_ended_body_leaves_default_fields_out() -> None:
    ev = pb.CtiEvent(
        event_id="e2",
        call_id="c1",
        occurred_at=_ts(1_767_225_700),
        type=pb.CTI_EVENT_TYPE_CALL_ENDED,
        outcome=pb.CALL_OUTCOME_NO_ANSWER,
        attempt=2,
    )
    body = webhook_body(ev)
    assert body["type"] == "call.ended"
    assert body["timestamp"] == "2026-01-01T00:01:40Z"
    assert body["data"] == {
        "event_id": "e2",
        "call_id": "c1",
        "occurred_at": "2026-01-01T00:01:40Z",
        "type": "CTI_EVENT_TYPE_CALL_ENDED",
        "outcome": "CALL_OUTCOME_NO_ANSWER",
        "attempt": 2,
    }
