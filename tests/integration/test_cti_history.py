"""cti's caller history with the real broker: a repeat caller's screen pop shows their earlier calls, also
after cti is killed with SIGKILL and restarted (docs/CTI.md, "Caller history")."""

from __future__ import annotations

import random

import pytest

from switchboard.platform import codec
from switchboard.platform.topics import (
    AGENT_EVENTS,
    CALL_ENDED,
    CALL_REJECTED,
    CALL_ROUTED,
    CALL_STARTED,
    CTI_EVENTS,
    CTI_HISTORY,
)
from switchboard.v1 import events_pb2 as pb
from tests.support import new_call_id, service_env, start_service, stop_services, wait_event

pytestmark = pytest.mark.integration


def caller() -> pb.Caller:
    # A number of its own: the broker (and cti.history) is shared by the session's tests.
    return pb.Caller(number=f"+1310555{random.randrange(10**4):04d}", state="CA", zip="90210")


def started(cid: str, who: pb.Caller) -> pb.CallStarted:
    return pb.CallStarted(
        event_id=codec.new_id(),
        call_id=cid,
        occurred_at=codec.now_ts(),
        campaign_id="solar-ca",
        publisher_id="solar-media",
        caller=who,
    )


def routed(cid: str, who: pb.Caller, *, buyer: str = "", agent: str = "") -> pb.CallRouted:
    return pb.CallRouted(
        event_id=codec.new_id(),
        call_id=cid,
        occurred_at=codec.now_ts(),
        call_started_at=codec.now_ts(),
        campaign_id="solar-ca",
        publisher_id="solar-media",
        kind=pb.TARGET_KIND_AGENT if agent else pb.TARGET_KIND_BUYER,
        buyer_id=buyer,
        agent_id=agent,
        price="0" if agent else "40.00",
        attempt=1,
        billable_after_s=0 if agent else 60,
        caller=who,
        answers={"homeowner": "yes"},
    )


def ended(cid: str, seconds: int, *, buyer: str = "", agent: str = "") -> pb.CallEnded:
    return pb.CallEnded(
        event_id=codec.new_id(),
        call_id=cid,
        occurred_at=codec.now_ts(),
        outcome=pb.CALL_OUTCOME_ANSWERED,
        connected_seconds=seconds,
        buyer_id=buyer,
        agent_id=agent,
        attempt=1,
    )


def pop_of(cid: str):
    return lambda e: e.call_id == cid and e.type == pb.CTI_EVENT_TYPE_CALL_ROUTED


async def test_a_repeat_callers_screen_pop_has_their_calls_also_after_a_sigkill(broker, bus, kafka, tmp_path):
    env = service_env(broker.kafka_settings())
    cti = start_service("cti", env, tmp_path, log=tmp_path / "cti-1.log")
    restarted = None
    try:
        who = caller()
        sale, dup, agent_call, again = new_call_id(), new_call_id(), new_call_id(), new_call_id()
        # 1. a sale to acme-solar (95 s connected, billable after 60)
        await bus.publish(CALL_STARTED, started(sale, who))
        await bus.publish(CALL_ROUTED, routed(sale, who, buyer="acme-solar"))
        [first_pop] = await wait_event(kafka, CTI_EVENTS, pop_of(sale))
        assert list(first_pop.history) == []  # a first-time caller
        await bus.publish(CALL_ENDED, ended(sale, 95, buyer="acme-solar"))
        # 2. a call rejected as a duplicate
        await bus.publish(CALL_STARTED, started(dup, who))
        await bus.publish(
            CALL_REJECTED, pb.CallRejected(event_id=codec.new_id(), call_id=dup, occurred_at=codec.now_ts(), reason="duplicate")
        )
        # 3. a call to agent ana, who wraps up with a disposition
        await bus.publish(CALL_STARTED, started(agent_call, who))
        await bus.publish(CALL_ROUTED, routed(agent_call, who, agent="ana"))
        await bus.publish(CALL_ENDED, ended(agent_call, 200, agent="ana"))
        await bus.publish(
            AGENT_EVENTS,
            pb.AgentEvent(
                event_id=codec.new_id(),
                occurred_at=codec.now_ts(),
                agent_id="ana",
                state=pb.AGENT_STATE_READY,
                previous_state=pb.AGENT_STATE_WRAP_UP,
                call_id=agent_call,
                disposition="follow_up",
                note="call back Friday",
            ),
            key="ana",
        )

        # The topics are not ordered against each other: wait until cti.history holds all three as they ended.
        def complete(h: pb.CallerHistory) -> bool:
            by_id = {c.call_id: c for c in h.calls}
            return (
                by_id.keys() >= {sale, dup, agent_call}
                and by_id[dup].rejected_reason == "duplicate"
                and by_id[agent_call].disposition == "follow_up"
                and by_id[sale].outcome == pb.CALL_OUTCOME_ANSWERED
            )

        await wait_event(kafka, CTI_HISTORY, complete)
        # 4. the caller again: the pop shows 3, 2, 1 (newest first), each as it ended
        await bus.publish(CALL_STARTED, started(again, who))
        await bus.publish(CALL_ROUTED, routed(again, who, buyer="sunpower"))
        [pop] = await wait_event(kafka, CTI_EVENTS, pop_of(again))
        three, two, one = pop.history
        assert [c.call_id for c in pop.history] == [agent_call, dup, sale]
        assert (one.buyer_id, one.outcome, one.connected_seconds, one.billable, one.price) == (
            "acme-solar",
            pb.CALL_OUTCOME_ANSWERED,
            95,
            True,
            "40.00",
        )
        assert dict(one.answers) == {"homeowner": "yes"} and one.campaign_id == "solar-ca"
        assert (two.rejected_reason, two.buyer_id) == ("duplicate", "")
        assert (three.agent_id, three.disposition, three.disposition_note, three.billable) == (
            "ana",
            "follow_up",
            "call back Friday",
            False,
        )
        # 5. kill -9, restart: the history is read back from cti.history
        cti.kill()
        restarted = start_service("cti", env, tmp_path, log=tmp_path / "cti-2.log")
        fifth = new_call_id()
        await bus.publish(CALL_STARTED, started(fifth, who))
        await bus.publish(CALL_ROUTED, routed(fifth, who, buyer="acme-solar"))
        [after] = await wait_event(kafka, CTI_EVENTS, pop_of(fifth), timeout_s=60)
        assert [c.call_id for c in after.history] == [again, agent_call, dup, sale]
        assert after.history[2].rejected_reason == "duplicate" and after.history[1].disposition == "follow_up"
        # another caller's pop carries none of it
        other, stranger = new_call_id(), caller()
        await bus.publish(CALL_ROUTED, routed(other, stranger, buyer="acme-solar"))
        [theirs] = await wait_event(kafka, CTI_EVENTS, pop_of(other))
        assert stranger.number == who.number or list(theirs.history) == []
    finally:
        cti.kill()
        if restarted is not None:
            stop_services(restarted)
