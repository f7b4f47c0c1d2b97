"""The bidder's domain metrics (docs/OPERATIONS.md); the generic ones are platform.metrics'."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from switchboard.core import reasons
from switchboard.v1 import events_pb2 as pb

PINGS = Counter("switchboard_pings", "Buyers' answers to pings, by buyer and outcome (bid|decline|no_bid)", ["buyer", "outcome"])
RTB_LATENCY = Histogram(
    "switchboard_rtb_latency_seconds",
    "Time an RTB buyer took to answer a ping (its timeouts and failures included)",
    ["buyer"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0),
)
BUYER_FAULTS = Counter(
    "switchboard_buyer_faults",
    "Pings and posts a buyer failed (timeout, malformed, http_5xx, grpc_unavailable, ...), by buyer and reason",
    ["buyer", "reason"],
)

OUTCOMES = {pb.BID_OUTCOME_BID: "bid", pb.BID_OUTCOME_DECLINE: "decline", pb.BID_OUTCOME_NO_BID: "no_bid"}


def is_fault(reason: str) -> bool:
    """A buyer answer reason that is the buyer's failure (core.reasons.BUYER_FAULTS, an HTTP or gRPC status), not its choice."""
    return reason in reasons.BUYER_FAULTS or reason.startswith(("http_", "grpc_"))


def count_answer(buyer_id: str, outcome: pb.BidOutcome, reason: str) -> None:
    PINGS.labels(buyer_id, OUTCOMES.get(outcome, "no_bid")).inc()
    if is_fault(reason):
        BUYER_FAULTS.labels(buyer_id, reason).inc()
