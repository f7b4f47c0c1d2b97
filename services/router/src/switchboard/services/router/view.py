"""Each router worker's read-only view of the buyer ledger: what eligibility and ranking read.

The ledger agent (bookkeeper.py) is the single writer of buyer state; after every change it
publishes the new BuyerLoad / TierState with a version to the view topic. Every worker reads the
whole view topic (plain consumer, no group, from the beginning: `ViewReader`) and keeps the newest
version per key in a `LoadView`. Ledger replies carry the same records, so the worker that made a
reservation sees its effect at once; other workers one hop later.

On top of the published state, a worker overlays its own changes the ledger has not confirmed
yet, through the core's pure (idempotent) transitions:
  reserving   reservations sent, not answered: the buyer already counts the call (call_routed),
              so a second call of this worker does not rank on a slot that may be gone.
  releasing   call ends forwarded to the ledger: the slot reads as free at once (call_ended);
              dropped as soon as the published load no longer holds the call.
  swrr        weight picks sent, not yet in the published TierState (its `recent` call ids say
              which picks it holds): weight's ±1 stays exact with one worker even with several
              reservations in flight.
The view is eventually consistent across workers; the reservation is the exact check.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import structlog
from aiokafka import ConsumerRecord

from switchboard.core.ledger import (
    BuyerLoad,
    TierState,
    call_ended,
    call_routed,
    swrr_routed,
)
from switchboard.platform.follow import Follower
from switchboard.platform.kafka import make_consumer
from switchboard.platform.settings import KafkaSettings
from switchboard.services.router import protocol

log = structlog.get_logger("router")

PENDING_TTL_S = 60.0  # a pending change the ledger never confirmed (lost message) stops counting after this


@dataclass(frozen=True)
class _Reserving:
    buyer_id: str
    price: Decimal
    at: datetime
    since: float


@dataclass(frozen=True)
class _Releasing:
    buyer_id: str
    ended_at: datetime
    connected_seconds: int
    billable_after_s: int
    tz: str
    answered: bool
    since: float


@dataclass(frozen=True)
class _Swrr:
    tier_key: str
    pool: tuple[tuple[str, int], ...]
    chosen: str
    since: float


class LoadView:
    """Newest published state per key plus this worker's pending changes; implements core.ledger.Ledger."""

    def __init__(self) -> None:
        self.loads: dict[str, tuple[int, BuyerLoad]] = {}
        self.tiers: dict[str, tuple[int, TierState, frozenset[str]]] = {}
        self.reserving: dict[str, _Reserving] = {}  # call id →
        self.releasing: dict[str, _Releasing] = {}  # call id →
        self.swrr: dict[str, _Swrr] = {}  # call id →

    # ------------------------------------------------------------ published state

    def apply(self, record: protocol.ViewRecord | None) -> None:
        """A view record (from the view topic or a ledger reply); older versions are ignored."""
        if not record:
            return
        version = int(record["version"])
        if record["kind"] == "load":
            buyer_id = record["key"]
            if buyer_id in self.loads and self.loads[buyer_id][0] >= version:
                return
            load = BuyerLoad.from_dict(record["state"])
            self.loads[buyer_id] = (version, load)
            for call_id in [c for c, r in self.releasing.items() if r.buyer_id == buyer_id and c not in load.open_calls]:
                del self.releasing[call_id]
        elif record["kind"] == "tier":
            key = record["key"]
            if key in self.tiers and self.tiers[key][0] >= version:
                return
            recent = frozenset(record.get("recent") or ())
            self.tiers[key] = (version, TierState.from_dict(record["state"]), recent)
            for call_id in [c for c, s in self.swrr.items() if s.tier_key == key and c in recent]:
                del self.swrr[call_id]

    # ------------------------------------------------------------ this worker's pending changes

    def reserve(
        self, call_id: str, buyer_id: str, price: Decimal, at: datetime, tier_key: str, pool: tuple[tuple[str, int], ...]
    ) -> None:
        self.reserving[call_id] = _Reserving(buyer_id, price, at, time.monotonic())
        if pool:
            self.swrr[call_id] = _Swrr(tier_key, tuple((b, int(w)) for b, w in pool), buyer_id, time.monotonic())

    def answered(self, call_id: str, granted: bool) -> None:
        """The ledger answered the reservation (its reply's view record is applied separately)."""
        self.reserving.pop(call_id, None)
        if not granted:
            self.swrr.pop(call_id, None)

    def finished(self, call_id: str) -> None:
        """The call ended (rejected, e.g. its caller hung up while its reservation was in flight): the
        reservation no longer counts here. A grant that still comes is released by the call side."""
        self.reserving.pop(call_id, None)

    def release(
        self,
        call_id: str,
        buyer_id: str,
        ended_at: datetime,
        connected_seconds: int,
        billable_after_s: int,
        tz: str,
        answered: bool,
    ) -> None:
        self.releasing[call_id] = _Releasing(
            buyer_id, ended_at, connected_seconds, billable_after_s, tz, answered, time.monotonic()
        )

    # ------------------------------------------------------------ core.ledger.Ledger

    def buyer_load(self, buyer_id: str) -> BuyerLoad:
        load = self.loads[buyer_id][1] if buyer_id in self.loads else BuyerLoad(buyer_id)
        now = time.monotonic()
        for call_id, r in list(self.reserving.items()):
            if now - r.since > PENDING_TTL_S:
                del self.reserving[call_id]
            elif r.buyer_id == buyer_id:
                load = call_routed(load, call_id, r.price, r.at)
        for call_id, e in list(self.releasing.items()):
            if now - e.since > PENDING_TTL_S:
                del self.releasing[call_id]
            elif e.buyer_id == buyer_id:
                load = call_ended(load, call_id, e.ended_at, e.connected_seconds, e.billable_after_s, e.tz, e.answered)
        return load

    def tier_state(self, key: str) -> TierState:
        _, state, recent = self.tiers.get(key, (0, TierState(key), frozenset()))
        now = time.monotonic()
        for call_id, s in list(self.swrr.items()):
            if now - s.since > PENDING_TTL_S:
                del self.swrr[call_id]
            elif s.tier_key == key and call_id not in recent:
                state = swrr_routed(state, s.pool, s.chosen)
        return state


class ViewReader:
    """Reads the whole view topic into a LoadView: from the beginning, then follows it. `caught_up`
    is set once it has read up to the end offsets of its start (the worker is ready after that)."""

    def __init__(self, kafka: KafkaSettings, topic: str, view: LoadView) -> None:
        self.kafka = kafka
        self.topic = topic
        self.view = view
        self.caught_up = asyncio.Event()

    async def run(self) -> None:
        """Read the view topic until cancelled (the worker's stop cancels it)."""
        consumer = make_consumer(self.kafka, None, "router-view")
        await consumer.start()
        read = 0

        async def apply(r: ConsumerRecord, catching_up: bool) -> None:
            nonlocal read
            read += 1
            try:
                self.view.apply(protocol.decode_view(r.value))
            except (protocol.InvalidMessage, KeyError, ValueError, TypeError) as exc:
                log.warning("bad_view_record", partition=r.partition, offset=r.offset, error=str(exc))

        def caught_up() -> None:
            self.caught_up.set()
            log.info("view_caught_up", records=read, buyers=len(self.view.loads), tiers=len(self.view.tiers))

        try:
            follower = Follower(consumer, self.kafka, "router-view")
            await follower.start([self.topic])
            await follower.run(apply, asyncio.Event(), on_caught_up=caught_up)  # never set: runs until cancelled
        finally:
            await consumer.stop()
