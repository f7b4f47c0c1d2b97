"""core.history: a caller's calls folded from the events of each call (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from switchboard.core import history
from switchboard.core.history import HistoryPolicy
from switchboard.v1 import events_pb2 as pb

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def ts(at: datetime) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(at)
    return t


def started(cid: str, at: datetime) -> pb.CallStarted:
    return pb.CallStarted(
        event_id=f"s-{cid}", call_id=cid, occurred_at=ts(at), campaign_id="solar-ca", publisher_id="solar-media"
    )


def routed(cid: str, at: datetime, attempt: int = 1, buyer: str = "acme-solar", agent: str = "") -> pb.CallRouted:
    return pb.CallRouted(
        event_id=f"r-{cid}-{attempt}",
        call_id=cid,
        call_started_at=ts(at),
        campaign_id="solar-ca",
        publisher_id="solar-media",
        kind=pb.TARGET_KIND_AGENT if agent else pb.TARGET_KIND_BUYER,
        buyer_id="" if agent else buyer,
        agent_id=agent,
        price="0" if agent else "40.00",
        attempt=attempt,
        billable_after_s=0 if agent else 90,
        answers={"homeowner": "yes"},
    )


def ended(cid: str, outcome: int, seconds: int, attempt: int = 1) -> pb.CallEnded:
    return pb.CallEnded(event_id=f"e-{cid}-{attempt}", call_id=cid, outcome=outcome, connected_seconds=seconds, attempt=attempt)


def test_a_sale_a_rejection_and_an_agent_call_with_its_disposition():
    h = pb.CallerHistory()
    history.on_started(h, started("a", T0))
    history.on_routed(h, routed("a", T0))
    history.on_ended(h, ended("a", pb.CALL_OUTCOME_ANSWERED, 95))
    history.on_started(h, started("b", T0 + timedelta(hours=1)))
    history.on_rejected(h, pb.CallRejected(call_id="b", reason="duplicate"))
    history.on_routed(h, routed("c", T0 + timedelta(hours=2), agent="ana"))  # routed read before started
    history.on_started(h, started("c", T0 + timedelta(hours=2)))
    history.on_ended(h, ended("c", pb.CALL_OUTCOME_ANSWERED, 300))
    history.on_disposition(h, "c", "sale", "wants a quote")
    assert history.prune(h, T0 + timedelta(days=1), HistoryPolicy())
    c, b, a = h.calls  # newest first
    assert (a.call_id, a.buyer_id, a.price, a.outcome, a.connected_seconds, a.billable) == (
        "a",
        "acme-solar",
        "40.00",
        pb.CALL_OUTCOME_ANSWERED,
        95,
        True,
    )
    assert dict(a.answers) == {"homeowner": "yes"} and a.started_at == ts(T0) and a.campaign_id == "solar-ca"
    assert (b.rejected_reason, b.offers, b.outcome) == ("duplicate", 0, pb.CALL_OUTCOME_UNSPECIFIED)
    assert (c.agent_id, c.billable, c.disposition, c.disposition_note, c.started_at) == (
        "ana",
        False,
        "sale",
        "wants a quote",
        ts(T0 + timedelta(hours=2)),
    )
    assert [x.call_id for x in history.earlier(h, "b")] == ["c", "a"]


def test_a_short_sale_is_not_billable_and_a_rerouted_call_keeps_its_last_offer():
    h = pb.CallerHistory()
    history.on_routed(h, routed("a", T0, attempt=1, buyer="sunpower"))
    history.on_ended(h, ended("a", pb.CALL_OUTCOME_NO_ANSWER, 0, attempt=1))
    history.on_routed(h, routed("a", T0, attempt=2, buyer="acme-solar"))
    history.on_routed(h, routed("a", T0, attempt=1, buyer="sunpower"))  # offer 1 redelivered late: offer 2 stands
    history.on_ended(h, ended("a", pb.CALL_OUTCOME_NO_ANSWER, 0, attempt=1))  # its end too
    assert (h.calls[0].buyer_id, h.calls[0].offers, h.calls[0].outcome) == ("acme-solar", 2, pb.CALL_OUTCOME_UNSPECIFIED)
    history.on_ended(h, ended("a", pb.CALL_OUTCOME_CALLER_HANGUP, 30, attempt=2))  # under billable_after_s 90
    assert (h.calls[0].outcome, h.calls[0].connected_seconds, h.calls[0].billable) == (pb.CALL_OUTCOME_CALLER_HANGUP, 30, False)
    before = pb.CallerHistory()
    before.CopyFrom(h)
    history.on_ended(h, ended("a", pb.CALL_OUTCOME_CALLER_HANGUP, 30, attempt=2))  # redelivered: nothing changes
    assert h == before


def test_unknown_calls_change_nothing_and_prune_keeps_the_newest_within_retention():
    h = pb.CallerHistory()
    assert history.on_ended(h, ended("x", pb.CALL_OUTCOME_ANSWERED, 10)) is None
    assert history.on_rejected(h, pb.CallRejected(call_id="x", reason="no_bid")) is None
    assert history.on_disposition(h, "x", "sale") is None
    assert not h.calls
    for i in range(6):
        history.on_started(h, started(f"c{i}", T0 + timedelta(days=i)))
    policy = HistoryPolicy(retention_days=3, max_calls=2)
    assert history.prune(h, T0 + timedelta(days=5, hours=1), policy)
    assert [c.call_id for c in h.calls] == ["c5", "c4"]  # max_calls
    assert history.prune(h, T0 + timedelta(days=8), policy)
    assert [c.call_id for c in h.calls] == ["c5"]  # c4 started more than 3 days ago
    assert not history.prune(h, T0 + timedelta(days=9), policy)  # nothing left: forget the caller
    assert history.earlier(None, "c5") == []
