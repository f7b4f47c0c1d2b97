"""The buyer ledger: the single writer of buyer state (agent `ledger`, source <app>.ledger, key buyer id).

Why a separate agent keyed by buyer id: caps, concurrency and budget are per buyer, and calls of
one buyer arrive on every partition of the call-keyed topics, so with several router workers no
call-side agent sees all of a buyer's calls. Every change of a buyer goes through this agent on the
partition of its buyer id: one worker at a time, one message at a time → the checks are exact.

Tables (changelog-backed, co-partitioned with <app>.ledger, recovered on restart or rebalance):
  loads  buyer id → {"version", "load": BuyerLoad.to_dict(), "closed": recently ended call ids}
  tiers  tier key → {"version", "state": TierState.to_dict(), "recent": recently picked call ids}

Messages (protocol.py):
  reserve  re-check the caps with the core's pure check (eligibility.caps_exclusion) against the
           exact load; grant → call_routed (+ a "swrr" message keyed by the tier key for weight
           tiers), deny → nothing changes. Both reply to the call (key call id) with the load.
  release  call_ended: the slot is freed; sale and spend count only when billable.
  reap     release_stale_calls: the buyer's open calls routed max_call_duration ago or more are
           released without a sale (their call.ended never came); a warning per call. Sent by
           every worker's sweep timer for the buyer records it holds that have such calls (or
           open calls without an opening time, from records written before it was kept: the
           reap stamps them "now", so their clock starts). The decision is taken again here on
           the exact state, so a duplicate or early reap changes nothing.
  bid      bid_placed (last_bid: standing bid of RTB buyers, direct's re-offer order).
  swrr     swrr_routed on the tier's state (keyed by tier key: one writer per weight tier).
Every change is published to the view topic with its new version.

Redeliveries are no-ops: a reserve for a call the buyer already holds is granted again without a
change; a reserve for a call the buyer already released or reaped ("closed") is denied; a release of
a call the buyer does not hold does nothing (so does a late call.ended of a reaped call); a reap
with nothing stale does nothing; a swrr pick already in `recent` is skipped.

Why the sweep timer only sends messages: a Faust timer runs outside any stream event and cannot
write tables (changelog writes need the event's source partition), and buyer state has one writer.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import faust
import structlog
from faust.types import EventT

from switchboard.core.call_end import is_billable
from switchboard.core.config import RoutingConfig
from switchboard.core.eligibility import caps_exclusion
from switchboard.core.ledger import (
    BuyerLoad,
    TierState,
    bid_placed,
    buyer_timezone,
    call_ended,
    call_routed,
    needs_reaping,
    release_stale_calls,
    swrr_routed,
)
from switchboard.services.router import protocol
from switchboard.services.router.metrics import REVENUE

log = structlog.get_logger("router")

CLOSED = 1000  # ended call ids remembered per buyer: a redelivered reserve after its release is denied
RECENT = 256  # picked call ids per weight tier, published with the view (pending picks are matched against it)
SWEEP_CHUNK = 1000  # buyer records looked at between two yields to the event loop


def _now() -> datetime:
    return datetime.now(UTC)


class Bookkeeper:
    def __init__(
        self,
        app: faust.App,
        config: RoutingConfig,
        partitions: int,
        topics: dict[str, Any],
        dead_letter: Any,
        max_call_duration: timedelta,
    ) -> None:
        schema: faust.Schema[str, Any] = faust.Schema(key_serializer="json", value_serializer="json")
        self.config = config
        self.max_call_duration = max_call_duration
        # (buyer id, record version) the sweep already sent a reap for; pruned every sweep.
        self._reap_sent: set[tuple[str, int]] = set()
        self.loads = app.Table("loads", partitions=partitions, schema=schema)
        self.tiers = app.Table("tiers", partitions=partitions, schema=schema)
        self.topics = topics  # "ledger", "replies", "view" → faust topics (raw)
        self.dead_letter = dead_letter

    async def process(self, stream: Any) -> None:
        async for event in stream.events():
            try:
                await self.handle(event)
            except Exception as exc:  # Faust would ack and drop it: dead-letter and go on
                log.exception("ledger_handler_failed", offset=event.message.offset)
                await self.dead_letter(event, f"handler error: {type(exc).__name__}: {exc}")

    async def handle(self, event: EventT) -> None:
        try:
            msg = protocol.decode_typed(event.value)
        except protocol.InvalidMessage as exc:
            await self.dead_letter(event, f"undecodable: {exc}")
            return
        if msg["type"] == "reserve":
            await self.reserve(msg)
        elif msg["type"] == "release":
            await self.release(msg)
        elif msg["type"] == "reap":
            await self.reap(msg)
        elif msg["type"] == "bid":
            await self.bid(msg)
        elif msg["type"] == "swrr":
            await self.swrr(msg)
        else:
            await self.dead_letter(event, f"not a ledger message: {msg['type']!r}")

    # ------------------------------------------------------------ buyer records

    def _record(self, buyer_id: str) -> dict[str, Any]:
        return self.loads.get(buyer_id) or {"version": 0, "load": BuyerLoad(buyer_id).to_dict(), "closed": []}

    @staticmethod
    def _load(rec: dict[str, Any], now: datetime) -> BuyerLoad:
        """The record's load; open calls stored without an opening time (older records) count from `now`."""
        return BuyerLoad.from_dict(rec["load"], loaded_at=now)

    async def _store(self, buyer_id: str, rec: dict[str, Any], load: BuyerLoad) -> protocol.LoadRecord:
        rec = {**rec, "version": rec["version"] + 1, "load": load.to_dict()}
        self.loads[buyer_id] = rec
        view = self._load_view(buyer_id, rec)
        await self.topics["view"].send(key=f"load:{buyer_id}".encode(), value=protocol.encode(view))
        return view

    @staticmethod
    def _load_view(buyer_id: str, rec: dict[str, Any]) -> protocol.LoadRecord:
        return protocol.LoadRecord(kind="load", key=buyer_id, version=rec["version"], state=rec["load"])

    async def _grant(self, msg: protocol.Reserve, view: protocol.LoadRecord) -> None:
        reply = protocol.Granted(
            type="granted", reservation_id=msg["reservation_id"], call_id=msg["call_id"], buyer_id=msg["buyer_id"], view=view
        )
        await self.topics["replies"].send(key=msg["call_id"].encode(), value=protocol.encode(reply))

    async def _deny(self, msg: protocol.Reserve, view: protocol.LoadRecord, rule: str, detail: str) -> None:
        reply = protocol.Denied(
            type="denied",
            reservation_id=msg["reservation_id"],
            call_id=msg["call_id"],
            buyer_id=msg["buyer_id"],
            view=view,
            rule=rule,
            detail=detail,
        )
        await self.topics["replies"].send(key=msg["call_id"].encode(), value=protocol.encode(reply))

    # ------------------------------------------------------------ transitions

    async def reserve(self, msg: protocol.Reserve) -> None:
        buyer_id, call_id = msg["buyer_id"], msg["call_id"]
        rec = self._record(buyer_id)
        now = _now()
        load = self._load(rec, now)
        if call_id in load.open_calls:  # a redelivered reserve: the slot is this call's already
            await self._grant(msg, self._load_view(buyer_id, rec))
            return
        if call_id in rec["closed"]:
            await self._deny(msg, self._load_view(buyer_id, rec), "already_ended", f"{call_id} already ended with {buyer_id}")
            return
        try:
            buyer = self.config.buyer(buyer_id)
        except StopIteration:
            await self._deny(msg, self._load_view(buyer_id, rec), "unknown_buyer", f"{buyer_id} is not configured")
            return
        price = Decimal(msg["price"])
        why = caps_exclusion(buyer.caps, load, now, buyer_timezone(buyer), price)
        if why is not None:
            log.info("reservation_denied", call_id=call_id, buyer_id=buyer_id, rule=why.rule)
            await self._deny(msg, self._load_view(buyer_id, rec), why.rule, why.detail)
            return
        view = await self._store(buyer_id, rec, call_routed(load, call_id, price, now))
        await self._grant(msg, view)
        if msg.get("pool"):
            swrr = protocol.Swrr(type="swrr", tier_key=msg["tier_key"], pool=msg["pool"], chosen=buyer_id, call_id=call_id)
            await self.topics["ledger"].send(key=msg["tier_key"].encode(), value=protocol.encode(swrr))

    async def release(self, msg: protocol.Release) -> None:
        buyer_id, call_id = msg["buyer_id"], msg["call_id"]
        rec = self._record(buyer_id)
        load = self._load(rec, _now())
        if call_id not in load.open_calls:
            return  # redelivered, never granted, or reaped already
        try:
            tz = buyer_timezone(self.config.buyer(buyer_id))
        except StopIteration:
            tz = "UTC"
        ended_at = datetime.fromisoformat(msg["ended_at"])
        seconds, billable_after_s, answered = int(msg["connected_seconds"]), int(msg["billable_after_s"]), bool(msg["answered"])
        ended = call_ended(load, call_id, ended_at, seconds, billable_after_s, tz, answered)
        rec = {**rec, "closed": [*rec["closed"], call_id][-CLOSED:]}
        await self._store(buyer_id, rec, ended)
        if is_billable(seconds, billable_after_s, answered):  # the sale call_ended booked, at its price
            REVENUE.labels(msg.get("campaign_id", ""), buyer_id).inc(float(load.open_calls[call_id]))

    async def reap(self, msg: protocol.Reap) -> None:
        """Release the buyer's calls whose end never came, as ended without a sale (decided here, on the exact state)."""
        buyer_id = msg["buyer_id"]
        rec = self.loads.get(buyer_id)
        if rec is None:
            return
        now = _now()
        load = self._load(rec, now)
        released, reaped = release_stale_calls(load, now, self.max_call_duration)
        for call_id in reaped:
            opened = load.opened_at[call_id]
            log.warning(
                "open_call_reaped",
                buyer_id=buyer_id,
                call_id=call_id,
                opened_at=opened.isoformat(),
                age_s=round((now - opened).total_seconds(), 1),
                max_call_duration_s=self.max_call_duration.total_seconds(),
                billed=False,
            )
        stored_times = rec["load"].get("opened_at") or {}
        stamped = any(call_id not in stored_times for call_id in load.open_calls)
        if reaped:
            rec = {**rec, "closed": [*rec["closed"], *reaped][-CLOSED:]}
        if reaped or stamped:  # an old record's open calls got their opening time: keep it
            await self._store(buyer_id, rec, released)

    async def bid(self, msg: protocol.Bid) -> None:
        buyer_id = msg["buyer_id"]
        rec = self._record(buyer_id)
        load = self._load(rec, _now())
        at = datetime.fromisoformat(msg["at"])
        if load.last_bid_at is not None and at <= load.last_bid_at:
            return  # an older (or redelivered) bid
        await self._store(buyer_id, rec, bid_placed(load, Decimal(msg["amount"]), at))

    async def swrr(self, msg: protocol.Swrr) -> None:
        key, call_id = msg["tier_key"], msg["call_id"]
        rec = self.tiers.get(key) or {"version": 0, "state": TierState(key).to_dict(), "recent": []}
        if call_id in rec["recent"]:
            return  # redelivered
        state = swrr_routed(TierState.from_dict(rec["state"]), [(b, int(w)) for b, w in msg["pool"]], msg["chosen"])
        rec = {"version": rec["version"] + 1, "state": state.to_dict(), "recent": [*rec["recent"], call_id][-RECENT:]}
        self.tiers[key] = rec
        view = protocol.TierRecord(kind="tier", key=key, version=rec["version"], state=rec["state"], recent=rec["recent"])
        await self.topics["view"].send(key=f"tier:{key}".encode(), value=protocol.encode(view))

    # ------------------------------------------------------------ sweep timer side (no table writes here)

    async def signal_stale(self) -> int:
        """Send a `reap` for each buyer record held here with stale or never-stamped open calls.

        Scans the records of this worker's partitions (standby copies included: a reap sent for
        one is handled by its owner and changes nothing if there is nothing to reap). One reap per
        record version, so a slow ledger is not flooded. Returns how many were sent.
        """
        now = _now()
        live: set[tuple[str, int]] = set()
        sent = 0
        buyer_ids = list(self.loads.keys())
        for i in range(0, len(buyer_ids), SWEEP_CHUNK):
            if i:
                await asyncio.sleep(0)  # many buyers: let events through between chunks
            for buyer_id in buyer_ids[i : i + SWEEP_CHUNK]:
                rec = self.loads.get(buyer_id)
                if rec is None or not needs_reaping(rec["load"], now, self.max_call_duration):
                    continue
                key = (buyer_id, rec["version"])
                live.add(key)
                if key not in self._reap_sent:
                    self._reap_sent.add(key)
                    reap = protocol.Reap(type="reap", buyer_id=buyer_id)
                    await self.topics["ledger"].send(key=buyer_id.encode(), value=protocol.encode(reap))
                    sent += 1
        self._reap_sent &= live
        return sent
