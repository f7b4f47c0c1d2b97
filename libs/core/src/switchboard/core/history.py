"""A caller's history: the calls of one caller number, as the events of each call tell them (no I/O).

cti keeps one `CallerHistory` per caller number (topic cti.history, docs/CTI.md "Caller history")
and puts the caller's earlier calls on every screen pop. Each function here folds one event into
a history and returns the history to keep; time is passed in.

* call.started opens the call's entry (time, campaign, publisher); call.routed fills in who it
  is offered to (buyer or agent, price, IVR answers, offers so far) and opens the entry itself
  when it is read first (the topics are not ordered against each other); call.ended sets the
  outcome, connected seconds and `billable` (core.call_end: a buyer's offer connected for its
  billable_after_s); call.rejected sets the reason; an agent's wrap-up sets the disposition.
* An event about a call the history already has updates that entry in place: a redelivered or
  re-read event changes nothing more. A later offer's event wins over an earlier one's (attempt).
* Bounded: newest first, at most `max_calls` entries, none started more than `retention_days`
  ago (`prune`, also applied on every update). An empty history is forgotten (a tombstone).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from switchboard.core.call_end import meaning_of
from switchboard.v1 import events_pb2 as pb

PastCalls = Iterable[pb.PastCall]


@dataclass(frozen=True)
class HistoryPolicy:
    retention_days: float = 90.0
    max_calls: int = 20


def _entry(history: pb.CallerHistory, call_id: str) -> pb.PastCall | None:
    return next((c for c in history.calls if c.call_id == call_id), None)


def _open(history: pb.CallerHistory, call_id: str, started_at: Timestamp, campaign_id: str, publisher_id: str) -> pb.PastCall:
    entry = _entry(history, call_id)
    if entry is None:
        entry = history.calls.add(call_id=call_id)
    if not entry.HasField("started_at") and started_at.seconds:
        entry.started_at.CopyFrom(started_at)
    entry.campaign_id = entry.campaign_id or campaign_id
    entry.publisher_id = entry.publisher_id or publisher_id
    return entry


def on_started(history: pb.CallerHistory, ev: pb.CallStarted) -> pb.PastCall:
    return _open(history, ev.call_id, ev.occurred_at, ev.campaign_id, ev.publisher_id)


def on_routed(history: pb.CallerHistory, ev: pb.CallRouted) -> pb.PastCall:
    entry = _open(history, ev.call_id, ev.call_started_at, ev.campaign_id, ev.publisher_id)
    attempt = ev.attempt or 1
    if attempt < entry.offers:
        return entry  # an earlier offer read late: the later one stands
    entry.offers = attempt
    entry.kind = ev.kind
    entry.buyer_id = ev.buyer_id
    entry.agent_id = ev.agent_id
    entry.price = ev.price
    entry.billable_after_s = ev.billable_after_s
    entry.answers.clear()
    entry.answers.update(ev.answers)
    entry.outcome = pb.CALL_OUTCOME_UNSPECIFIED  # this offer has not ended yet
    entry.connected_seconds = 0
    entry.billable = False
    return entry


def on_ended(history: pb.CallerHistory, ev: pb.CallEnded) -> pb.PastCall | None:
    entry = _entry(history, ev.call_id)
    if entry is None:
        return None
    if ev.attempt and ev.attempt < entry.offers:
        return entry  # the end of an earlier offer, read after the next offer's call.routed
    to_agent = bool(ev.agent_id or entry.agent_id)
    # Without an offer seen (offers 0) no buyer's billable_after_s is known: not billable.
    billable_after_s = entry.billable_after_s if entry.offers and not to_agent else None
    end = meaning_of(ev.outcome, ev.connected_seconds, billable_after_s, to_agent=to_agent)
    entry.outcome = ev.outcome
    entry.connected_seconds = end.connected_seconds
    entry.billable = end.billable and bool(entry.buyer_id or ev.buyer_id)
    return entry


def on_rejected(history: pb.CallerHistory, ev: pb.CallRejected) -> pb.PastCall | None:
    entry = _entry(history, ev.call_id)
    if entry is None:
        return None
    entry.rejected_reason = ev.reason
    return entry


def on_disposition(history: pb.CallerHistory, call_id: str, disposition: str, note: str = "") -> pb.PastCall | None:
    entry = _entry(history, call_id)
    if entry is None:
        return None
    entry.disposition = disposition
    entry.disposition_note = note
    return entry


def prune(history: pb.CallerHistory, now: datetime, policy: HistoryPolicy) -> bool:
    """Newest first, within the policy. True when something is left to keep."""
    cutoff = now - timedelta(days=policy.retention_days)
    keep = [c for c in history.calls if not c.HasField("started_at") or c.started_at.ToDatetime(tzinfo=now.tzinfo) >= cutoff]
    keep.sort(key=lambda c: (c.started_at.seconds, c.started_at.nanos), reverse=True)
    kept = [_copy(c) for c in keep[: policy.max_calls]]
    del history.calls[:]
    history.calls.extend(kept)
    return bool(kept)


def _copy(call: pb.PastCall) -> pb.PastCall:
    out = pb.PastCall()
    out.CopyFrom(call)
    return out


def earlier(history: pb.CallerHistory | None, call_id: str) -> list[pb.PastCall]:
    """The caller's calls other than `call_id`, newest first: what a screen pop for `call_id` shows."""
    if history is None:
        return []
    return [c for c in history.calls if c.call_id != call_id]
