"""The CTI JSON Schemas (docs/schemas/cti): generated from the proto, not stale, and true of real webhook bodies."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from switchboard.platform import schemagen
from switchboard.platform.protogen import descriptor_set
from switchboard.platform.webhook_payload import WEBHOOK_TYPES, webhook_body
from switchboard.services.cti.service import screen_pop, wrap_up
from switchboard.v1 import events_pb2 as pb


def _load(name: str) -> dict[str, Any]:
    return json.loads((schemagen.SCHEMA_DIR / name).read_text())


def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(_load(name), format_checker=FormatChecker())


@pytest.fixture(scope="module")
def fds():  # compiled once: protoc is the slow part
    return descriptor_set(source_info=True)


def test_committed_schemas_and_doc_examples_are_not_stale(fds) -> None:
    """Fails when proto/, webhook_payload or the sample events changed and `make proto` was not run."""
    expected = dict(schemagen.outputs(fds))
    for path, text in expected.items():
        assert path.exists(), f"{path} is missing: run `make proto`"
        assert path.read_text() == text, f"{path} is stale: run `make proto`"
    committed = set(schemagen.SCHEMA_DIR.glob("*.schema.json"))
    assert committed == {p for p in expected if p.parent == schemagen.SCHEMA_DIR}, (
        "docs/schemas/cti has a schema no generator writes"
    )


def test_one_schema_per_webhook_type_plus_the_topic_event() -> None:
    names = {p.name for p in schemagen.SCHEMA_DIR.glob("*.schema.json")}
    assert names == {f"{t}.schema.json" for t in WEBHOOK_TYPES.values()} | {schemagen.RAW_SCHEMA}
    for name in names:
        schema = _load(name)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        Draft202012Validator.check_schema(schema)


def test_schema_field_list_is_the_proto_field_list() -> None:
    # Generated from the descriptors: every CtiEvent field, under its proto name, nothing else.
    props = _load(schemagen.RAW_SCHEMA)["$defs"][schemagen.CTI_EVENT]["properties"]
    assert list(props) == [f.name for f in pb.CtiEvent.DESCRIPTOR.fields]
    caller = _load(schemagen.RAW_SCHEMA)["$defs"]["switchboard.v1.Caller"]["properties"]
    assert list(caller) == [f.name for f in pb.Caller.DESCRIPTOR.fields]


def _bodies() -> list[dict[str, Any]]:
    """Real webhook bodies: the documented examples, and events made by the cti service's own functions."""
    bodies = [webhook_body(ev) for _, ev in schemagen.examples()]
    routed = pb.CallRouted(
        event_id="r1",
        call_id="c9",
        campaign_id="solar-tx",
        publisher_id="pub-acme",
        kind=pb.TARGET_KIND_BUYER,
        buyer_id="b1",
        destination="+18885550199",
        price="12.00",
        attempt=1,
        caller=pb.Caller(number="+15125550100", state="TX"),
        answers={"a": "1", "b": "2"},
    )
    pop = screen_pop(routed)
    ended = pb.CallEnded(
        event_id="e1", call_id="c9", outcome=pb.CALL_OUTCOME_ANSWERED, connected_seconds=61, buyer_id="b1", attempt=1
    )
    bodies += [webhook_body(pop), webhook_body(wrap_up(ended, pop)), webhook_body(wrap_up(ended, None))]
    return bodies


def test_real_webhook_bodies_validate_against_their_schema() -> None:
    raw = _validator(schemagen.RAW_SCHEMA)
    for body in _bodies():
        _validator(f"{body['type']}.schema.json").validate(body)
        raw.validate(body["data"])
        # Over the wire: the JSON text parses back into the same schema-valid body.
        _validator(f"{body['type']}.schema.json").validate(json.loads(json.dumps(body)))


def test_every_example_is_valid_and_every_webhook_type_has_one() -> None:
    for event_type in WEBHOOK_TYPES.values():
        schema = _load(f"{event_type}.schema.json")
        assert schema["examples"], event_type
        for example in schema["examples"]:
            _validator(f"{event_type}.schema.json").validate(example)
    for example in _load(schemagen.RAW_SCHEMA)["examples"]:
        _validator(schemagen.RAW_SCHEMA).validate(example)
        json_format.ParseDict(example, pb.CtiEvent())  # protobuf's own parser takes it


