"""`make proto` (after protogen): the JSON Schemas of the CTI events, generated from the proto descriptors.

Into docs/schemas/cti (committed; a unit test fails when they differ from what this produces):
* `call.routed.schema.json`, `call.ended.schema.json`: one per webhook event type, the body of a CRM
  webhook delivery (platform.webhook_payload: the Standard Webhooks envelope around the CtiEvent);
* `cti-event.schema.json`: the CtiEvent of the cti.events topic, in its protobuf JSON form.

The CtiEvent part follows the proto3 JSON mapping exactly as `json_format.MessageToDict(...,
preserving_proto_field_name=True)` writes it: field names as in the proto, 32-bit integers as numbers,
64-bit integers as decimal strings, enums by name, Timestamps as RFC 3339 UTC strings, maps as objects,
repeated fields as arrays, bytes as base64, and a field at its default value left out. The schemas are
closed (no property or enum name they do not list): they describe exactly what this version sends,
so that a test catches a body that drifted from the proto. Descriptions are the proto's comments.

Each schema carries `examples`: the webhook bodies of the sample events below, built by
webhook_body(); the same examples are written into docs/CTI.md between its generated-example markers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from switchboard.platform.protogen import ROOT, descriptor_set
from switchboard.platform.webhook_payload import WEBHOOK_TYPES, webhook_body
from switchboard.v1 import events_pb2 as pb

SCHEMA_DIR = ROOT / "docs" / "schemas" / "cti"
CTI_DOC = ROOT / "docs" / "CTI.md"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
CTI_EVENT = "switchboard.v1.CtiEvent"
RAW_SCHEMA = "cti-event.schema.json"

# The fields every CtiEvent carries (cti sets them on each event it publishes), required by the
# schemas. Not in the descriptors: proto3 has no required fields, and a field at its default value
# is left out of the JSON. Only ever extended (a field removed here would break clients relying on it).
ALWAYS_SET = ("event_id", "call_id", "occurred_at", "type", "attempt")

_FD = descriptor_pb2.FieldDescriptorProto
_INT32 = {_FD.TYPE_INT32, _FD.TYPE_SINT32, _FD.TYPE_SFIXED32}
_UINT32 = {_FD.TYPE_UINT32, _FD.TYPE_FIXED32}
_INT64 = {_FD.TYPE_INT64, _FD.TYPE_SINT64, _FD.TYPE_SFIXED64}
_UINT64 = {_FD.TYPE_UINT64, _FD.TYPE_FIXED64}
# protobuf's JSON forms of the well-known types used in switchboard.v1; another one is refused until
# its mapping is added here.
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {
        "type": "string",
        "format": "date-time",
        # MessageToDict writes UTC with a Z and 0, 3, 6 or 9 fractional digits.
        "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{3}|\.[0-9]{6}|\.[0-9]{9})?Z$",
        "description": "RFC 3339 time in UTC (google.protobuf.Timestamp)",
    },
    "google.protobuf.Duration": {
        "type": "string",
        "pattern": r"^-?[0-9]+(\.[0-9]{3}|\.[0-9]{6}|\.[0-9]{9})?s$",
        "description": 'seconds with an "s" suffix (google.protobuf.Duration)',
    },
}


@dataclass(frozen=True)
class _Type:
    """A message or enum of the descriptor set, with its comment."""

    full_name: str
    message: descriptor_pb2.DescriptorProto | None
    enum: descriptor_pb2.EnumDescriptorProto | None
    comments: dict[tuple[int, ...], str]  # relative path (field / enum value) → comment; () the type's own
    file: str


class _Types:
    def __init__(self, fds: descriptor_pb2.FileDescriptorSet) -> None:
        self.by_name: dict[str, _Type] = {}
        for file in fds.file:
            comments = {tuple(loc.path): _comment(loc) for loc in file.source_code_info.location}
            prefix = f"{file.package}." if file.package else ""
            for i, msg in enumerate(file.message_type):
                self._add_message(file.name, prefix, msg, (4, i), comments)
            for i, enum in enumerate(file.enum_type):
                self._add_enum(file.name, prefix, enum, (5, i), comments)

    def _add_message(
        self,
        file: str,
        prefix: str,
        msg: descriptor_pb2.DescriptorProto,
        path: tuple[int, ...],
        comments: dict[tuple[int, ...], str],
    ) -> None:
        name = prefix + msg.name
        self.by_name[name] = _Type(name, msg, None, _relative(comments, path), file)
        for i, nested in enumerate(msg.nested_type):
            self._add_message(file, f"{name}.", nested, (*path, 3, i), comments)
        for i, enum in enumerate(msg.enum_type):
            self._add_enum(file, f"{name}.", enum, (*path, 4, i), comments)

    def _add_enum(
        self,
        file: str,
        prefix: str,
        enum: descriptor_pb2.EnumDescriptorProto,
        path: tuple[int, ...],
        comments: dict[tuple[int, ...], str],
    ) -> None:
        name = prefix + enum.name
        self.by_name[name] = _Type(name, None, enum, _relative(comments, path), file)


def _comment(loc: descriptor_pb2.SourceCodeInfo.Location) -> str:
    parts = [loc.leading_comments, loc.trailing_comments]
    return " ".join(" ".join(line.strip() for line in p.strip().splitlines()) for p in parts if p.strip())


def _relative(comments: dict[tuple[int, ...], str], path: tuple[int, ...]) -> dict[tuple[int, ...], str]:
    n = len(path)
    return {k[n:]: v for k, v in comments.items() if k[:n] == path and v}


class _Builder:
    """The JSON Schema of one message and of what it refers to (collected in `defs`)."""

    def __init__(self, types: _Types) -> None:
        self.types = types
        self.defs: dict[str, dict[str, Any]] = {}

    def ref(self, full_name: str) -> dict[str, Any]:
        if full_name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[full_name])
        if full_name.startswith("google.protobuf."):
            raise ValueError(f"{full_name}: no JSON Schema mapping for this well-known type (add it to schemagen._WELL_KNOWN)")
        if full_name not in self.defs:
            t = self.types.by_name[full_name]
            self.defs[full_name] = {}  # placeholder: a recursive message refers to itself
            self.defs[full_name] = self._message(t) if t.message is not None else self._enum(t)
        return {"$ref": f"#/$defs/{full_name}"}

    def _enum(self, t: _Type) -> dict[str, Any]:
        assert t.enum is not None
        lines = [t.comments.get((), f"enum {t.full_name}")]
        for i, v in enumerate(t.enum.value):
            if (note := t.comments.get((2, i))) is not None:
                lines.append(f"{v.name}: {note}")
        # The default value (0, *_UNSPECIFIED) is left out of the JSON, but a client may meet it in a
        # map or list or from another producer: it stays in the list.
        return {"type": "string", "enum": [v.name for v in t.enum.value], "description": "\n".join(lines)}

    def _message(self, t: _Type) -> dict[str, Any]:
        msg = t.message
        assert msg is not None
        props: dict[str, Any] = {}
        for i, field in enumerate(msg.field):
            schema = self._field(t, field)
            if (note := t.comments.get((2, i))) is not None:
                schema["description"] = note
            props[field.name] = schema
        out: dict[str, Any] = {"type": "object"}
        if () in t.comments:
            out["description"] = t.comments[()]
        out["properties"] = props
        out["additionalProperties"] = False
        # A real oneof (not proto3 `optional`): at most one of its fields is set.
        for o, oneof in enumerate(msg.oneof_decl):
            members = [f.name for f in msg.field if f.HasField("oneof_index") and f.oneof_index == o and not f.proto3_optional]
            if len(members) > 1:
                pairs = [{"required": [a, b]} for k, a in enumerate(members) for b in members[k + 1 :]]
                out.setdefault("allOf", []).append({"description": f"oneof {oneof.name}", "not": {"anyOf": pairs}})
        return out

    def _field(self, owner: _Type, field: descriptor_pb2.FieldDescriptorProto) -> dict[str, Any]:
        if field.type == _FD.TYPE_MESSAGE:
            entry = self.types.by_name[field.type_name.lstrip(".")].message
            if entry is not None and entry.options.map_entry:
                key, value = entry.field[0], entry.field[1]
                schema: dict[str, Any] = {"type": "object", "additionalProperties": self._single(owner, value)}
                if key.type != _FD.TYPE_STRING:  # JSON object keys are strings: the key's decimal or true/false form
                    schema["propertyNames"] = {"pattern": "^(true|false)$" if key.type == _FD.TYPE_BOOL else "^-?[0-9]+$"}
                return schema
        if field.label == _FD.LABEL_REPEATED:
            return {"type": "array", "items": self._single(owner, field)}
        return self._single(owner, field)

    def _single(self, owner: _Type, field: descriptor_pb2.FieldDescriptorProto) -> dict[str, Any]:
        kind = field.type
        if kind in (_FD.TYPE_MESSAGE, _FD.TYPE_ENUM):
            return self.ref(field.type_name.lstrip("."))
        if kind == _FD.TYPE_STRING:
            return {"type": "string"}
        if kind == _FD.TYPE_BOOL:
            return {"type": "boolean"}
        if kind == _FD.TYPE_BYTES:
            return {"type": "string", "contentEncoding": "base64"}
        if kind in _INT32:
            return {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
        if kind in _UINT32:
            return {"type": "integer", "minimum": 0, "maximum": 2**32 - 1}
        if kind in _INT64:
            return {"type": "string", "pattern": "^-?[0-9]+$", "description": "64-bit integer as a decimal string"}
        if kind in _UINT64:
            return {"type": "string", "pattern": "^[0-9]+$", "description": "64-bit integer as a decimal string"}
        if kind in (_FD.TYPE_DOUBLE, _FD.TYPE_FLOAT):
            return {"anyOf": [{"type": "number"}, {"enum": ["NaN", "Infinity", "-Infinity"]}]}
        raise ValueError(f"{owner.full_name}.{field.name}: field type {kind} has no JSON Schema mapping")


# Sample events: the examples of the schemas and of docs/CTI.md. Fictional numbers (555-01xx).
def _ts(iso: str) -> Timestamp:
    ts = Timestamp()
    ts.FromJsonString(iso)
    return ts


def examples() -> list[tuple[str, pb.CtiEvent]]:
    """(title, event) of each example, in the order docs/CTI.md shows them."""
    caller = pb.Caller(number="+15125550143", state="TX", zip="78701", area_code="512", timezone="America/Chicago")
    answers = {"homeowner": "yes", "monthly_bill": "180", "consent": "yes"}
    routed_buyer = pb.CtiEvent(
        event_id="3f2b8c1e9d7a4e0f8a6b5c4d3e2f1a0b",
        call_id="c-20260115-0001",
        occurred_at=_ts("2026-01-15T17:04:05.120Z"),
        type=pb.CTI_EVENT_TYPE_CALL_ROUTED,
        campaign_id="solar-tx",
        publisher_id="pub-acme",
        caller=caller,
        answers=answers,
        kind=pb.TARGET_KIND_BUYER,
        buyer_id="sunbright",
        destination="+18885550199",
        price="37.50",
        attempt=1,
    )
    routed_agent = pb.CtiEvent(
        event_id="9a8b7c6d5e4f40318b2a1c0d9e8f7a6b",
        call_id="c-20260115-0002",
        occurred_at=_ts("2026-01-15T17:06:41.007Z"),
        type=pb.CTI_EVENT_TYPE_CALL_ROUTED,
        campaign_id="solar-tx",
        publisher_id="pub-acme",
        caller=pb.Caller(number="+12145550177", state="TX", area_code="214", timezone="America/Chicago"),
        answers={"homeowner": "yes"},
        kind=pb.TARGET_KIND_AGENT,
        agent_id="agent-maria",
        destination="sip:maria@desk.example.com",
        price="0",
        attempt=2,
    )
    ended_answered = pb.CtiEvent()
    ended_answered.CopyFrom(routed_buyer)
    ended_answered.event_id = "5c4b3a2918074f6e8d5c4b3a29180746"
    ended_answered.occurred_at.CopyFrom(_ts("2026-01-15T17:12:33.480Z"))
    ended_answered.type = pb.CTI_EVENT_TYPE_CALL_ENDED
    ended_answered.outcome = pb.CALL_OUTCOME_ANSWERED
    ended_answered.connected_seconds = 492
    ended_no_answer = pb.CtiEvent(
        event_id="7e6d5c4b3a29480f9e8d7c6b5a493827",
        call_id="c-20260115-0002",
        occurred_at=_ts("2026-01-15T17:06:38.950Z"),
        type=pb.CTI_EVENT_TYPE_CALL_ENDED,
        campaign_id="solar-tx",
        publisher_id="pub-acme",
        caller=pb.Caller(number="+12145550177", state="TX", area_code="214", timezone="America/Chicago"),
        answers={"homeowner": "yes"},
        kind=pb.TARGET_KIND_BUYER,
        buyer_id="sunbright",
        destination="+18885550199",
        price="41.00",
        outcome=pb.CALL_OUTCOME_NO_ANSWER,
        attempt=1,
    )
    return [
        ("call.routed to a buyer (the screen pop)", routed_buyer),
        ("call.routed to an in-house agent, second offer of the call", routed_agent),
        ("call.ended: the buyer's call was answered", ended_answered),
        ("call.ended: the first offer was not answered (the call is re-routed)", ended_no_answer),
    ]


def _cti_event_schema(types: _Types, schema_id: str, title: str) -> tuple[dict[str, Any], _Builder]:
    builder = _Builder(types)
    builder.ref(CTI_EVENT)
    return {"$schema": DRAFT, "$id": schema_id, "title": title}, builder


def message_schema(fds: descriptor_pb2.FileDescriptorSet, full_name: str) -> dict[str, Any]:
    """The JSON Schema of any message of `fds` in its protobuf JSON form (the mapping of the CTI schemas)."""
    builder = _Builder(_Types(fds))
    root = builder.ref(full_name)
    return {"$schema": DRAFT, **root, "$defs": builder.defs}


def schemas(fds: descriptor_pb2.FileDescriptorSet) -> dict[str, dict[str, Any]]:
    """File name → JSON Schema, for every schema of docs/schemas/cti."""
    types = _Types(fds)
    out: dict[str, dict[str, Any]] = {}
    by_type = {t: [ev for _, ev in examples() if ev.type == t] for t in WEBHOOK_TYPES}
    enum_names = {v.number: v.name for v in pb.CtiEventType.DESCRIPTOR.values}
    for event_type, name in WEBHOOK_TYPES.items():
        head, builder = _cti_event_schema(
            types, f"urn:switchboard:v1:webhook:{name}", f"Switchboard CRM webhook {name} (CtiEvent {enum_names[event_type]})"
        )
        out[f"{name}.schema.json"] = {
            **head,
            "description": (
                f"The JSON body of a Standard Webhooks delivery of a {name} CTI event (docs/CTI.md). "
                "Headers: webhook-id (= data.event_id), webhook-timestamp, webhook-signature."
            ),
            "type": "object",
            "properties": {
                "type": {"const": name, "description": "the webhook event type"},
                "timestamp": {
                    **_WELL_KNOWN["google.protobuf.Timestamp"],
                    "description": "when the event happened (= data.occurred_at)",
                },
                "data": {
                    "$ref": f"#/$defs/{CTI_EVENT}",
                    "properties": {"type": {"const": enum_names[event_type]}},
                    "required": list(ALWAYS_SET),
                },
            },
            "required": ["type", "timestamp", "data"],
            "additionalProperties": False,
            "$defs": builder.defs,
            "examples": [example_body(ev) for ev in by_type[event_type]],
        }
    head, builder = _cti_event_schema(
        types, "urn:switchboard:v1:topic:cti.events", "Switchboard cti.events CtiEvent (protobuf JSON)"
    )
    out[RAW_SCHEMA] = {
        **head,
        "description": (
            "A CtiEvent of the cti.events topic (protobuf binary on the topic) in its protobuf JSON form, "
            "field names as in the proto: the `data` of a webhook delivery."
        ),
        "$ref": f"#/$defs/{CTI_EVENT}",
        "required": list(ALWAYS_SET),
        "$defs": builder.defs,
        "examples": [example_body(ev)["data"] for _, ev in examples()],
    }
    return out


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


# docs/CTI.md: the text between these markers is generated (one JSON block per example).
_BEGIN = "<!-- BEGIN generated examples (make proto) -->"
_END = "<!-- END generated examples -->"


def example_body(event: pb.CtiEvent) -> dict[str, Any]:
    """webhook_body(event) with its maps' keys sorted: protobuf does not promise an order for them,
    and the generated files must be the same on every run."""
    body = webhook_body(event)
    for field in pb.CtiEvent.DESCRIPTOR.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry and field.name in body["data"]:
            body["data"][field.name] = dict(sorted(body["data"][field.name].items()))
    return body


def examples_markdown() -> str:
    blocks = []
    for title, ev in examples():
        blocks.append(f"**{title}**\n\n```json\n{json.dumps(example_body(ev), indent=2)}\n```\n")
    return "\n".join(blocks)


def with_examples(doc: str) -> str:
    """`doc` (docs/CTI.md) with its generated-example section rewritten."""
    pattern = re.compile(re.escape(_BEGIN) + r".*?" + re.escape(_END), re.DOTALL)
    if not pattern.search(doc):
        raise ValueError(f"{CTI_DOC}: no generated-example section (a line {_BEGIN!r}, then one {_END!r})")
    return pattern.sub(lambda _: f"{_BEGIN}\n{examples_markdown()}{_END}", doc)


def outputs(fds: descriptor_pb2.FileDescriptorSet | None = None) -> Iterator[tuple[Path, str]]:
    """(path, text) of every generated file, as `make proto` writes it."""
    fds = descriptor_set(source_info=True) if fds is None else fds
    for name, schema in schemas(fds).items():
        yield SCHEMA_DIR / name, render(schema)
    yield CTI_DOC, with_examples(CTI_DOC.read_text())


def main() -> None:
    SCHEMA_DIR.mkdir(parents=True, exist_ok=True)
    stale = set(SCHEMA_DIR.glob("*.schema.json"))
    for path, text in outputs():
        path.write_text(text)
        stale.discard(path)
    for path in stale:  # a schema of an event type that no longer exists here
        path.unlink()
    print(f"generated the CTI JSON Schemas into {SCHEMA_DIR.relative_to(ROOT)} and the examples of {CTI_DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
