"""The cti service as a real process: call.routed / call.ended in, cti.events out."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from switchboard.platform import codec
from switchboard.platform.topics import CALL_ENDED, CALL_ROUTED, CTI_EVENTS
from switchboard.v1 import events_pb2 as pb
from tests.support import ServiceProcess, new_call_id, read_all, running_service, service_env, wait_event

pytestmark = pytest.mark.integration


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cti_service(broker, tmp_path_factory) -> Iterator[ServiceProcess]:
    with running_service("cti", service_env(broker.kafka_settings()), tmp_path_factory.mktemp("cti")) as service:
        yield service


def routed(call_id: str) -> pb.CallRouted:
    return pb.CallRouted(
        event_id=codec.new_id(),
        call_id=call_id,
        occurred_at=codec.now_ts(),
        call_started_at=codec.now_ts(),
        campaign_id="solar-ca",
        publisher_id="solar-media",
        kind=pb.TARGET_KIND_BUYER,
        buyer_id="acme-solar",
        destination="+18005550100",
        price="40.00",
        strategy="price",
        caller=pb.Caller(number="+13105551234", state="CA", zip="90210", area_code="310", timezone="America/Los_Angeles"),
        answers={"homeowner": "yes"},
    )


def cti_of(call_id: str, kind: int) -> Callable[[object], bool]:
    return lambda e: e.call_id == call_id and e.type == kind


# -- tests ---------------------------------------------------------------------------------------
async def test_screen_pop_and_wrap_up_carry_the_call_context(cti_service, bus, kafka):
    cid = new_call_id()
    await bus.publish(CALL_ROUTED, routed(cid))
    [pop] = await wait_event(kafka, CTI_EVENTS, cti_of(cid, pb.CTI_EVENT_TYPE_CALL_ROUTED))
    assert (pop.campaign_id, pop.publisher_id, pop.kind, pop.buyer_id, pop.destination, pop.price) == (
        "solar-ca",
        "solar-media",
        pb.TARGET_KIND_BUYER,
        "acme-solar",
        "+18005550100",
        "40.00",
    )
    # acme-solar does not share_caller_number (demo config): its pop has the caller's facts, not the number
    assert (pop.caller.number, pop.caller.state, pop.caller.zip) == ("", "CA", "90210")
    assert dict(pop.answers) == {"homeowner": "yes"}

    await bus.publish(
        CALL_ENDED,
        pb.CallEnded(
            event_id=codec.new_id(),
            call_id=cid,
            occurred_at=codec.now_ts(),
            outcome=pb.CALL_OUTCOME_ANSWERED,
            connected_seconds=95,
            buyer_id="acme-solar",
        ),
    )
    [end] = await wait_event(kafka, CTI_EVENTS, cti_of(cid, pb.CTI_EVENT_TYPE_CALL_ENDED))
    assert (end.outcome, end.connected_seconds, end.buyer_id) == (pb.CALL_OUTCOME_ANSWERED, 95, "acme-solar")
    assert (end.campaign_id, end.caller.state, end.destination) == ("solar-ca", "CA", "+18005550100")
    assert end.event_id != pop.event_id


async def test_call_ended_without_routed_context(cti_service, bus, kafka):
    cid = new_call_id()
    await bus.publish(
        CALL_ENDED,
        pb.CallEnded(
            event_id=codec.new_id(),
            call_id=cid,
            occurred_at=codec.now_ts(),
            outcome=pb.CALL_OUTCOME_CALLER_HANGUP,
            agent_id="ana",
        ),
    )
    [end] = await wait_event(kafka, CTI_EVENTS, cti_of(cid, pb.CTI_EVENT_TYPE_CALL_ENDED))
    assert (end.outcome, end.agent_id, end.kind, end.campaign_id) == (
        pb.CALL_OUTCOME_CALLER_HANGUP,
        "ana",
        pb.TARGET_KIND_AGENT,
        "",
    )


async def test_redelivered_routed_event_gives_one_screen_pop(cti_service, bus, kafka):
    cid, marker = new_call_id(), new_call_id()
    ev = routed(cid)
    await bus.publish(CALL_ROUTED, ev)
    await bus.publish(CALL_ROUTED, ev)
    await bus.publish(CALL_ROUTED, routed(marker), key=cid)  # same partition: handled after the repeat
    await wait_event(kafka, CTI_EVENTS, cti_of(marker, pb.CTI_EVENT_TYPE_CALL_ROUTED))
    assert len(await read_all(kafka, CTI_EVENTS, lambda e: e.call_id == cid)) == 1


async def test_a_rerouted_call_pops_per_offer_and_each_wrap_up_has_its_own_offer(cti_service, bus, kafka):
    cid = new_call_id()
    first, second = routed(cid), routed(cid)
    first.attempt = 1
    second.attempt, second.buyer_id, second.destination, second.price = 2, "sunpower", "+18005550101", "35.00"
    # Offer 2 is read before the no-answer of offer 1 (the topics are not ordered against each other).
    await bus.publish(CALL_ROUTED, first)
    await bus.publish(CALL_ROUTED, second)
    pops = await wait_event(kafka, CTI_EVENTS, cti_of(cid, pb.CTI_EVENT_TYPE_CALL_ROUTED), count=2)
    assert [(p.buyer_id, p.price) for p in pops] == [("acme-solar", "40.00"), ("sunpower", "35.00")]
    assert pops[0].event_id != pops[1].event_id
    assert [p.attempt for p in pops] == [1, 2]

    for attempt, outcome, buyer in [(1, pb.CALL_OUTCOME_NO_ANSWER, "acme-solar"), (2, pb.CALL_OUTCOME_ANSWERED, "sunpower")]:
        await bus.publish(
            CALL_ENDED,
            pb.CallEnded(
                event_id=codec.new_id(),
                call_id=cid,
                occurred_at=codec.now_ts(),
                outcome=outcome,
                connected_seconds=0 if attempt == 1 else 95,
                buyer_id=buyer,
                attempt=attempt,
            ),
        )
    ends = await wait_event(kafka, CTI_EVENTS, cti_of(cid, pb.CTI_EVENT_TYPE_CALL_ENDED), count=2)
    assert [(e.outcome, e.buyer_id, e.destination, e.price) for e in ends] == [
        (pb.CALL_OUTCOME_NO_ANSWER, "acme-solar", "+18005550100", "40.00"),
        (pb.CALL_OUTCOME_ANSWERED, "sunpower", "+18005550101", "35.00"),
    ]
    assert [e.attempt for e in ends] == [1, 2]
    assert len({e.event_id for e in [*pops, *ends]}) == 4