def _mutated(change) -> dict[str, Any]:
    body = copy.deepcopy(webhook_body(schemagen.examples()[0][1]))
    change(body)
    return body


@pytest.mark.parametrize(
    ("what", "change"),
    [
        (
            "camelCase field names (preserving_proto_field_name dropped)",
            lambda b: b["data"].update(eventId=b["data"].pop("event_id")),
        ),
        ("an enum as its number", lambda b: b["data"].update(kind=1)),
        ("an unknown enum name", lambda b: b["data"].update(kind="TARGET_KIND_ROBOT")),
        ("a field the proto does not have", lambda b: b["data"].update(caller_name="Ann")),
        ("the envelope type of another event", lambda b: b.update(type="call.ended")),
        ("data.type of another event", lambda b: b["data"].update(type="CTI_EVENT_TYPE_CALL_ENDED")),
        ("no event_id", lambda b: b["data"].pop("event_id")),
        ("no data", lambda b: b.pop("data")),
        ("a timestamp not in UTC", lambda b: b.update(timestamp="2026-01-15T18:04:05.120+01:00")),
        ("an int32 as a string", lambda b: b["data"].update(attempt="1")),
        ("a map value that is not a string", lambda b: b["data"]["answers"].update(homeowner=True)),
        ("a caller field the proto does not have", lambda b: b["data"]["caller"].update(name="Ann")),
    ],
)
def test_schema_refuses_a_body_that_drifted(what: str, change) -> None:
    with pytest.raises(ValidationError):
        _validator("call.routed.schema.json").validate(_mutated(change))


def test_proto3_json_mapping_of_other_field_types(fds) -> None:
    """The mapping the CTI schemas use, over messages with int64, bytes, double, repeated and map<string, int64>."""
    letter = pb.DeadLetter(event_id="d1", source_offset=2**40, key=b"\x00k", value=b"\xff", reason="r")
    letter.occurred_at.FromJsonString("2026-01-15T17:04:05.123456Z")
    live = pb.LiveCall(event_id="l1", call_id="c1", version=3, decision_from={"call.routed/0": 17, "call.rejected/1": 2**35})
    state = pb.QueueState(event_id="q1", clock=12.5, seq=9, offsets=[pb.QueueInputOffset()])
    for msg in (letter, live, state):
        schema = schemagen.message_schema(fds, msg.DESCRIPTOR.full_name)
        Draft202012Validator.check_schema(schema)
        Draft202012Validator(schema, format_checker=FormatChecker()).validate(
            json_format.MessageToDict(msg, preserving_proto_field_name=True)
        )
    defs = schemagen.message_schema(fds, "switchboard.v1.LiveCall")["$defs"]["switchboard.v1.LiveCall"]["properties"]
    assert defs["version"]["type"] == "string"  # int64 as a decimal string
    assert defs["decision_from"]["additionalProperties"]["type"] == "string"
    bad = json_format.MessageToDict(live, preserving_proto_field_name=True) | {"version": 3}
    with pytest.raises(ValidationError):
        Draft202012Validator(schemagen.message_schema(fds, "switchboard.v1.LiveCall")).validate(bad)


def test_examples_section_is_required_in_the_doc() -> None:
    with pytest.raises(ValueError, match="no generated-example section"):
        schemagen.with_examples("# CTI\n")
    doc = schemagen.with_examples("a\n<!-- BEGIN generated examples (make proto) -->\nold\n<!-- END generated examples -->\nb\n")
    assert doc.startswith("a\n<!-- BEGIN") and doc.endswith("<!-- END generated examples -->\nb\n") and "old" not in doc
    assert '"type": "call.routed"' in doc


def _doc_section(title: str) -> str:
    doc = schemagen.CTI_DOC.read_text()
    start = doc.index(f"\n## {title}\n")
    end = doc.find("\n## ", start + 1)
    return doc[start : end if end != -1 else len(doc)]


