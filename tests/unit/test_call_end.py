"""core.call_end: what a call.ended means for its offer, over every CallOutcome, for a buyer and an agent."""

from __future__ import annotations

import pytest

from switchboard.core.call_end import CALLER_HANGUP, NOT_TAKEN, OFFER_FAILURES, CallEnd, is_billable, meaning_of
from switchboard.v1 import events_pb2 as pb

BILLABLE_AFTER = 90
# outcome → (failure, abandoned) of a buyer's offer, short (10 s) and long (120 s); None: over.
BUYER = {
    pb.CALL_OUTCOME_UNSPECIFIED: (("failed", False), ("failed", False)),
    pb.CALL_OUTCOME_ANSWERED: ((None, False), (None, False)),
    pb.CALL_OUTCOME_NO_ANSWER: (("no_answer", False), ("no_answer", False)),
    pb.CALL_OUTCOME_BUSY: (("busy", False), ("busy", False)),
    pb.CALL_OUTCOME_FAILED: (("failed", False), ("failed", False)),
    pb.CALL_OUTCOME_CALLER_HANGUP: ((None, False), (None, False)),
    pb.CALL_OUTCOME_BUYER_HANGUP: (("buyer_hangup", False), (None, False)),
    pb.CALL_OUTCOME_DECLINED: (("reject", False), ("reject", False)),
    pb.CALL_OUTCOME_CALLBACK_NO_ANSWER: (("failed", False), ("failed", False)),
}
AGENT = {
    pb.CALL_OUTCOME_UNSPECIFIED: None,
    pb.CALL_OUTCOME_ANSWERED: None,
    pb.CALL_OUTCOME_NO_ANSWER: "no_answer",
    pb.CALL_OUTCOME_BUSY: "busy",
    pb.CALL_OUTCOME_FAILED: "failed",
    pb.CALL_OUTCOME_CALLER_HANGUP: None,
    pb.CALL_OUTCOME_BUYER_HANGUP: None,  # the agent hung up: over
    pb.CALL_OUTCOME_DECLINED: "declined",
    pb.CALL_OUTCOME_CALLBACK_NO_ANSWER: "callback_no_answer",
}
TALKED = {pb.CALL_OUTCOME_ANSWERED, pb.CALL_OUTCOME_BUYER_HANGUP, pb.CALL_OUTCOME_CALLER_HANGUP}


def test_the_tables_cover_every_call_outcome() -> None:
    assert set(BUYER) == set(AGENT) == set(pb.CallOutcome.values())


@pytest.mark.parametrize("outcome", sorted(BUYER))
def test_a_buyer_offer_by_outcome(outcome: int) -> None:
    short, long = BUYER[outcome]
    for seconds, (failure, abandoned) in ((10, short), (120, long)):
        end = meaning_of(outcome, seconds, BILLABLE_AFTER)
        assert (end.failure, end.abandoned) == (failure, abandoned), (pb.CallOutcome.Name(outcome), seconds)
        assert end.reroutable == (failure is not None)
        assert end.answered == (outcome in TALKED)
        assert end.billable == (outcome in TALKED and seconds >= BILLABLE_AFTER)
        assert end.offer_outcome == failure
        assert failure is None or failure in OFFER_FAILURES


@pytest.mark.parametrize("outcome", sorted(AGENT))
def test_an_agent_offer_by_outcome(outcome: int) -> None:
    for seconds in (0, 10, 120):
        end = meaning_of(outcome, seconds, None, to_agent=True)
        assert end.failure == AGENT[outcome], (pb.CallOutcome.Name(outcome), seconds)
        assert not end.billable  # nothing is sold to an agent
        assert end.abandoned == (outcome == pb.CALL_OUTCOME_CALLER_HANGUP and seconds == 0)


@pytest.mark.parametrize("outcome", sorted(BUYER))
def test_no_connected_seconds(outcome: int) -> None:
    """Nobody talked: never answered nor billable; a caller hang-up then means the offer never connected."""
    end = meaning_of(outcome, 0, BILLABLE_AFTER)
    assert not end.answered and not end.billable
    assert end.abandoned == (outcome == pb.CALL_OUTCOME_CALLER_HANGUP)
    if outcome == pb.CALL_OUTCOME_CALLER_HANGUP:
        assert end.failure is None and not end.reroutable and end.offer_outcome == CALLER_HANGUP
    else:
        assert end.failure == BUYER[outcome][0][0]


