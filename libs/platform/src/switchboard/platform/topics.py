"""The topic table: every topic Switchboard uses, its message type and meaning.

Declared once here and imported everywhere (services, sink, broker bootstrap,
docs). Keys are always the call id (UTF-8) so that every event of one call
lands on the same partition number of every topic — except the compacted
state topics (`compacted=True`), keyed by what their state is about.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Generic, TypeAlias, TypeVar

from google.protobuf.message import Message

from switchboard.v1 import events_pb2 as pb

# The events about one call, keyed by its call id: the messages of every topic but the dead
# letter and the queue state (tests/unit/test_platform.py checks this against the topics).
CallEvent: TypeAlias = (
    pb.CallStarted
    | pb.IvrCompleted
    | pb.PingRequested
    | pb.BidReceived
    | pb.PostRequested
    | pb.PostAnswered
    | pb.CallRouted
    | pb.CallRejected
    | pb.CallQueued
    | pb.CallOverflowed
    | pb.CallEnded
    | pb.CtiEvent
    | pb.CallerSeen
    | pb.LiveCall
    | pb.QueueStatus
    | pb.CallbackRequested
)
# The message of any topic of the table: each carries an event_id.
Event: TypeAlias = (
    CallEvent | pb.DeadLetter | pb.QueueState | pb.DeadLetterReplay | pb.AgentEvent | pb.QueueSummary | pb.CallerHistory
)
# The decisions that end routing (TERMINAL_TOPICS).
TerminalEvent: TypeAlias = pb.CallRouted | pb.CallRejected

# Covariant: a Topic[pb.CallRouted] is a Topic[TerminalEvent] and a Topic[Event] (a topic is only read from).
M_co = TypeVar("M_co", bound=Message, covariant=True)


# How long the broker keeps the records of a history topic (not compacted) unless its Topic says
# otherwise. A week: a consumer that was down over a weekend (analytics, cti) still finds what it
# missed, and it outlasts the longest call by far (queue.state snapshots point at call.queued
# records of live calls, docs/TOPICS.md).
DEFAULT_RETENTION = timedelta(days=7)


@dataclass(frozen=True)
class Topic(Generic[M_co]):
    """One topic and how the broker keeps it.

    The one declaration of each topic's settings: `ensure_topics` creates topics with `configs`,
    `switchboard topics create` too, and the Strimzi KafkaTopic manifests are generated from it
    (`switchboard topics manifest`; tests/unit/test_k8s_topics.py fails when they drift).
    """

    name: str
    message: type[M_co]
    description: str
    compacted: bool = False  # state, not history: the broker keeps the latest record per key
    retention: timedelta | None = None  # history topics only; None: DEFAULT_RETENTION

    def __post_init__(self) -> None:
        if self.compacted and self.retention is not None:
            raise ValueError(f"topic {self.name}: a compacted topic keeps the latest record per key; it takes no retention")
        if self.retention is not None and self.retention <= timedelta(0):
            raise ValueError(f"topic {self.name}: retention must be positive, not {self.retention}")

    @property
    def configs(self) -> dict[str, str]:
        """The topic-level broker configs (Kafka names, string values as on the wire)."""
        if self.compacted:
            return {"cleanup.policy": "compact"}
        retention = self.retention or DEFAULT_RETENTION
        return {"cleanup.policy": "delete", "retention.ms": str(int(retention.total_seconds() * 1000))}


CALL_STARTED = Topic("call.started", pb.CallStarted, "a call reached a tracking number (ivr)")
IVR_COMPLETED = Topic("ivr.completed", pb.IvrCompleted, "qualification finished, answers attached; the router routes it (ivr)")
PING_REQUESTED = Topic("ping.requested", pb.PingRequested, "the router asks for bids from the buyers of one tier (router)")
BID_RECEIVED = Topic("bid.received", pb.BidReceived, "one bid, decline or no-bid per pinged buyer (bidder)")
POST_REQUESTED = Topic(
    "post.requested", pb.PostRequested, "ping_post: the call's full data posted to the auction winner (router)"
)
POST_ANSWERED = Topic("post.answered", pb.PostAnswered, "the winner accepted or rejected the post (bidder)")
CALL_ROUTED = Topic(
    "call.routed", pb.CallRouted, "terminal: sold to a buyer or given to an agent, with the decision trace (router, queue)"
)
CALL_REJECTED = Topic(
    "call.rejected", pb.CallRejected, "terminal: nobody takes the call, with reason and trace (ivr, router, queue)"
)
CALL_QUEUED = Topic("call.queued", pb.CallQueued, "the router hands a call to an in-house ACD queue (router)")
CALL_OVERFLOWED = Topic(
    "call.overflowed", pb.CallOverflowed, "the queue gives a call back to routing: the tiers after the queue go on (queue)"
)
CALL_ENDED = Topic("call.ended", pb.CallEnded, "how a bridged call ended: answered, no answer, busy, seconds (edge via ivr)")
QUEUE_STATUS = Topic(
    "queue.status",
    pb.QueueStatus,
    "where a waiting call stands: position, projected wait, callback offered / accepted; the edge announces it (queue)",
)
CALLBACK_REQUESTED = Topic(
    "callback.requested", pb.CallbackRequested, "the caller accepted a callback: the queue keeps the place (ivr)"
)
# Keyed by agent id, not call id: an agent's states in order on one partition.
AGENT_EVENTS = Topic(
    "agent.events", pb.AgentEvent, "keyed <agent id>: an agent logged in / out, ready, on a call, wrap-up (queue)"
)
QUEUE_SUMMARY = Topic(
    "queue.summary",
    pb.QueueSummary,
    "compacted, keyed <queue id>: a queue's live figures (waiting, agents, projected wait); the router reads it (queue)",
    compacted=True,
)
CTI_EVENTS = Topic("cti.events", pb.CtiEvent, "call context for CRMs: screen pop on routing, wrap-up on end (cti)")
CTI_HISTORY = Topic(
    "cti.history",
    pb.CallerHistory,
    "compacted, keyed <caller number>: the caller's calls for screen pops (cti's caller history, docs/CTI.md)",
    compacted=True,
)
CALLERS_SEEN = Topic(
    "ivr.callers",
    pb.CallerSeen,
    "compacted, keyed <campaign>|<caller>: a caller's last accepted call per campaign, for duplicate_window (ivr)",
    compacted=True,
)
LIVE_CALLS = Topic(
    "ivr.calls",
    pb.LiveCall,
    "compacted, keyed <call id>: the ivr edge's live calls, read back by every ivr instance at start (ivr)",
    compacted=True,
)
QUEUE_STATE = Topic(
    "queue.state",
    pb.QueueState,
    "compacted, keyed <queue group id>: the queue service's ACD state snapshots, read back when it starts (queue)",
    compacted=True,
)
DEAD_LETTER = Topic(
    "deadletter",
    pb.DeadLetter,
    "messages a consumer could not decode or handle, with the reason (any service)",
    # Operators look at dead letters and replay them after a fix: give them a month, not a week.
    retention=timedelta(days=30),
)
DEAD_LETTER_REPLAYS = Topic(
    "deadletter.replays",
    pb.DeadLetterReplay,
    "compacted, keyed <dead letter event id>: the dead letters re-published by `switchboard deadletter replay` (cli)",
    compacted=True,
)

ALL_TOPICS: tuple[Topic[Event], ...] = (
    CALL_STARTED,
    IVR_COMPLETED,
    PING_REQUESTED,
    BID_RECEIVED,
    POST_REQUESTED,
    POST_ANSWERED,
    CALL_ROUTED,
    CALL_REJECTED,
    CALL_QUEUED,
    CALL_OVERFLOWED,
    CALL_ENDED,
    QUEUE_STATUS,
    CALLBACK_REQUESTED,
    AGENT_EVENTS,
    CTI_EVENTS,
    CALLERS_SEEN,
    DEAD_LETTER,
)

# The private state of one service, not events: not in ALL_TOPICS, which the analytics sink reads
# entirely; the owning service creates its topic when it starts (platform.kafka.ensure_topics).
# queue.summary is state (the latest figures per queue) that the router follows, not history.
# cti.history holds caller numbers per key and is cti's to read (the analytics sink has every call already).
PRIVATE_TOPICS: tuple[Topic[Event], ...] = (LIVE_CALLS, QUEUE_STATE, DEAD_LETTER_REPLAYS, QUEUE_SUMMARY, CTI_HISTORY)

BY_NAME: dict[str, Topic[Event]] = {t.name: t for t in ALL_TOPICS}
TERMINAL_TOPICS: tuple[Topic[TerminalEvent], ...] = (CALL_ROUTED, CALL_REJECTED)