def test_doc_describes_every_event_type_and_field() -> None:
    """docs/CTI.md is the integrators' contract: a field or event type added to the proto must be documented there."""
    events = _doc_section("The events")
    for name in WEBHOOK_TYPES.values():
        assert f"| `{name}` |" in events, f"docs/CTI.md, The events: no row for {name}"
    fields = re.findall(r"^\| `([a-z_]+)` \|", _doc_section("Fields"), re.MULTILINE)
    missing = [f.name for f in pb.CtiEvent.DESCRIPTOR.fields if f.name not in fields]
    assert not missing, f"docs/CTI.md, Fields: no row for {missing}"
    doc = schemagen.CTI_DOC.read_text()
    for path in schemagen.SCHEMA_DIR.glob("*.schema.json"):
        assert f"(schemas/cti/{path.name})" in doc, f"docs/CTI.md does not link {path.name}"
    for title in ("Caller history", "Data sharing", "Dispositions", "Versioning", "Idempotency", "Ordering"):
        assert f"## {title}\n" in doc


def test_doc_signature_check_in_python_verifies_a_signed_delivery(monkeypatch) -> None:
    """The three lines of docs/CTI.md, run as written against a delivery signed the Standard Webhooks way."""
    import base64
    from datetime import UTC, datetime
    from types import SimpleNamespace

    import standardwebhooks

    (snippet,) = re.findall(r"```python\n(.*?)```", _doc_section("Webhooks"), re.DOTALL)
    assert len([line for line in snippet.splitlines() if line.strip()]) == 3  # "in three lines"
    secret = "whsec_" + base64.b64encode(b"integration-test-secret-32bytes!").decode()
    monkeypatch.setenv("SWITCHBOARD_WEBHOOK_SECRET", secret)
    event = schemagen.examples()[0][1]
    body = json.dumps(webhook_body(event), separators=(",", ":"))
    now = datetime.now(tz=UTC)
    headers = {
        "webhook-id": event.event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": standardwebhooks.Webhook(secret).sign(event.event_id, now, body),
    }
    scope: dict[str, Any] = {"raw_body": body.encode(), "request": SimpleNamespace(headers=headers)}
    exec(snippet, scope)
    assert scope["event"] == webhook_body(event)
    scope["raw_body"] = body.replace("37.50", "99.00").encode()  # altered in transit
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        exec(snippet, scope)


NODE_MODULES = Path(__file__).resolve().parents[2] / ".tools" / "node" / "node_modules"


def test_doc_signature_check_in_node_verifies_a_signed_delivery(tmp_path: Path) -> None:
    """The three js lines of docs/CTI.md, run as written by node against a delivery signed in Python."""
    import base64
    import shutil
    import subprocess
    from datetime import UTC, datetime

    import standardwebhooks

    node = shutil.which("node")
    if node is None or not (NODE_MODULES / "standardwebhooks").is_dir():
        pytest.skip("node, or the npm package standardwebhooks (`make install` adds it where npm exists), is missing")
    (snippet,) = re.findall(r"```js\n(.*?)```", _doc_section("Webhooks"), re.DOTALL)
    assert len([line for line in snippet.splitlines() if line.strip()]) == 3  # "in three lines"
    (tmp_path / "node_modules").symlink_to(NODE_MODULES)  # ES modules resolve packages from the script's folder
    script = tmp_path / "check.mjs"
    script.write_text(
        "const rawBody = process.env.RAW_BODY;\n"
        "const req = { headers: JSON.parse(process.env.HEADERS) };\n" + snippet + "process.stdout.write(JSON.stringify(event));\n"
    )
    secret = "whsec_" + base64.b64encode(b"integration-test-secret-32bytes!").decode()
    event = schemagen.examples()[0][1]
    body = json.dumps(webhook_body(event), separators=(",", ":"))
    now = datetime.now(tz=UTC)
    headers = {
        "webhook-id": event.event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": standardwebhooks.Webhook(secret).sign(event.event_id, now, body),
    }

    def run(raw: str) -> subprocess.CompletedProcess[str]:
        env = {"PATH": "/usr/bin:/bin", "SWITCHBOARD_WEBHOOK_SECRET": secret, "RAW_BODY": raw, "HEADERS": json.dumps(headers)}
        return subprocess.run([node, str(script)], env=env, capture_output=True, text=True, timeout=60, check=False)

    ok = run(body)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == webhook_body(event)
    altered = run(body.replace("37.50", "99.00"))  # altered in transit
    assert altered.returncode != 0 and "WebhookVerificationError" in altered.stderr, altered.stderr
