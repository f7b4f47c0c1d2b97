"""The body of a CRM webhook delivery: one cti.events CtiEvent as JSON (docs/CTI.md, the integrators' contract).

`{"type": "<event type>", "timestamp": "<RFC 3339 UTC>", "data": <the CtiEvent in protobuf JSON>}`, the
Standard Webhooks envelope. `data` is the proto3 JSON mapping with the proto's own field names
(`preserving_proto_field_name=True`): int64 as strings, enums by name, Timestamps as RFC 3339, maps as
objects, and fields at their default value (empty string, 0, false, *_UNSPECIFIED) left out.

This is the one place that builds the body: the webhook sender, the JSON Schemas (platform.cti_schemas)
and the examples in docs/CTI.md all come from here, so they cannot disagree.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from switchboard.v1 import events_pb2 as pb

# The webhook `type` of each CtiEventType: lower case, dotted, named after the topic the event reports.
# Part of the contract: a name never changes; a new CtiEventType gets a new name here (a unit test
# fails for a CtiEventType without one).
WEBHOOK_TYPES: dict[int, str] = {
    pb.CTI_EVENT_TYPE_CALL_ROUTED: "call.routed",
    pb.CTI_EVENT_TYPE_CALL_ENDED: "call.ended",
}


def webhook_type(event: pb.CtiEvent) -> str:
    """The webhook `type` of `event`; ValueError for CTI_EVENT_TYPE_UNSPECIFIED or an unknown type."""
    try:
        return WEBHOOK_TYPES[event.type]
    except KeyError:
        raise ValueError(
            f"CtiEvent {event.event_id or '(no event_id)'}: type {event.type} has no webhook type "
            "(CTI_EVENT_TYPE_UNSPECIFIED, or a new CtiEventType missing from webhook_payload.WEBHOOK_TYPES)"
        ) from None


def webhook_body(event: pb.CtiEvent) -> dict[str, Any]:
    """The JSON body (before serialisation) of the webhook delivery of `event`."""
    return {
        "type": webhook_type(event),
        # When the event happened (Standard Webhooks' `timestamp`), the same instant as data.occurred_at.
        "timestamp": event.occurred_at.ToJsonString(),
        "data": json_format.MessageToDict(event, preserving_proto_field_name=True),
    }
