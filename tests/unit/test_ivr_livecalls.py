"""The ivr desk's durable call state (ivr.calls): records written and merged, without a broker (docs/IVR.md,
"Restarts and replicas"). The crash itself, with real processes: tests/integration/test_ivr_crash.py."""

from __future__ import annotations

import time
from typing import cast

from switchboard.core import ivr as flows
from switchboard.core.caller import caller_facts
from switchboard.platform import codec
from switchboard.platform.configfile import load_config
from switchboard.platform.kafka import EventBus
from switchboard.platform.settings import DEMO_CONFIG
from switchboard.services.ivr.desk import CallDesk, CallState
from switchboard.services.ivr.settings import IvrSettings
from switchboard.v1 import call_control_pb2 as cc
from switchboard.v1 import events_pb2 as pb

CONFIG = load_config(DEMO_CONFIG)


def desk() -> CallDesk:
    return CallDesk(IvrSettings(), CONFIG, cast(EventBus, None))  # merging publishes nothing


def state(call_id: str = "c1") -> CallState:
    return CallState(
        call_id=call_id,
        dialed_number="+18885550123",
        campaign_id="solar-ca",
        publisher_id="solar-media",
        caller=caller_facts("+13105551234").with_zip("90210"),
        started_at=codec.now_ts(),
        started_mono=time.monotonic(),
    )


def offer(attempt: int, buyer: str = "acme-solar") -> cc.RoutingResult:
    return cc.RoutingResult(
        call_id="c1", status=cc.ROUTING_STATUS_ROUTED, buyer_id=buyer, destination="+18005550100", price="40.00", attempt=attempt
    )


def test_a_record_read_back_is_the_call_it_was_written_from():
    call = state()
    flow = next(f for f in CONFIG.ivr_flows if f.id == "solar-qualify")
    call.flow, call.flow_state = flow, flows.start(flow)
    call.answers = {"homeowner": "yes"}
    call.completed = True
    call.decide(offer(2, "sunpower"))
    call.reported_attempt, call.last_report = 1, (pb.CALL_OUTCOME_NO_ANSWER, 0)
    call.version = 3
    back = CallState.from_record(call.record(), {flow.id: flow})
    assert (back.call_id, back.campaign_id, back.caller, back.answers, back.completed) == (
        "c1",
        "solar-ca",
        call.caller,
        {"homeowner": "yes"},
        True,
    )
    assert back.flow is flow and back.flow_state == call.flow_state
    assert back.result == call.result and back.decided.is_set() and not back.no_offer.is_set()
    assert (back.reported_attempt, back.last_report, back.version) == (1, (pb.CALL_OUTCOME_NO_ANSWER, 0), 3)
    assert abs(time.monotonic() - back.started_mono) < 5  # the TTL counts from the start, not from the read


def test_newer_records_win_older_ones_and_echoes_are_ignored_and_the_end_is_remembered():
    d = desk()
    call = state()
    call.version = 1
    d.on_live_call("c1", call.record())
    assert d.is_live("c1")
    newer = state()
    newer.version, newer.completed, newer.answers = 2, True, {"zip": "90210"}
    d.on_live_call("c1", newer.record())
    assert d.calls["c1"].completed and d.calls["c1"].answers == {"zip": "90210"}
    d.on_live_call("c1", call.record())  # version 1 again (late, or this instance's own write coming back)
    assert d.calls["c1"].completed
    ended = newer.record()
    ended.version, ended.ended, ended.last_outcome, ended.last_connected_seconds = 3, True, pb.CALL_OUTCOME_ANSWERED, 60
    d.on_live_call("c1", ended)
    assert not d.is_live("c1") and d.ended["c1"] == (pb.CALL_OUTCOME_ANSWERED, 60)
    d.on_live_call("c1", newer.record())  # an older record after the end does not bring the call back
    d.on_live_call("c1", None)  # nor does the tombstone change anything
    assert not d.is_live("c1") and d.has_ended("c1")


def test_a_decision_read_before_its_call_or_newer_than_a_record_is_kept():
    d = desk()
    routed = pb.CallRouted(event_id="e", call_id="c1", buyer_id="acme-solar", destination="+1800", price="40.00", attempt=1)
    d.on_terminal(cast(object, None), routed)  # type: ignore[arg-type]  # the call's record has not arrived yet
    call = state()
    call.version, call.completed = 1, True
    d.on_live_call("c1", call.record())
    assert d.calls["c1"].result is not None and d.calls["c1"].result.buyer_id == "acme-solar"
    assert d.offer_outstanding("c1")
    later = state()
    later.version, later.completed = 2, True  # written by an instance that had not read the decision yet
    d.on_live_call("c1", later.record())
    assert d.calls["c1"].result is not None and d.calls["c1"].result.attempt == 1
    reported = state()
    reported.version, reported.completed, reported.reported_attempt = 3, True, 1  # offer 1 reported elsewhere
    d.on_live_call("c1", reported.record())
    assert d.calls["c1"].result is None and not d.offer_outstanding("c1")


def test_decisions_are_read_again_from_the_lowest_offset_of_the_recent_pending_calls():
    d = desk()
    now = time.time()
    for call_id, offsets, age_s in (("a", {"call.routed/0": 40, "call.rejected/0": 7}, 10), ("b", {"call.routed/0": 25}, 20)):
        call = state(call_id)
        call.completed, call.decision_from, call.pending_since = True, offsets, now - age_s
        d.calls[call_id] = call
    old = state("old")
    old.completed, old.decision_from, old.pending_since = True, {"call.routed/0": 1}, now - 7200  # lost by the edge
    d.calls["old"] = old
    decided = state("decided")
    decided.completed, decided.decision_from = True, {"call.routed/0": 0}
    decided.decide(offer(1))
    d.calls["decided"] = decided
    assert d.decision_offsets(now) == {"call.routed/0": 25, "call.rejected/0": 7}