def test_not_taken_is_what_fails_any_offer() -> None:
    for outcome in pb.CallOutcome.values():
        for end in (meaning_of(outcome, 5, 0), meaning_of(outcome, 5, None, to_agent=True)):
            if outcome in NOT_TAKEN:
                assert end.reroutable
    assert {o for o in pb.CallOutcome.values() if meaning_of(o, 5, None, to_agent=True).reroutable} == NOT_TAKEN


def test_a_buyer_hang_up_at_the_threshold_stands_and_is_billable() -> None:
    assert meaning_of(pb.CALL_OUTCOME_BUYER_HANGUP, 89, 90).failure == "buyer_hangup"
    at = meaning_of(pb.CALL_OUTCOME_BUYER_HANGUP, 90, 90)
    assert at.failure is None and at.billable and at.answered


def test_an_unknown_threshold_takes_a_buyer_hang_up_as_early() -> None:
    """A reader that does not know the buyer (the ivr desk) keeps the call open; the router decides."""
    end = meaning_of(pb.CALL_OUTCOME_BUYER_HANGUP, 10_000, None)
    assert end.reroutable and end.failure == "buyer_hangup" and not end.billable
    assert not meaning_of(pb.CALL_OUTCOME_ANSWERED, 10_000, None).billable


def test_an_answered_call_is_over_whether_billable_or_not() -> None:
    for seconds in (1, 30, 95):
        end = meaning_of(pb.CALL_OUTCOME_ANSWERED, seconds, 90)
        assert end.failure is None and not end.abandoned and end.offer_outcome is None
        assert end.billable == (seconds >= 90)


def test_negative_seconds_count_as_none() -> None:
    end = meaning_of(pb.CALL_OUTCOME_CALLER_HANGUP, -3, 0)
    assert end == CallEnd(pb.CALL_OUTCOME_CALLER_HANGUP, 0, answered=False, billable=False, failure=None, abandoned=True)


def test_billable_is_the_ledgers_rule() -> None:
    assert is_billable(90, 90) and not is_billable(89, 90) and not is_billable(0, 0) and is_billable(0, 0, answered=True)
    assert not is_billable(120, 90, answered=False)
    for outcome in pb.CallOutcome.values():
        for seconds in (0, 1, 89, 90, 300):
            end = meaning_of(outcome, seconds, 90)
            assert end.billable == is_billable(seconds, 90, end.answered)


def test_offer_outcome_maps_call_ended() -> None:
    # What the router re-routes on (moved here from test_strategies and test_router_ledger with engine.offer_outcome).
    assert meaning_of(pb.CALL_OUTCOME_ANSWERED, 95, 90).offer_outcome is None
    assert meaning_of(pb.CALL_OUTCOME_ANSWERED, 30, 90).offer_outcome is None  # the caller talked and left: over, not billable
    assert meaning_of(pb.CALL_OUTCOME_BUYER_HANGUP, 30, 90).offer_outcome == "buyer_hangup"
    assert meaning_of(pb.CALL_OUTCOME_BUYER_HANGUP, 95, 90).offer_outcome is None
    assert meaning_of(pb.CALL_OUTCOME_DECLINED, 0, 90).offer_outcome == "reject"
    assert meaning_of(pb.CALL_OUTCOME_NO_ANSWER, 0, 90).offer_outcome == "no_answer"
    assert meaning_of(pb.CALL_OUTCOME_BUSY, 0, 90).offer_outcome == "busy"
    assert meaning_of(pb.CALL_OUTCOME_CALLER_HANGUP, 0, 90).offer_outcome == "caller_hangup"
    assert meaning_of(pb.CALL_OUTCOME_BUYER_HANGUP, 5, 60).offer_outcome == "buyer_hangup"
    assert meaning_of(pb.CALL_OUTCOME_BUYER_HANGUP, 60, 60).offer_outcome is None
    assert meaning_of(pb.CALL_OUTCOME_DECLINED, 0, 60).offer_outcome == "reject"
