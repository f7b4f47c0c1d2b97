"""cti's caller history with the real broker: a repeat caller's screen pop shows their earlier calls, also
after cti is killed with SIGKILL and restarted (docs/CTI.md, "Caller history")."""

from __future__ import annotations

import json
import random

import httpx
import pytest

from switchboard.platform import codec
from switchboard.platform.topics import (
    AGENT_EVENTS,
    CALL_DISPOSITIONS,
    CALL_ENDED,
    CALL_REJECTED,
    CALL_ROUTED,
    CALL_STARTED,
    CTI_EVENTS,
    CTI_HISTORY,
)
from switchboard.v1 import events_pb2 as pb
from tests.support import ServiceProcess, new_call_id, service_env, start_service, stop_services, wait_event

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
        strategy="queue" if agent else "price",
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
        # 2. a call rejected as a duplicate; its rejection read before its start (held until the start comes)
        await bus.publish(
            CALL_REJECTED, pb.CallRejected(event_id=codec.new_id(), call_id=dup, occurred_at=codec.now_ts(), reason="duplicate")
        )
        await wait_event(kafka, CALL_REJECTED, lambda e: e.call_id == dup)
        await bus.publish(CALL_STARTED, started(dup, who))
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
        # 4. the caller again, offered to agent ben (an in-house agent sees everything): 3, 2, 1, newest first
        await bus.publish(CALL_STARTED, started(again, who))
        await bus.publish(CALL_ROUTED, routed(again, who, agent="ben"))
        [pop] = await wait_event(kafka, CTI_EVENTS, pop_of(again))
        assert pop.caller.number == who.number
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
        await bus.publish(CALL_ROUTED, routed(fifth, who, agent="ana"))
        [after] = await wait_event(kafka, CTI_EVENTS, pop_of(fifth), timeout_s=60)
        assert [c.call_id for c in after.history] == [again, agent_call, dup, sale]
        assert after.history[2].rejected_reason == "duplicate" and after.history[1].disposition == "follow_up"
        # 6. offered to a buyer (acme-solar, no share_caller_number): no number, and of the past only its own sale
        sixth = new_call_id()
        await bus.publish(CALL_STARTED, started(sixth, who))
        await bus.publish(CALL_ROUTED, routed(sixth, who, buyer="acme-solar"))
        [to_buyer] = await wait_event(kafka, CTI_EVENTS, pop_of(sixth), timeout_s=60)
        assert to_buyer.caller.number == "" and [c.call_id for c in to_buyer.history] == [sale]
        # another caller's pop carries none of it
        other, stranger = new_call_id(), caller()
        await bus.publish(CALL_ROUTED, routed(other, stranger, buyer="acme-solar"))
        [theirs] = await wait_event(kafka, CTI_EVENTS, pop_of(other))
        assert stranger.number == who.number or list(theirs.history) == []
    finally:
        cti.kill()
        if restarted is not None:
            stop_services(restarted)


TOKEN = "crm-writer-" + "z" * 24


async def test_a_crm_writes_a_disposition_back_and_the_next_pop_shows_it(broker, bus, kafka, tmp_path):
    env = service_env(
        broker.kafka_settings(),
        SWITCHBOARD_CTI_API_ENABLED="true",
        SWITCHBOARD_CTI_API_TOKENS=json.dumps({"acme-crm": TOKEN}),
    )
    cti = start_service("cti", env, tmp_path)
    try:
        who = caller()
        first = new_call_id()
        await bus.publish(CALL_STARTED, started(first, who))
        await bus.publish(CALL_ROUTED, routed(first, who, buyer="acme-solar"))
        await wait_event(kafka, CTI_EVENTS, pop_of(first))
        url = f"http://127.0.0.1:{cti.info['api_port']}/v1/calls/{first}/disposition"
        good = {"disposition": "sale", "note": "annual plan", "fields": {"crm_id": "0031x00000AbCd"}}
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(timeout=10) as http:
            assert (await http.post(url, json=good)).status_code == 401
            assert (await http.post(url, json=good, headers={"Authorization": "Bearer " + "x" * 40})).status_code == 401
            bad = await http.post(url, json={"disposition": 7}, headers=auth)
            assert bad.status_code == 400 and "disposition" in bad.json()["error"]
            assert (await http.post(url, json={"dispo": "sale"}, headers=auth)).status_code == 400  # unknown field
            unknown = await http.post(url.replace(first, new_call_id()), json=good, headers=auth)
            assert unknown.status_code == 404
            accepted = await http.post(url, json=good, headers=auth)
            assert accepted.status_code == 202, accepted.text
        event_id = accepted.json()["event_id"]
        [written] = await wait_event(kafka, CALL_DISPOSITIONS, lambda e: e.event_id == event_id)
        assert (written.call_id, written.disposition, written.source, dict(written.fields)) == (
            first,
            "sale",
            "acme-crm",
            {"crm_id": "0031x00000AbCd"},
        )
        await wait_event(kafka, CTI_HISTORY, lambda h: any(c.call_id == first and c.disposition == "sale" for c in h.calls))
        again = new_call_id()
        await bus.publish(CALL_ROUTED, routed(again, who, buyer="acme-solar"))
        [pop] = await wait_event(kafka, CTI_EVENTS, pop_of(again))
        [past] = pop.history
        assert (past.call_id, past.disposition, past.disposition_note, dict(past.crm_fields)) == (
            first,
            "sale",
            "annual plan",
            {"crm_id": "0031x00000AbCd"},
        )
    finally:
        stop_services(cti)


def test_an_enabled_api_without_tokens_is_refused(broker, tmp_path):
    env = service_env(broker.kafka_settings(), SWITCHBOARD_CTI_API_ENABLED="true")
    proc = ServiceProcess("cti", env, tmp_path / "ready", tmp_path / "cti.log")
    assert proc.wait(30) == 2
    assert "SWITCHBOARD_CTI_API_ENABLED needs client tokens" in proc.logs()
