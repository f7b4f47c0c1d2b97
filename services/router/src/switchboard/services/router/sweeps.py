"""Housekeeping every sweep_interval_s (timer `sweep`): calls whose end never came, finished calls to forget.

Like the deadline timer, the sweep writes no table (a timer has no event partition to write the
changelog with): it sends messages that the owners handle in stream context.
  * the buyer ledger's stale open calls → `reap` on <app>.ledger (Bookkeeper.signal_stale);
  * offers made max_call_duration_s ago or more → "reap:<attempt>" on router.deadlines (the call
    side finishes the call "reaped", nothing is published; docs/ROUTER.md, the reaper);
  * `finished` entries finished_retention_s old → "forget" on router.deadlines (the call side
    deletes the entry, a tombstone in the changelog).

The scans read keys first and the values in chunks with a yield between them, so a table of a
day's calls never stalls the loop for long (docs/ROUTER.md, "Sweep cost", has the numbers).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog
from faust.types import TopicT

from switchboard.services.router import protocol
from switchboard.services.router.bookkeeper import Bookkeeper
from switchboard.services.router.record import CallRecords, FinishedCalls, finished_at_ms

log = structlog.get_logger("router")

SWEEP_CHUNK = 10_000  # entries looked at between two yields to the event loop


def forgettable(
    entries: Iterable[tuple[str, Any]], now_ms: int, retention_ms: int, first_seen_ms: MutableMapping[str, int]
) -> list[str]:
    """The finished call ids whose stored entry is at least `retention_ms` old at `now_ms`.

    An entry without a time counts from the first time this worker saw it: such ids are added to
    `first_seen_ms` (the caller drops the ones no longer in the table).
    """
    old: list[str] = []
    for call_id, entry in entries:
        at = finished_at_ms(entry)
        if at is None:
            at = first_seen_ms.setdefault(call_id, now_ms)
        if now_ms - at >= retention_ms:
            old.append(call_id)
    return old


class Sweeper:
    def __init__(
        self,
        records: CallRecords,
        finished: FinishedCalls,
        deadlines: TopicT,
        bookkeeper: Bookkeeper,
        max_call_duration_ms: int,
        finished_retention_ms: int,
    ) -> None:
        self.records = records
        self.finished = finished
        self.deadlines = deadlines
        self.bookkeeper = bookkeeper
        self.max_call_duration_ms = max_call_duration_ms
        self.finished_retention_ms = finished_retention_ms
        # Finished call ids a "forget" was sent for (pruned once gone), and first sightings of entries without a time.
        self._forget_sent: set[str] = set()
        self._lost_offer_sent: set[tuple[str, int]] = set()  # (call id, attempt) sent "reap:<attempt>" for
        self._finished_first_seen_ms: dict[str, int] = {}

    async def sweep(self) -> None:
        """Reap calls whose end never came, forget old finished calls."""
        started = time.perf_counter()
        reaps = await self.bookkeeper.signal_stale()
        offers = await self.signal_lost_offers()
        forgets = await self.signal_forgettable()
        if reaps or offers or forgets:
            ms = round((time.perf_counter() - started) * 1000, 1)
            log.info("sweep", reaps_sent=reaps, lost_offers=offers, forgets_sent=forgets, ms=ms)

    async def signal_lost_offers(self) -> int:
        """Send "reap:<attempt>" for offers made max_call_duration_s ago or more (their call.ended never came)."""
        now_ms = int(time.time() * 1000)
        live: set[tuple[str, int]] = set()
        sent = 0
        call_ids = self.records.call_ids()
        for i in range(0, len(call_ids), SWEEP_CHUNK):
            if i:
                await asyncio.sleep(0)
            for call_id in call_ids[i : i + SWEEP_CHUNK]:
                offer = self.records.offer_time(call_id)
                # Offers made before offered_ms was kept count from when routing started: at worst early by the routing time.
                if offer is None or now_ms - offer.offered_ms < self.max_call_duration_ms:
                    continue
                key = (call_id, offer.attempt)
                live.add(key)
                if key not in self._lost_offer_sent:
                    self._lost_offer_sent.add(key)
                    await self.deadlines.send(key=call_id.encode(), value=protocol.reap_offer(offer.attempt).encode())
                    sent += 1
        self._lost_offer_sent &= live
        return sent

    async def signal_forgettable(self) -> int:
        """Send "forget" (keyed by call id, so to the partition owning the entry) for old finished entries."""
        now_ms = int(time.time() * 1000)
        call_ids = self.finished.call_ids()
        old: list[str] = []
        for i in range(0, len(call_ids), SWEEP_CHUNK):
            if i:
                await asyncio.sleep(0)
            chunk = ((c, self.finished.stored(c)) for c in call_ids[i : i + SWEEP_CHUNK])
            old += forgettable(
                ((c, e) for c, e in chunk if e is not None), now_ms, self.finished_retention_ms, self._finished_first_seen_ms
            )
        sent = 0
        for call_id in old:
            if call_id not in self._forget_sent:
                self._forget_sent.add(call_id)
                await self.deadlines.send(key=call_id.encode(), value=protocol.FORGET.encode())
                sent += 1
        self._forget_sent = {c for c in self._forget_sent if c in self.finished}
        for call_id in [c for c in self._finished_first_seen_ms if c not in self.finished]:
            del self._finished_first_seen_ms[call_id]
        return sent
