"""What the call side keeps per call, as typed values, and the one place their table JSON is read and written.

Two Faust tables keyed by call id (changelog-backed, JSON keys and values):

  auctions  the open call: a `CallRecord`. Its phase says what the call waits for, and the
            phase's value carries what that needs:
              auction    `Auction`      pings out, answers coming in until the deadline
              posting    `Post`         ping_post: the winner's post out, waiting for post.answered
                                        or the post deadline
              reserving  `Reservation`  the reserve out to the buyer's ledger partition, waiting
                                        for the grant or the denial
              offered    `Offer`        call.routed published, the edge rings the buyer, waiting
                                        for call.ended
            Besides: the call's ivr.completed and when routing started, the engine's Progress, and
            the attempts already published (one call.routed per attempt).
  finished  call id → `Finished`: how the call ended and when.

The tables hold the JSON (what Faust recovers from the changelog); `CallRecords` and
`FinishedCalls` convert at every read and write. The JSON has the shape routers before these
types wrote, so a router restarted on an older changelog recovers its calls, and an older router
reads these records: "ctx" {"ivr" (base64), "routing_started_ms"}, "routed", "progress", "phase"
and the phase's own keys ("auction_id", "pinged", "answers", "deadline_ms" / "post" /
"reservation" / "offer"), each read only in its phase. Left out: what no router read back (the
keys of other phases, a reservation's weight pool, an offer's price). Written by older routers
and still read: an offer without "offered_ms", answers without "seq", a `finished` entry that is
a bare kind.

Why the timers read the JSON through `CallRecords.due` and `CallRecords.offer_time`, not through
CallRecord: the deadline timer looks at every open call every deadline_tick_ms (and the sweep at
every offer), and building a record (the answers, the base64 event) would cost them several
times what reading three keys does. The engine's Progress is kept in its own JSON form and
parsed only by the handlers that need it, for the same reason (parsing its trace takes ~0.1 ms).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar, NamedTuple

from switchboard.core import engine
from switchboard.platform import codec
from switchboard.v1 import events_pb2 as pb


class Phase(StrEnum):
    """What an open call waits for (the record's "phase")."""

    AUCTION = "auction"
    POSTING = "posting"
    RESERVING = "reserving"
    OFFERED = "offered"


@dataclass(frozen=True)
class Auction:
    """The ping in flight: who was pinged, their first answers in arrival order, and its deadline."""

    PHASE: ClassVar[Phase] = Phase.AUCTION
    auction_id: str
    pinged: tuple[str, ...]
    deadline_ms: int
    answers: Mapping[str, engine.BidAnswer] = field(default_factory=dict)  # buyer id → answer

    def answered(self, answer: engine.BidAnswer) -> Auction:
        """With `answer` added as the latest (its seq is the arrival order)."""
        answer = replace(answer, seq=len(self.answers))
        return replace(self, answers={**self.answers, answer.buyer_id: answer})

    def to_json(self) -> dict[str, Any]:
        return {
            "auction_id": self.auction_id,
            "pinged": list(self.pinged),
            "answers": {
                a.buyer_id: {
                    "outcome": a.outcome,
                    "amount": None if a.amount is None else str(a.amount),
                    "reason": a.reason,
                    "latency_ms": a.latency_ms,
                    "available": a.available,
                    "seq": a.seq,
                }
                for a in self.answers.values()
            },
            "deadline_ms": self.deadline_ms,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Auction:
        answers = {
            buyer_id: engine.BidAnswer(
                buyer_id,
                a["outcome"],
                None if a["amount"] is None else Decimal(a["amount"]),
                a["reason"],
                a["latency_ms"],
                a["available"],
                a.get("seq", 0),
            )
            for buyer_id, a in d["answers"].items()
        }
        return cls(d["auction_id"], tuple(d["pinged"]), d["deadline_ms"], answers)


@dataclass(frozen=True)
class Post:
    """ping_post's post in flight: to the auction's winner, for this attempt, at this price."""

    PHASE: ClassVar[Phase] = Phase.POSTING
    auction_id: str
    buyer_id: str
    attempt: int
    price: str  # as posted, two decimals
    deadline_ms: int
    timeout_ms: int  # the campaign's routing.timeout_ms the deadline came from

    def to_json(self) -> dict[str, Any]:
        return {
            "auction_id": self.auction_id,
            "buyer_id": self.buyer_id,
            "attempt": self.attempt,
            "price": self.price,
            "deadline_ms": self.deadline_ms,
            "timeout_ms": self.timeout_ms,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Post:
        return cls(d["auction_id"], d["buyer_id"], d["attempt"], d["price"], d["deadline_ms"], d["timeout_ms"])


@dataclass(frozen=True)
class Reservation:
    """The reserve in flight: what call.routed will say once the ledger grants it."""

    PHASE: ClassVar[Phase] = Phase.RESERVING
    reservation_id: str
    buyer_id: str
    destination: str
    price: str  # two decimals, as published
    tier_index: int
    attempt: int
    strategy: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.reservation_id,
            "buyer_id": self.buyer_id,
            "destination": self.destination,
            "price": self.price,
            "tier_index": self.tier_index,
            "attempt": self.attempt,
            "strategy": self.strategy,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Reservation:
        return cls(d["id"], d["buyer_id"], d["destination"], d["price"], d["tier_index"], d["attempt"], d["strategy"])


@dataclass(frozen=True)
class Offer:
    """The offer the edge is ringing (call.routed published): its call.ended ends or re-routes the call."""

    PHASE: ClassVar[Phase] = Phase.OFFERED
    buyer_id: str
    attempt: int
    billable_after_s: int  # the offer's terms when it was made (the config may change meanwhile)
    offered_ms: int | None  # None: made by a router from before the time was kept

    def to_json(self) -> dict[str, Any]:
        return {
            "buyer_id": self.buyer_id,
            "attempt": self.attempt,
            "billable_after_s": self.billable_after_s,
            "offered_ms": self.offered_ms,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Offer:
        return cls(d["buyer_id"], d["attempt"], d["billable_after_s"], d.get("offered_ms"))


Waiting = Auction | Post | Reservation | Offer


@dataclass(frozen=True)
class CallRecord:
    """One open call (`auctions`). Immutable: a handler builds the next record and stores it."""

    ivr: bytes  # the call's ivr.completed, encoded
    routing_started_ms: int
    # engine.Progress in the core's own JSON form (Progress.to_dict), parsed by progress(). None only
    # for a call just opened, before its first engine step: `Calls.apply` sets it before any store.
    progress_data: Mapping[str, Any] | None = None
    routed: tuple[int, ...] = ()  # attempts whose call.routed was published
    waiting: Waiting | None = None  # None: not stored yet (the engine's first step decides the phase)

    @classmethod
    def opened(cls, ivr: pb.IvrCompleted, routing_started_ms: int) -> CallRecord:
        return cls(codec.encode(ivr), routing_started_ms)

    @property
    def phase(self) -> Phase | None:
        return None if self.waiting is None else self.waiting.PHASE

    @property
    def auction(self) -> Auction | None:
        return self.waiting if isinstance(self.waiting, Auction) else None

    @property
    def post(self) -> Post | None:
        return self.waiting if isinstance(self.waiting, Post) else None

    @property
    def reservation(self) -> Reservation | None:
        return self.waiting if isinstance(self.waiting, Reservation) else None

    @property
    def offer(self) -> Offer | None:
        return self.waiting if isinstance(self.waiting, Offer) else None

    def ivr_completed(self) -> pb.IvrCompleted:
        return pb.IvrCompleted.FromString(self.ivr)

    def progress(self) -> engine.Progress:
        """A fresh Progress on every call: the engine changes the one it is given."""
        if self.progress_data is None:
            raise ValueError("a call has no progress before its first engine step")
        return engine.Progress.from_dict(self.progress_data)

    def stepped(self, progress: engine.Progress) -> CallRecord:
        return replace(self, progress_data=progress.to_dict())

    def waiting_for(self, waiting: Waiting) -> CallRecord:
        return replace(self, waiting=waiting)

    def routed_attempt(self, attempt: int) -> CallRecord:
        return replace(self, routed=(*self.routed, attempt))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ctx": {"ivr": base64.b64encode(self.ivr).decode(), "routing_started_ms": self.routing_started_ms},
            "routed": list(self.routed),
        }
        if self.progress_data is not None:
            out["progress"] = self.progress_data
        w = self.waiting
        if w is not None:
            out["phase"] = w.PHASE.value
        if isinstance(w, Auction):
            out.update(w.to_json())  # an auction's keys are the record's own (the older routers' shape)
        elif isinstance(w, Post):
            out.update(auction_id=w.auction_id, post=w.to_json())  # older routers read the won auction there
        elif isinstance(w, Reservation):
            out["reservation"] = w.to_json()
        elif isinstance(w, Offer):
            out["offer"] = w.to_json()
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CallRecord:
        ctx = d["ctx"]
        return cls(
            ivr=base64.b64decode(ctx["ivr"]),
            routing_started_ms=ctx["routing_started_ms"],
            progress_data=d.get("progress"),
            routed=tuple(d["routed"]),
            waiting=_waiting_from_json(d),
        )


def _waiting_from_json(d: Mapping[str, Any]) -> Waiting | None:
    phase = d.get("phase")
    if phase == Phase.AUCTION:
        return Auction.from_json(d)
    if phase == Phase.POSTING and d.get("post"):
        return Post.from_json(d["post"])
    if phase == Phase.RESERVING and d.get("reservation"):
        return Reservation.from_json(d["reservation"])
    if phase == Phase.OFFERED and d.get("offer"):
        return Offer.from_json(d["offer"])
    return None  # no phase's value: nothing in flight for the handlers (as older routers read it)


# An auction or post in flight, for the deadline timer: (call id, auction id, the post's attempt or None for
# the auction's own deadline, the deadline in ms). A plain tuple: the timer makes one per auction every tick.
Due = tuple[str, str, int | None, int]


class OfferTime(NamedTuple):
    """The offer in flight of a call: its attempt and since when it rings (for the sweep, every offer each time)."""

    attempt: int
    offered_ms: int  # an offer from before the time was kept: when the call's routing started, earlier still


class CallRecords:
    """The `auctions` table seen as CallRecords. Writes only in stream context (a changelog write needs
    the event's partition); the timers only read."""

    def __init__(self, table: MutableMapping[str, Any]) -> None:
        self.table = table

    def __contains__(self, call_id: str) -> bool:
        return call_id in self.table

    def get(self, call_id: str) -> CallRecord | None:
        value = self.table.get(call_id)
        return None if value is None else CallRecord.from_json(value)

    def put(self, call_id: str, rec: CallRecord) -> None:
        self.table[call_id] = rec.to_json()

    def discard(self, call_id: str) -> None:
        if call_id in self.table:
            del self.table[call_id]

    def call_ids(self) -> list[str]:
        return list(self.table.keys())

    def due(self) -> list[Due]:
        """Every auction and post in flight with its deadline (read from the JSON: see the module docstring)."""
        auction, posting = Phase.AUCTION.value, Phase.POSTING.value  # plain str compares, once per open call
        out: list[Due] = []
        for call_id, d in list(self.table.items()):
            phase = d.get("phase")
            if phase == auction:
                out.append((call_id, d["auction_id"], None, d["deadline_ms"]))
            elif phase == posting and d.get("post"):
                post = d["post"]
                out.append((call_id, post["auction_id"], post["attempt"], post["deadline_ms"]))
        return out

    def offer_time(self, call_id: str) -> OfferTime | None:
        """The call's offer in flight and since when (read from the JSON: see the module docstring)."""
        d = self.table.get(call_id)
        if d is None or d.get("phase") != Phase.OFFERED or not d.get("offer"):
            return None
        offer = d["offer"]
        return OfferTime(offer["attempt"], offer.get("offered_ms") or d["ctx"]["routing_started_ms"])


class FinishedKind(StrEnum):
    """How a call ended (`finished`)."""

    ROUTED = "routed"  # an offer that stands: its call.ended was a sale or an answered call
    QUEUED = "queued"  # call.queued
    REJECTED = "rejected"  # call.rejected
    REAPED = "reaped"  # the offer's call.ended never came (max_call_duration_s)
    HUNG_UP = "hung_up"  # the caller left before the call's ivr.completed got here: that event ends it
    # The caller left while the call was queued: the queue ends it, unless it overflowed meanwhile
    # (call.overflowed read after the hang-up): then this router rejects it "abandoned".
    QUEUED_HUNG_UP = "queued_hung_up"


@dataclass(frozen=True)
class Finished:
    kind: FinishedKind
    at_ms: int | None  # None: written before the time was kept (a bare kind)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "at_ms": self.at_ms}

    @classmethod
    def from_json(cls, entry: Any) -> Finished:
        if isinstance(entry, dict):
            return cls(FinishedKind(entry["kind"]), entry.get("at_ms"))
        return cls(FinishedKind(str(entry)), None)


def finished_at_ms(entry: Any) -> int | None:
    """When a stored `finished` entry was written; None for a bare kind. Read from the JSON: the sweep
    looks at every entry (a day of calls), where building a Finished each would double its cost."""
    return entry.get("at_ms") if isinstance(entry, dict) else None


class FinishedCalls:
    """The `finished` table seen as Finished entries (writes only in stream context, as for `auctions`)."""

    def __init__(self, table: MutableMapping[str, Any]) -> None:
        self.table = table

    def __contains__(self, call_id: str) -> bool:
        return call_id in self.table

    def get(self, call_id: str) -> Finished | None:
        entry = self.table.get(call_id)
        return None if entry is None else Finished.from_json(entry)

    def put(self, call_id: str, entry: Finished) -> None:
        self.table[call_id] = entry.to_json()

    def discard(self, call_id: str) -> None:
        if call_id in self.table:
            del self.table[call_id]

    def call_ids(self) -> list[str]:
        return list(self.table.keys())

    def stored(self, call_id: str) -> Any:
        """The entry's JSON as stored, or None (for finished_at_ms and `forgettable`)."""
        return self.table.get(call_id)
