"""What a `call.ended` means for the offer it reports on (pure: no I/O).

The edge reports how a bridged offer ended (`CallEnded.outcome`, `connected_seconds`); the
router (a buyer's offer), the queue (an agent's), the ivr desk (whether to keep the call open
for the next offer) and the simulator all read it by the one rule here, `meaning_of`:

    outcome        | offer to a buyer                          | offer to an agent
    ---------------+-------------------------------------------+--------------------------
    ANSWERED       | over: the offer stood                     | over
    CALLER_HANGUP  | over; with no connected seconds the offer | the same
                   | never connected: `abandoned` (the outcome |
                   | is call.rejected abandoned)               |
    NO_ANSWER,     | failed: re-routed (the engine's           | failed: re-offered (the
    BUSY, FAILED,  | offer_failed: no_answer, busy, failed,    | ACD's offer_failed:
    DECLINED       | reject)                                   | no_answer, busy, failed,
                   |                                           | declined)
    BUYER_HANGUP   | failed (buyer_hangup) below the offer's   | over (the agent hung up)
                   | billable_after_s, else over               |
    CALLBACK_NO_   | failed (failed): never sent for a buyer   | failed (callback_no_answer):
    ANSWER         |                                           | the queue retries the callback
    anything else  | failed (failed)                           | over

`answered`: someone picked up and the caller talked (connected seconds with ANSWERED,
BUYER_HANGUP or CALLER_HANGUP). `billable`: answered and connected for billable_after_s
(`is_billable`, the ledger's rule for counting a sale). A failed offer is `reroutable`; the
router's name for the whole outcome is `offer_outcome` (a failure, CALLER_HANGUP, or None).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from switchboard.v1 import events_pb2 as pb

# The outcomes engine.offer_failed takes: the offer did not stand and the call goes on...
OFFER_FAILURES: Final = ("reject", "no_answer", "busy", "failed", "buyer_hangup", "post_rejected")
# ...or the caller hung up before it connected: the call is over, rejected "abandoned".
CALLER_HANGUP: Final = "caller_hangup"

# The callee did not take the call, whoever it was and however long it rang (or, for a callback, the
# caller called back did not answer): re-routable for any offer.
NOT_TAKEN: Final = frozenset(
    {
        pb.CALL_OUTCOME_NO_ANSWER,
        pb.CALL_OUTCOME_BUSY,
        pb.CALL_OUTCOME_FAILED,
        pb.CALL_OUTCOME_DECLINED,
        pb.CALL_OUTCOME_CALLBACK_NO_ANSWER,
    }
)
_BUYER_FAILURES: Final[dict[int, str]] = {
    pb.CALL_OUTCOME_DECLINED: "reject",
    pb.CALL_OUTCOME_NO_ANSWER: "no_answer",
    pb.CALL_OUTCOME_BUSY: "busy",
    pb.CALL_OUTCOME_FAILED: "failed",
}
# The ACD's names (core.acd offer_failed `why`): they show in its decision trace ("declined on offer 2").
_AGENT_FAILURES: Final[dict[int, str]] = {
    pb.CALL_OUTCOME_NO_ANSWER: "no_answer",
    pb.CALL_OUTCOME_DECLINED: "declined",
    pb.CALL_OUTCOME_BUSY: "busy",
    pb.CALL_OUTCOME_FAILED: "failed",
    # The queue reads it before meaning_of (a callback try is retried later, not re-offered at once).
    pb.CALL_OUTCOME_CALLBACK_NO_ANSWER: "callback_no_answer",
}
# Outcomes after which connected seconds mean the caller talked to someone.
_TALKED: Final = frozenset({pb.CALL_OUTCOME_ANSWERED, pb.CALL_OUTCOME_BUYER_HANGUP, pb.CALL_OUTCOME_CALLER_HANGUP})


def is_billable(connected_seconds: int, billable_after_s: int, answered: bool | None = None) -> bool:
    """A sale counts once the buyer answered and stayed connected for billable_after_s.

    `answered` None: any connected second counts as answered (callers that know only the seconds).
    """
    if answered is None:
        answered = connected_seconds > 0
    return answered and connected_seconds >= billable_after_s


@dataclass(frozen=True)
class CallEnd:
    """The meaning of one call.ended for its offer (module doc)."""

    outcome: int  # the CallOutcome reported
    connected_seconds: int  # as reported, never below 0
    answered: bool
    billable: bool  # False without a billable_after_s (an agent, or a buyer the reader does not know)
    failure: str | None  # why the offer failed while the call goes on; None: the call is over with this call.ended
    abandoned: bool  # the caller hung up before the offer connected

    @property
    def reroutable(self) -> bool:
        """The offer failed and the call goes on to the next offer (or to a rejection by its router)."""
        return self.failure is not None

    @property
    def offer_outcome(self) -> str | None:
        """What engine.offer_failed takes: the failure, CALLER_HANGUP when abandoned; None when the offer stood."""
        if self.failure is not None:
            return self.failure
        return CALLER_HANGUP if self.abandoned else None


def meaning_of(outcome: int, connected_seconds: int, billable_after_s: int | None, *, to_agent: bool = False) -> CallEnd:
    """What the call.ended `outcome` after `connected_seconds` means for an offer to a buyer whose sale counts
    after `billable_after_s` (None: not known here: a buyer hang-up is taken as early, so re-routable, and
    nothing is billable), or, `to_agent`, for an offer to an agent (billable_after_s is not used)."""
    seconds = max(connected_seconds, 0)
    answered = seconds > 0 and outcome in _TALKED
    failure: str | None
    if to_agent:
        failure = _AGENT_FAILURES.get(outcome)
    elif outcome == pb.CALL_OUTCOME_BUYER_HANGUP:
        failure = None if billable_after_s is not None and seconds >= billable_after_s else "buyer_hangup"
    elif outcome in (pb.CALL_OUTCOME_ANSWERED, pb.CALL_OUTCOME_CALLER_HANGUP):
        failure = None
    else:
        failure = _BUYER_FAILURES.get(outcome, "failed")
    return CallEnd(
        outcome=outcome,
        connected_seconds=seconds,
        answered=answered,
        billable=not to_agent and billable_after_s is not None and is_billable(seconds, billable_after_s, answered),
        failure=failure,
        abandoned=outcome == pb.CALL_OUTCOME_CALLER_HANGUP and not answered,
    )
