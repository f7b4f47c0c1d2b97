"""Versioning of switchboard.v1 (docs/CTI.md "Versioning"): proto/ against the previous contract, additive changes only.

The check is `buf breaking` (platform.protocompat); these tests prove it holds the current proto to
proto/baseline and that it refuses each kind of break while it lets every kind of addition through.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from google.protobuf import descriptor_pb2

from switchboard.platform import protocompat
from switchboard.platform.protogen import descriptor_set

FDS = descriptor_pb2.FileDescriptorSet
_FD = descriptor_pb2.FieldDescriptorProto


@pytest.fixture(scope="module")
def current() -> FDS:  # compiled once: protoc is the slow part
    return descriptor_set()


def test_current_proto_is_compatible_with_the_previous_contract(current: FDS) -> None:
    breaks = protocompat.breaking_changes(current, protocompat.load())
    assert not breaks, "switchboard.v1 takes additive changes only (docs/CTI.md, Versioning):\n" + "\n".join(map(str, breaks))


def test_baseline_holds_every_file_of_switchboard_v1(current: FDS) -> None:
    # A baseline without a file would let that file change freely.
    baseline = {f.name for f in protocompat.load().file}
    assert {f.name for f in current.file if f.package == "switchboard.v1"} <= baseline
    assert protocompat.render(protocompat.load()) == protocompat.BASELINE.read_text()  # written by `make proto-baseline`


def _file(fds: FDS, name: str) -> descriptor_pb2.FileDescriptorProto:
    return next(f for f in fds.file if f.name == f"switchboard/v1/{name}.proto")


def _message(fds: FDS, name: str) -> descriptor_pb2.DescriptorProto:
    return next(m for f in fds.file for m in f.message_type if m.name == name)


def _field(fds: FDS, message: str, field: str) -> descriptor_pb2.FieldDescriptorProto:
    return next(f for f in _message(fds, message).field if f.name == field)


def _enum(fds: FDS, name: str) -> descriptor_pb2.EnumDescriptorProto:
    return next(e for f in fds.file for e in f.enum_type if e.name == name)


def _rpc(fds: FDS, service: str, rpc: str) -> descriptor_pb2.MethodDescriptorProto:
    svc = next(s for f in fds.file for s in f.service if s.name == service)
    return next(m for m in svc.method if m.name == rpc)


def _remove(items, pred) -> None:  # a repeated field of descriptors: del the first match
    del items[next(i for i, x in enumerate(items) if pred(x))]


def _remove_enum(fds: FDS, name: str) -> None:
    """The enum and the fields of that type (buf reads only a descriptor set whose references resolve)."""
    _remove(_file(fds, "events").enum_type, lambda e: e.name == name)
    for file in fds.file:
        for msg in file.message_type:
            keep = [f for f in msg.field if f.type_name != f".switchboard.v1.{name}"]
            del msg.field[:]
            msg.field.extend(keep)


def _changed(current: FDS, change: Callable[[FDS], object]) -> FDS:
    out = FDS()
    out.CopyFrom(current)
    change(out)
    return out


BREAKS: list[tuple[str, Callable[[FDS], object], str]] = [
    ("field removed", lambda d: _remove(_message(d, "CtiEvent").field, lambda f: f.name == "price"), "FIELD_NO_DELETE"),
    ("field renumbered", lambda d: setattr(_field(d, "CtiEvent", "price"), "number", 99), "FIELD_NO_DELETE"),
    ("field type changed", lambda d: setattr(_field(d, "CtiEvent", "attempt"), "type", _FD.TYPE_INT64), "FIELD_SAME_TYPE"),
    (
        "field message type changed",
        lambda d: setattr(_field(d, "CtiEvent", "caller"), "type_name", ".switchboard.v1.TraceEntry"),
        "FIELD_SAME_TYPE",
    ),
    (
        "field made repeated",
        lambda d: setattr(_field(d, "CtiEvent", "buyer_id"), "label", _FD.LABEL_REPEATED),
        "FIELD_SAME_CARDINALITY",
    ),
    ("field renamed", lambda d: setattr(_field(d, "CtiEvent", "buyer_id"), "name", "buyer"), "FIELD_SAME_NAME"),
    ("JSON name changed", lambda d: setattr(_field(d, "CtiEvent", "buyer_id"), "json_name", "buyer"), "FIELD_SAME_JSON_NAME"),
    (
        "message removed",
        lambda d: _remove(_file(d, "events").message_type, lambda m: m.name == "CtiEvent"),
        "PACKAGE_MESSAGE_NO_DELETE",
    ),
    (
        "enum value removed",
        lambda d: _remove(_enum(d, "CtiEventType").value, lambda v: v.name == "CTI_EVENT_TYPE_CALL_ENDED"),
        "ENUM_VALUE_NO_DELETE",
    ),
    ("enum value renumbered", lambda d: setattr(_enum(d, "CtiEventType").value[2], "number", 7), "ENUM_VALUE_NO_DELETE"),
    (
        "enum value renamed",
        lambda d: setattr(_enum(d, "CtiEventType").value[2], "name", "CTI_EVENT_TYPE_CALL_DONE"),
        "ENUM_VALUE_SAME_NAME",
    ),
    ("enum removed", lambda d: _remove_enum(d, "BidOutcome"), "PACKAGE_ENUM_NO_DELETE"),
    (
        "RPC removed",
        lambda d: _remove(_file(d, "call_control").service[0].method, lambda m: m.name == "ReportOutcome"),
        "RPC_NO_DELETE",
    ),
    (
        "RPC request type changed",
        lambda d: setattr(_rpc(d, "CallControl", "StartCall"), "input_type", ".switchboard.v1.SubmitAnswersRequest"),
        "RPC_SAME_REQUEST_TYPE",
    ),
    (
        "RPC response type changed",
        lambda d: setattr(_rpc(d, "CallControl", "StartCall"), "output_type", ".switchboard.v1.SubmitAnswersResponse"),
        "RPC_SAME_RESPONSE_TYPE",
    ),
    (
        "RPC made streaming",
        lambda d: setattr(_rpc(d, "CallControl", "StartCall"), "server_streaming", True),
        "RPC_SAME_SERVER_STREAMING",
    ),
    (
        "service removed",
        lambda d: _remove(_file(d, "bidding").service, lambda s: s.name == "Bidding"),
        "PACKAGE_SERVICE_NO_DELETE",
    ),
]


@pytest.mark.parametrize(("what", "change", "rule"), BREAKS, ids=[b[0] for b in BREAKS])
def test_each_kind_of_break_is_caught(current: FDS, what: str, change: Callable[[FDS], object], rule: str) -> None:
    breaks = protocompat.breaking_changes(_changed(current, change), current)
    assert rule in {b.rule for b in breaks}, f"{what}: expected {rule}, got {[str(b) for b in breaks]}"


def _add_field(d: FDS) -> None:
    _message(d, "CtiEvent").field.add(
        name="history_url", number=1000, type=_FD.TYPE_STRING, label=_FD.LABEL_OPTIONAL, json_name="historyUrl"
    )


def _add_enum_value(d: FDS) -> None:
    _enum(d, "CtiEventType").value.add(name="CTI_EVENT_TYPE_CONTRACT_TEST", number=1000)


def _add_message(d: FDS) -> None:
    _file(d, "events").message_type.add(name="ContractTestAddition").field.add(
        name="call_id", number=1, type=_FD.TYPE_STRING, label=_FD.LABEL_OPTIONAL, json_name="callId"
    )


def _add_rpc(d: FDS) -> None:
    _file(d, "call_control").service[0].method.add(
        name="ContractTestAddition",
        input_type=".switchboard.v1.StartCallRequest",
        output_type=".switchboard.v1.StartCallResponse",
    )


@pytest.mark.parametrize("change", [_add_field, _add_enum_value, _add_message, _add_rpc], ids=lambda c: c.__name__)
def test_additions_are_allowed(current: FDS, change: Callable[[FDS], object]) -> None:
    assert protocompat.breaking_changes(_changed(current, change), current) == []


def test_break_reads_as_file_message_and_rule(current: FDS) -> None:
    (b,) = protocompat.breaking_changes(_changed(current, BREAKS[0][1]), current)
    assert (
        str(b)
        == 'switchboard/v1/events.proto: Previously present field "13" with name "price" on message "CtiEvent" was deleted. [FIELD_NO_DELETE]'
    )


def test_check_command_fails_on_a_break(current: FDS, tmp_path, monkeypatch, capsys) -> None:
    baseline = tmp_path / "baseline.txtpb"
    baseline.write_text(protocompat.render(_changed(current, _add_field)))  # the previous contract had a field proto/ lacks
    monkeypatch.setattr(protocompat, "BASELINE", baseline)
    monkeypatch.setattr(protocompat, "ROOT", tmp_path)
    assert protocompat.main(["check"]) == 1
    out = capsys.readouterr().out
    assert 'field "1000" with name "history_url"' in out and "additive changes only" in out
    baseline.write_text(protocompat.render(current))
    assert protocompat.main(["check"]) == 0
