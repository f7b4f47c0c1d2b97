"""The router's Faust app: the call side (agent `route`) and the buyer ledger (agent `ledger`).

Agent `route` (key call id; dispatch on the message topic):
  ivr.completed     → start routing the call (core.engine.start_routing)
  bid.received      → fill the auction in flight; conclude when engine.can_conclude_early says so
                      (everyone answered, or parallel_first's first qualified answer, in arrival order)
  post.answered     → ping_post: the winner accepted the post (→ the reservation, as any offer) or
                      rejected it (→ engine.post_answered(accepted=False): the next highest bid)
  router.deadlines  → an auction's deadline passed; conclude with the answers so far; or a post's
                      deadline passed without an answer: rejected "timeout"
  <app>.replies     → the ledger granted or denied a reservation
  call.ended        → the outcome of the offer in flight: a sale that stands finishes the call;
                      no answer / busy / reject / early buyer hang-up re-routes (engine.offer_failed);
                      routing_pending (the caller left before any offer rang) → rejected "abandoned"
                      (engine.caller_left), also when it overtakes the call's ivr.completed
Agent `ledger` (key buyer id): bookkeeper.py, the single writer of buyer state.

An offer (engine RouteToBuyer) is never published directly: the call side first sends a
`reserve` to the ledger partition of the buyer, which re-checks the caps against the exact state
and answers. Granted → call.routed (attempt n); denied → engine.reservation_denied, the next
candidate, without using an attempt. The call stays open (its record in `auctions`) until its
call.ended: then the slot is released to the ledger and, if the sale does not stand, the call is
re-routed (call.routed attempt n+1, call.queued or call.rejected). Eligibility and ranking read
this worker's LoadView (view.py): the ledger's published state plus its own pending changes.

Why the deadline topic: a Faust timer runs outside any stream event and cannot write tables
(changelog writes need the source partition of an event). The timer only looks for expired
auctions in the local table and sends a small message keyed by call id to router.deadlines (same
partition count, so it lands on the partition that owns the call); the agent handles it like any
other event, so every table write happens in stream context and the events of one call are
processed one at a time.

Tables keyed by call id (co-partitioned with the sources, changelog-backed):
  auctions: the open call: the ivr.completed event, engine progress, its phase
            ("auction": pinged buyers, answers, deadline; "reserving": the reservation in
            flight; "posting": ping_post's post in flight, waiting for post.answered or its
            deadline; "offered": the offer the edge is ringing) and the attempts already published.
  finished: call id → {"kind": how it ended, "at_ms": when}; a redelivered ivr.completed is ignored.
            Entries are forgotten finished_retention_s after the call ended (sweep timer →
            "forget" on router.deadlines → deleted in stream context, a tombstone in the
            changelog); an ivr.completed older than that is ignored, so forgetting can never
            route a call twice. Entries written before "at_ms" existed (a bare kind string)
            count from when this worker first saw them.

Calls whose call.ended never comes (docs/ROUTER.md): the ledger's sweep releases the buyer's slot
(bookkeeper.py, "reap"); the call side forgets the offer max_call_duration_s after it was made
(the sweep timer sends "reap:<attempt>" on router.deadlines; the call is finished "reaped", nothing
is published), so a call.ended arriving later is ignored like any other for a finished call.

Dedupe (at-least-once everywhere): one call.routed per attempt (`routed` in the record), at
most one call.rejected (the record is gone after it; `finished` stops a new start), a call.ended
counts only for the offer in flight (its attempt and buyer), a reply only for the reservation in
flight, a post.answered only for the post in flight (its auction, buyer and attempt). A grant nobody waits for any more (the call moved on) is released at once.
"""

from __future__ import annotations

import asyncio
import base64
import tempfile
import time
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import faust
import structlog
from aiokafka import TopicPartition
from aiokafka.partitioner import murmur2
from faust.types import EventT

from switchboard.core import engine
from switchboard.core.config import RoutingConfig
from switchboard.core.eligibility import CallFacts
from switchboard.core.ledger import buyer_timezone
from switchboard.platform import codec
from switchboard.platform.kafka import confirmed_end_offsets, make_consumer
from switchboard.platform.topics import (
    BID_RECEIVED,
    CALL_ENDED,
    CALL_QUEUED,
    CALL_REJECTED,
    CALL_ROUTED,
    DEAD_LETTER,
    IVR_COMPLETED,
    PING_REQUESTED,
    POST_ANSWERED,
    POST_REQUESTED,
)
from switchboard.services.router import protocol
from switchboard.services.router.bookkeeper import Bookkeeper
from switchboard.services.router.settings import RouterSettings
from switchboard.services.router.transport import transport_class
from switchboard.services.router.view import LoadView
from switchboard.v1 import events_pb2 as pb

log = structlog.get_logger("router")

SERVICE = "router"
_RAW: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}

POST_DEADLINE_PREFIX = "post:"  # router.deadlines value of a post's deadline: "post:<auction_id>:<attempt>"
REAP_PREFIX = "reap:"  # router.deadlines value of an offer older than max_call_duration_s: "reap:<attempt>"
FORGET = "forget"  # router.deadlines value of a finished call to forget (finished_retention_s passed)
HUNG_UP = "hung_up"  # `finished` kind: the caller left before the call's ivr.completed got here
SWEEP_CHUNK = 10_000  # finished entries looked at between two yields to the event loop


class RouterApp(faust.App):
    """faust.App whose consumer honours KafkaSettings.fetch_max_wait_ms (see transport.py)."""

    def __init__(self, *args: Any, fetch_max_wait_ms: int, **kwargs: Any) -> None:
        self._fetch_max_wait_ms = fetch_max_wait_ms
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> Any:
        return transport_class(self._fetch_max_wait_ms)(self.conf.broker_consumer, self)


def _ts_from_ms(ms: int) -> Any:
    ts = codec.now_ts()
    ts.FromMilliseconds(ms)
    return ts


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class LateDeadline:
    """A deadline first seen late at `seen_ms`: bid.received of its partition ended at `end` then (None: unknown)."""

    seen_ms: int
    partition: int
    end: int | None
    committed: int | None  # the router group's committed offset of that partition then

    def caught_up(self, read: int) -> bool:
        """Every answer given before the deadline has been handled: here (read) or by the group (committed)."""
        if self.end is None:
            return True  # could not ask the cluster: conclude as before
        return read >= self.end - 1 or (self.committed is not None and self.committed >= self.end)


def _finished_kind(entry: Any) -> str | None:
    """The kind of a `finished` entry ({"kind", "at_ms"}, or a bare kind from older routers)."""
    if entry is None:
        return None
    return entry.get("kind") if isinstance(entry, dict) else str(entry)


def finished_at_ms(entry: Any) -> int | None:
    """When a `finished` entry was written; None for entries from before the time was kept (a bare kind)."""
    return entry.get("at_ms") if isinstance(entry, dict) else None


def forgettable(
    entries: Iterable[tuple[str, Any]], now_ms: int, retention_ms: int, first_seen_ms: MutableMapping[str, int]
) -> list[str]:
    """The finished call ids whose entry is at least `retention_ms` old at `now_ms`.

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


class Router:
    """The call side: decode → core.engine → reservations, publishing and table updates. One per app."""

    def __init__(self, app: RouterApp, config: RoutingConfig, settings: RouterSettings) -> None:
        self.app = app
        self.config = config
        partitions = settings.kafka.partitions
        # JSON keys and values: the changelog decodes back to the same str keys and dict values on recovery.
        schema = faust.Schema(key_serializer="json", value_serializer="json")
        self.auctions = app.Table("auctions", partitions=partitions, schema=schema)
        self.finished = app.Table("finished", partitions=partitions, schema=schema)
        self.deadlines_topic = settings.deadlines_topic
        self.max_call_duration_ms = int(settings.max_call_duration_s * 1000)
        self.finished_retention_ms = int(settings.finished_retention_s * 1000)
        self.replies_topic = settings.internal_topic("replies")
        self.source = app.topic(
            IVR_COMPLETED.name,
            BID_RECEIVED.name,
            CALL_ENDED.name,
            POST_ANSWERED.name,
            self.deadlines_topic,
            self.replies_topic,
            partitions=partitions,
            internal=True,
            **_RAW,
        )
        self.deadlines = app.topic(self.deadlines_topic, partitions=partitions, internal=True, **_RAW)
        self.internal = {
            kind: app.topic(settings.internal_topic(kind), partitions=partitions, internal=True, **_RAW)
            for kind in ("ledger", "replies", "view")
        }
        self.ledger_source = self.internal["ledger"]
        self.out = {
            t.name: app.topic(t.name, **_RAW)
            for t in (PING_REQUESTED, POST_REQUESTED, CALL_ROUTED, CALL_REJECTED, CALL_QUEUED, DEAD_LETTER)
        }
        self.view = LoadView()
        self.bookkeeper = Bookkeeper(
            app, config, partitions, self.internal, self.dead_letter, timedelta(seconds=settings.max_call_duration_s)
        )
        # (call_id, auction_id) already signalled by the timer; pruned as auctions end.
        self._signalled: set[tuple[str, str]] = set()
        # Late deadlines (see signal_expired): bid.received partition → the highest offset handled here, and
        # per late deadline the bid.received end (and the group's committed offset) when it was first seen.
        self._bids_read: dict[int, int] = {}
        self._late: dict[tuple[str, str], LateDeadline] = {}
        self._bid_snapshots: dict[int, LateDeadline] = {}  # bid.received partition → its positions when last asked
        self.kafka = settings.kafka
        self.app_id = settings.app_id
        self.late_deadline_ms = settings.late_deadline_ms
        self.late_deadline_hold_ms = settings.late_deadline_hold_ms
        # Finished call ids a "forget" was sent for (pruned once gone), and first sightings of entries without a time.
        self._forget_sent: set[str] = set()
        self._lost_offer_sent: set[tuple[str, int]] = set()  # (call id, attempt) sent "reap:<attempt>" for
        self._finished_first_seen_ms: dict[str, int] = {}

    # ------------------------------------------------------------ stream side

    async def process(self, stream: Any) -> None:
        async for event in stream.events():
            if event.message.topic == BID_RECEIVED.name:  # before handling: a failed bid still counts as read
                m = event.message
                self._bids_read[m.partition] = max(m.offset, self._bids_read.get(m.partition, -1))
            try:
                await self.handle(event)
            except Exception as exc:  # Faust would ack and drop the message: dead-letter it and go on
                log.exception("handler_failed", topic=event.message.topic, offset=event.message.offset)
                await self.dead_letter(event, f"handler error: {type(exc).__name__}: {exc}")

    async def handle(self, event: EventT) -> None:
        topic = event.message.topic
        value = event.value
        if topic == self.deadlines_topic:
            call_id = (event.key or b"").decode()
            await self.on_deadline(call_id, (value or b"").decode())
            return
        if topic == self.replies_topic:
            try:
                reply = protocol.decode_typed(value)
            except protocol.InvalidMessage as exc:
                await self.dead_letter(event, f"undecodable: {exc}")
                return
            await self.on_reply(reply)
            return
        try:
            msg = codec.decode(topic, value)
        except codec.UndecodableEvent as exc:
            await self.dead_letter(event, f"undecodable: {exc}")
            return
        if topic == IVR_COMPLETED.name:
            await self.on_ivr_completed(msg)  # type: ignore[arg-type]
        elif topic == BID_RECEIVED.name:
            await self.on_bid(msg)  # type: ignore[arg-type]
        elif topic == CALL_ENDED.name:
            await self.on_call_ended(msg)  # type: ignore[arg-type]
        elif topic == POST_ANSWERED.name:
            await self.on_post_answered(msg)  # type: ignore[arg-type]

    async def on_ivr_completed(self, ivr: pb.IvrCompleted) -> None:
        call_id = ivr.call_id
        hung_up = _finished_kind(self.finished.get(call_id)) == HUNG_UP
        if (call_id in self.finished and not hung_up) or call_id in self.auctions:
            log.info("duplicate_ivr_completed", call_id=call_id)
            return
        if ivr.HasField("occurred_at"):
            age_ms = int(time.time() * 1000) - ivr.occurred_at.ToMilliseconds()
            if age_ms >= self.finished_retention_ms:
                # Older than the `finished` memory: it may be a redelivery of a call already
                # concluded and forgotten. Its caller is long gone either way; routing it again
                # could sell it twice.
                log.warning("stale_ivr_completed_ignored", call_id=call_id, age_s=round(age_ms / 1000, 1))
                return
        facts = CallFacts(
            call_id=call_id,
            campaign_id=ivr.campaign_id,
            publisher_id=ivr.publisher_id,
            state=ivr.caller.state,
            zip=ivr.caller.zip,
            area_code=ivr.caller.area_code,
            answers=dict(ivr.answers),
        )
        now = _now()
        started_ms = ivr.occurred_at.ToMilliseconds() if ivr.HasField("occurred_at") else int(now.timestamp() * 1000)
        rec = {"ctx": {"ivr": base64.b64encode(codec.encode(ivr)).decode(), "routing_started_ms": started_ms}, "routed": []}
        if hung_up:  # the caller's hang-up (routing_pending) overtook this event
            await self.apply(call_id, rec, engine.caller_left(engine.Progress(call=facts), "before routing started"))
            return
        await self.apply(call_id, rec, engine.start_routing(self.config, facts, now, self.view))

    async def on_bid(self, bid: pb.BidReceived) -> None:
        answer = engine.BidAnswer.from_pb(bid)
        if answer.outcome == "bid" and answer.amount is not None:
            # The buyer's standing bid (RTB buyers in standing-price tiers, direct's re-offer order).
            at = codec.ts_to_datetime(bid.occurred_at) if bid.HasField("occurred_at") else _now()
            msg = {"type": "bid", "buyer_id": bid.buyer_id, "amount": str(answer.amount), "at": at.isoformat()}
            await self.internal["ledger"].send(key=bid.buyer_id.encode(), value=protocol.encode(msg))
        rec = self.auctions.get(bid.call_id)
        if (
            rec is None
            or rec.get("phase") != "auction"
            or rec["auction_id"] != bid.auction_id
            or bid.buyer_id not in rec["pinged"]
        ):
            log.info("stale_bid", call_id=bid.call_id, auction_id=bid.auction_id, buyer_id=bid.buyer_id)
            return
        if bid.buyer_id in rec["answers"]:
            return  # a redelivered answer: the first one counts
        rec["answers"][bid.buyer_id] = {
            "outcome": answer.outcome,
            "amount": None if answer.amount is None else str(answer.amount),
            "reason": answer.reason,
            "latency_ms": answer.latency_ms,
            "available": answer.available,
            "seq": len(rec["answers"]),  # arrival order
        }
        progress = engine.Progress.from_dict(rec["progress"])
        if engine.can_conclude_early(progress, rec["pinged"], rec["answers"]):
            await self.conclude(bid.call_id, rec, progress)
        else:
            self.auctions[bid.call_id] = rec  # write back: the changelog records the new answer

    async def on_deadline(self, call_id: str, auction_id: str) -> None:
        if auction_id == FORGET:
            await self.forget(call_id)
            return
        rec = self.auctions.get(call_id)
        if auction_id.startswith(REAP_PREFIX):
            offer = rec.get("offer") if rec is not None and rec.get("phase") == "offered" else None
            if offer is not None and f"{REAP_PREFIX}{offer['attempt']}" == auction_id:
                # The edge never reported this offer's end. The ledger's own sweep frees the buyer's
                # slot (not billed); here the call stops waiting for it.
                log.warning("offer_reaped", call_id=call_id, buyer_id=offer["buyer_id"], attempt=offer["attempt"], billed=False)
                await self.finish(call_id, "reaped")
            return
        if auction_id.startswith(POST_DEADLINE_PREFIX):
            post = rec.get("post") if rec is not None and rec.get("phase") == "posting" else None
            if post is not None and f"{POST_DEADLINE_PREFIX}{post['auction_id']}:{post['attempt']}" == auction_id:
                await self.post_outcome(
                    call_id, rec, False, "timeout", f"no answer before the post deadline ({post['timeout_ms']} ms)"
                )
            return
        if rec is None or rec.get("phase") != "auction" or rec["auction_id"] != auction_id:
            return  # concluded already
        await self.conclude(call_id, rec, engine.Progress.from_dict(rec["progress"]))

    async def conclude(self, call_id: str, rec: dict, progress: engine.Progress) -> None:
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
            for buyer_id, a in rec["answers"].items()
        }
        step = engine.conclude_auction(self.config, progress, rec["pinged"], answers, _now(), self.view)
        await self.apply(call_id, rec, step)

    async def on_reply(self, reply: dict[str, Any]) -> None:
        self.view.apply(reply.get("view"))
        call_id, buyer_id = reply["call_id"], reply["buyer_id"]
        rec = self.auctions.get(call_id)
        pending = rec.get("reservation") if rec is not None and rec.get("phase") == "reserving" else None
        if pending is not None and pending["id"] == reply["reservation_id"]:
            self.view.answered(call_id, granted=reply["type"] == "granted")
            if reply["type"] == "granted":
                await self.offer(call_id, rec)
            else:
                progress = engine.Progress.from_dict(rec["progress"])
                step = engine.reservation_denied(self.config, progress, reply["rule"], reply["detail"], _now(), self.view)
                await self.apply(call_id, rec, step)
            return
        if reply["type"] != "granted":
            return  # a stale denial changes nothing
        holds = {r["buyer_id"] for r in (rec.get("reservation"), rec.get("offer")) if r} if rec is not None else set()
        if buyer_id not in holds:
            # The call moved on (e.g. a redelivered event made a new decision): free the slot now.
            log.info("stale_grant_released", call_id=call_id, buyer_id=buyer_id)
            await self.release(call_id, buyer_id, _now(), 0, False)

    async def on_post_answered(self, answered: pb.PostAnswered) -> None:
        call_id = answered.call_id
        rec = self.auctions.get(call_id)
        post = rec.get("post") if rec is not None and rec.get("phase") == "posting" else None
        if post is None or (post["auction_id"], post["buyer_id"], post["attempt"]) != (
            answered.auction_id,
            answered.buyer_id,
            answered.attempt,
        ):
            # A redelivery, or an answer after the post deadline moved the call on.
            log.info(
                "stale_post_answer",
                call_id=call_id,
                auction_id=answered.auction_id,
                buyer_id=answered.buyer_id,
                attempt=answered.attempt,
            )
            return
        reason = answered.reason or ("" if answered.accepted else "rejected")
        await self.post_outcome(call_id, rec, answered.accepted, reason, f"in {answered.latency_ms} ms")

    async def post_outcome(self, call_id: str, rec: dict, accepted: bool, reason: str, how: str) -> None:
        """The post in flight was answered (or timed out): the engine picks the reservation or the next bid."""
        post = rec["post"]
        progress = engine.Progress.from_dict(rec["progress"])
        verdict = "accepted" if accepted else f"rejected: {reason}"
        progress.trace.notes.append(f"post to {post['buyer_id']} (offer {post['attempt']}, {post['price']}) {verdict} ({how})")
        log.info(
            "post_answered", call_id=call_id, buyer_id=post["buyer_id"], attempt=post["attempt"], accepted=accepted, reason=reason
        )
        rec["post"] = None
        step = engine.post_answered(self.config, progress, accepted, _now(), self.view, reason=reason)
        await self.apply(call_id, rec, step)

    async def on_call_ended(self, ended: pb.CallEnded) -> None:
        call_id = ended.call_id
        rec = self.auctions.get(call_id)
        offer = rec.get("offer") if rec is not None and rec.get("phase") == "offered" else None
        if ended.routing_pending and offer is None:
            await self.caller_left(call_id, rec)
            return
        if offer is None:
            log.info("call_ended_ignored", call_id=call_id, reason="no offer in flight")  # queue calls, redeliveries
            return
        if (ended.attempt and ended.attempt != offer["attempt"]) or (ended.buyer_id and ended.buyer_id != offer["buyer_id"]):
            log.info(
                "call_ended_ignored",
                call_id=call_id,
                attempt=ended.attempt,
                buyer_id=ended.buyer_id,
                reason="not the offer in flight",
            )
            return
        outcome, seconds = ended.outcome, max(ended.connected_seconds, 0)
        answered = seconds > 0 and outcome in (
            pb.CALL_OUTCOME_ANSWERED,
            pb.CALL_OUTCOME_BUYER_HANGUP,
            pb.CALL_OUTCOME_CALLER_HANGUP,
        )
        ended_at = codec.ts_to_datetime(ended.occurred_at) if ended.HasField("occurred_at") else _now()
        await self.release(call_id, offer["buyer_id"], ended_at, seconds, answered, offer["billable_after_s"])
        # A call the buyer answered is over whoever hung up (billable or not); so is one the caller
        # left after talking. Only the buyer's failures (no answer, busy, reject, early hang-up) re-route.
        if outcome == pb.CALL_OUTCOME_ANSWERED or (outcome == pb.CALL_OUTCOME_CALLER_HANGUP and answered):
            failure = None
        else:
            failure = engine.offer_outcome(outcome, seconds, offer["billable_after_s"])
        if failure is None:
            log.info("call_finished", call_id=call_id, buyer_id=offer["buyer_id"], attempt=offer["attempt"], seconds=seconds)
            await self.finish(call_id, "routed")
            return
        progress = engine.Progress.from_dict(rec["progress"])
        rec["offer"] = None
        step = engine.offer_failed(self.config, progress, failure, _now(), self.view)
        await self.apply(call_id, rec, step)

    async def caller_left(self, call_id: str, rec: dict | None) -> None:
        """The caller hung up while this router was still deciding (no offer ringing): rejected "abandoned".

        Pings, a post or a reservation in flight become stale (a grant is released when it comes).
        Before the call's ivr.completed got here (another topic: no order between them), `finished`
        remembers the hang-up, and the ivr.completed, when it comes, ends the call instead of routing it.
        """
        if rec is not None:
            progress = engine.Progress.from_dict(rec["progress"])
            log.info("caller_left_while_routing", call_id=call_id, phase=rec.get("phase"))
            await self.apply(call_id, rec, engine.caller_left(progress, f"while routing ({rec.get('phase')})"))
        elif call_id not in self.finished:
            log.info("caller_left_before_routing", call_id=call_id)
            await self.finish(call_id, HUNG_UP)
        # else: decided and finished already (the decision and the hang-up crossed): nothing to do

    # ------------------------------------------------------------ carrying out the engine's actions

    async def apply(self, call_id: str, rec: dict, step: engine.Step) -> None:
        """Carry out the engine's action: ping, reserve an offer, or one terminal event."""
        action, progress = step.action, step.progress
        rec["progress"] = progress.to_dict()
        if isinstance(action, engine.RequestBids):
            await self.ping(call_id, rec, action, progress)
        elif isinstance(action, engine.PostToBuyer):
            await self.post(call_id, rec, action)
        elif isinstance(action, engine.RouteToBuyer):
            await self.reserve(call_id, rec, action)
        else:
            await self.terminal(call_id, rec, action, progress)

    async def ping(self, call_id: str, rec: dict, action: engine.RequestBids, progress: engine.Progress) -> None:
        auction_id = codec.new_id()
        facts = progress.call
        ping = pb.PingRequested(
            event_id=codec.new_id(),
            call_id=call_id,
            occurred_at=codec.now_ts(),
            auction_id=auction_id,
            campaign_id=facts.campaign_id,
            publisher_id=facts.publisher_id,
            tier_index=action.tier_index,
            attempt=action.attempt,
            strategy=action.strategy,
            buyer_ids=list(action.buyer_ids),
            deadline=_ts_from_ms(int(action.deadline.timestamp() * 1000)),
            state=facts.state,
            zip=facts.zip,
            area_code=facts.area_code,
            answers=dict(facts.answers),
        )  # never the caller number
        rec.update(
            phase="auction",
            auction_id=auction_id,
            pinged=list(action.buyer_ids),
            answers={},
            deadline_ms=int(action.deadline.timestamp() * 1000),
            reservation=None,
        )
        self.auctions[call_id] = rec
        await self.send(PING_REQUESTED.name, call_id, ping)

    async def post(self, call_id: str, rec: dict, action: engine.PostToBuyer) -> None:
        """ping_post: post the call's full data to the winner and wait (phase "posting").

        The caller number goes only to a buyer with share_caller_number (include_caller_number).
        Deadline: the campaign's routing.timeout_ms from now; the bidder answers before it, and
        the timer treats a post still unanswered then as rejected "timeout".
        """
        ivr = pb.IvrCompleted.FromString(base64.b64decode(rec["ctx"]["ivr"]))
        caller = pb.Caller()
        caller.CopyFrom(ivr.caller)
        if not action.include_caller_number:
            caller.number = ""
        timeout_ms = self.config.campaign(ivr.campaign_id).routing.timeout_ms
        deadline_ms = int(time.time() * 1000) + timeout_ms
        auction_id = rec.get("auction_id") or codec.new_id()  # the auction the buyer won
        out = pb.PostRequested(
            event_id=codec.new_id(),
            call_id=call_id,
            occurred_at=codec.now_ts(),
            auction_id=auction_id,
            buyer_id=action.buyer_id,
            price=f"{action.price:.2f}",
            campaign_id=ivr.campaign_id,
            publisher_id=self.publisher_of(ivr),
            caller=caller,
            answers=dict(ivr.answers),
            deadline=_ts_from_ms(deadline_ms),
            attempt=action.attempt,
        )
        rec.update(
            phase="posting",
            auction_id=auction_id,
            post={
                "auction_id": auction_id,
                "buyer_id": action.buyer_id,
                "attempt": action.attempt,
                "price": f"{action.price:.2f}",
                "deadline_ms": deadline_ms,
                "timeout_ms": timeout_ms,
            },
            reservation=None,
        )
        self.auctions[call_id] = rec
        log.info(
            "post_requested",
            call_id=call_id,
            buyer_id=action.buyer_id,
            attempt=action.attempt,
            shares_number=action.include_caller_number,
        )
        await self.send(POST_REQUESTED.name, call_id, out)

    async def reserve(self, call_id: str, rec: dict, action: engine.RouteToBuyer) -> None:
        reservation = {
            "id": codec.new_id(),
            "buyer_id": action.buyer_id,
            "destination": action.destination,
            "price": f"{action.price:.2f}",
            "tier_index": action.tier_index,
            "attempt": action.attempt,
            "strategy": action.strategy,
            "tier_key": action.tier_key,
            "pool": [[b, w] for b, w in action.weight_pool],
        }
        rec.update(phase="reserving", reservation=reservation, auction_id=None, pinged=[], answers={}, deadline_ms=None)
        self.auctions[call_id] = rec
        self.view.reserve(call_id, action.buyer_id, action.price, _now(), action.tier_key, action.weight_pool)
        msg = {
            "type": "reserve",
            "reservation_id": reservation["id"],
            "call_id": call_id,
            "buyer_id": action.buyer_id,
            "price": reservation["price"],
            "attempt": action.attempt,
            "tier_key": action.tier_key,
            "pool": reservation["pool"],
        }
        await self.internal["ledger"].send(key=action.buyer_id.encode(), value=protocol.encode(msg))

    async def offer(self, call_id: str, rec: dict) -> None:
        """The reservation was granted: publish call.routed for this attempt (once) and wait for call.ended."""
        res = rec["reservation"]
        buyer = self.config.buyer(res["buyer_id"])
        if res["attempt"] not in rec["routed"]:
            ivr = pb.IvrCompleted.FromString(base64.b64decode(rec["ctx"]["ivr"]))
            progress = engine.Progress.from_dict(rec["progress"])
            out = pb.CallRouted(
                **self.common(call_id, rec, ivr, progress),
                kind=pb.TARGET_KIND_BUYER,
                buyer_id=res["buyer_id"],
                destination=res["destination"],
                price=res["price"],
                tier_index=res["tier_index"],
                attempt=res["attempt"],
                strategy=res["strategy"],
                caller=ivr.caller,
                answers=dict(ivr.answers),
                billable_after_s=buyer.billable_after_s,
            )
            await self.send(CALL_ROUTED.name, call_id, out)
            rec["routed"] = [*rec["routed"], res["attempt"]]
            log.info(
                "call_routed",
                call_id=call_id,
                buyer_id=res["buyer_id"],
                price=res["price"],
                tier=res["tier_index"],
                attempt=res["attempt"],
            )
        offer = {
            "buyer_id": res["buyer_id"],
            "attempt": res["attempt"],
            "price": res["price"],
            "billable_after_s": buyer.billable_after_s,
            "offered_ms": int(time.time() * 1000),
        }
        rec.update(phase="offered", offer=offer, reservation=None)
        self.auctions[call_id] = rec

    async def release(
        self, call_id: str, buyer_id: str, ended_at: datetime, seconds: int, answered: bool, billable_after_s: int | None = None
    ) -> None:
        try:
            buyer = self.config.buyer(buyer_id)
            tz, billable = buyer_timezone(buyer), buyer.billable_after_s
        except StopIteration:
            tz, billable = "UTC", 0
        if billable_after_s is not None:
            billable = billable_after_s  # the offer's terms, as they were when it was made
        self.view.release(call_id, buyer_id, ended_at, seconds, billable, tz, answered)
        msg = {
            "type": "release",
            "call_id": call_id,
            "buyer_id": buyer_id,
            "connected_seconds": seconds,
            "answered": answered,
            "billable_after_s": billable,
            "ended_at": ended_at.isoformat(),
        }
        await self.internal["ledger"].send(key=buyer_id.encode(), value=protocol.encode(msg))

    async def terminal(self, call_id: str, rec: dict, action: Any, progress: engine.Progress) -> None:
        ivr = pb.IvrCompleted.FromString(base64.b64decode(rec["ctx"]["ivr"]))
        common = self.common(call_id, rec, ivr, progress)
        if isinstance(action, engine.HandToQueue):
            out: Any = pb.CallQueued(
                **common,
                queue_id=action.queue_id,
                caller=ivr.caller,
                answers=dict(ivr.answers),
                tier_index=action.tier_index,
                attempt=action.attempt,
            )
            topic, kind = CALL_QUEUED.name, "queued"
            log.info("call_queued", call_id=call_id, queue_id=action.queue_id)
        else:
            out = pb.CallRejected(**common, reason=action.reason, detail=action.detail, announcement=action.announcement)
            topic, kind = CALL_REJECTED.name, "rejected"
            log.info("call_rejected", call_id=call_id, reason=action.reason, detail=action.detail)
        # Sent before the tables change: a crash in between repeats the event (consumers dedupe by call id).
        await self.send(topic, call_id, out)
        await self.finish(call_id, kind)

    async def finish(self, call_id: str, kind: str) -> None:
        self.view.finished(call_id)  # a reservation still in flight (the caller left meanwhile) stops counting
        self.finished[call_id] = {"kind": kind, "at_ms": int(time.time() * 1000)}
        if call_id in self.auctions:
            del self.auctions[call_id]

    async def forget(self, call_id: str) -> None:
        """The sweep found the finished entry old enough: delete it (checked again on this worker's clock)."""
        entry = self.finished.get(call_id)
        if entry is None:
            return  # forgotten already (a duplicate from a standby's sweep)
        at = finished_at_ms(entry)
        if at is not None and int(time.time() * 1000) - at < self.finished_retention_ms:
            return  # finished again since, or the sender's clock runs ahead
        del self.finished[call_id]

    def common(self, call_id: str, rec: dict, ivr: pb.IvrCompleted, progress: engine.Progress) -> dict[str, Any]:
        return {
            "event_id": codec.new_id(),
            "call_id": call_id,
            "occurred_at": codec.now_ts(),
            "call_started_at": ivr.call_started_at,
            "campaign_id": ivr.campaign_id,
            "publisher_id": self.publisher_of(ivr),
            "routing_started_at": _ts_from_ms(rec["ctx"]["routing_started_ms"]),
            "trace": progress.trace,
        }

    def publisher_of(self, ivr: pb.IvrCompleted) -> str:
        """The event's publisher, or its campaign's when the event names none."""
        if ivr.publisher_id:
            return ivr.publisher_id
        campaign = next((c for c in self.config.campaigns if c.id == ivr.campaign_id), None)
        return campaign.publisher if campaign else ""

    async def send(self, topic: str, call_id: str, event: Any) -> None:
        await self.out[topic].send(key=call_id.encode(), value=codec.encode(event))

    async def dead_letter(self, event: EventT, reason: str) -> None:
        m = event.message
        letter = codec.dead_letter(SERVICE, m, reason)
        await self.out[DEAD_LETTER.name].send(key=m.key, value=codec.encode(letter))
        log.warning("dead_lettered", topic=m.topic, partition=m.partition, offset=m.offset, reason=reason)

    # ------------------------------------------------------------ timer side (no table writes here)

    async def signal_expired(self) -> None:
        """Send the deadline of every auction or post whose time is up to router.deadlines (once each).

        A deadline found more than late_deadline_ms late (this worker just took the call over from
        one that stopped, or it fell behind) may have answers that came in time still unread in
        bid.received: another topic, read in Faust's own order. Such a deadline waits until this
        worker has handled bid.received of the call's partition up to where it ended when the
        deadline was first seen late, at most late_deadline_hold_ms; then the auction concludes
        with every answer that was given in time.
        """
        now_ms = int(time.time() * 1000)
        live: set[tuple[str, str]] = set()
        late: list[tuple[tuple[str, str], int]] = []
        for call_id, rec in list(self.auctions.items()):
            phase = rec.get("phase")
            if phase == "auction":
                signal, deadline_ms = rec["auction_id"], rec["deadline_ms"]
            elif phase == "posting" and rec.get("post"):
                post = rec["post"]
                signal, deadline_ms = f"{POST_DEADLINE_PREFIX}{post['auction_id']}:{post['attempt']}", post["deadline_ms"]
            else:
                continue
            key = (call_id, signal)
            live.add(key)
            if deadline_ms > now_ms or key in self._signalled:
                continue
            if now_ms - deadline_ms > self.late_deadline_ms and phase == "auction":
                late.append((key, deadline_ms))
                continue
            self._signalled.add(key)
            await self.deadlines.send(key=call_id.encode(), value=signal.encode())
        if late:
            for key in await self._late_deadlines_ready(late, now_ms):
                self._signalled.add(key)
                await self.deadlines.send(key=key[0].encode(), value=key[1].encode())
        self._signalled &= live
        for key in [k for k in self._late if k not in live]:
            del self._late[key]

    async def _late_deadlines_ready(self, late: list[tuple[tuple[str, str], int]], now_ms: int) -> list[tuple[str, str]]:
        """The late deadlines whose in-time answers this worker has all handled (or that waited long enough)."""
        new = {key: (self._partition_of(key[0]), deadline_ms) for key, deadline_ms in late if key not in self._late}
        if new:
            # A partition's positions taken after a deadline cover every answer given before it: one look at
            # the cluster serves all the late deadlines it came after (an overloaded worker asks at most
            # about once per late_deadline_ms, not on every tick).
            stale = {
                p
                for p, deadline_ms in new.values()
                if p not in self._bid_snapshots or self._bid_snapshots[p].seen_ms <= deadline_ms
            }
            if stale:
                try:
                    ends, committed = await self._bid_positions(stale)
                except Exception as exc:  # noqa: BLE001 — never hold a call for lack of an answer from the cluster
                    log.warning("late_deadline_check_failed", error=f"{type(exc).__name__}: {exc}", calls=len(new))
                    ends, committed = {}, {}
                for p in stale:
                    self._bid_snapshots[p] = LateDeadline(now_ms, p, ends.get(p), committed.get(p))
            for key, (partition, _) in new.items():
                self._late[key] = self._bid_snapshots[partition]
        ready = []
        for key, deadline_ms in late:
            waiting = self._late[key]
            if waiting.caught_up(self._bids_read.get(waiting.partition, -1)):
                log.info("late_deadline", call_id=key[0], late_ms=now_ms - deadline_ms, waited_ms=now_ms - waiting.seen_ms)
                ready.append(key)
            elif now_ms - waiting.seen_ms >= self.late_deadline_hold_ms:
                log.warning(
                    "late_deadline_concluded_unread",
                    call_id=key[0],
                    partition=waiting.partition,
                    end=waiting.end,
                    read=self._bids_read.get(waiting.partition),
                    late_ms=now_ms - deadline_ms,
                )
                ready.append(key)
        return ready

    def _partition_of(self, call_id: str) -> int:
        """The partition of the call's events (every producer keys them by call id, default partitioner)."""
        return (murmur2(call_id.encode()) & 0x7FFFFFFF) % self.kafka.partitions

    async def _bid_positions(self, partitions: set[int]) -> tuple[dict[int, int | None], dict[int, int | None]]:
        """bid.received's end offsets (confirmed by a fetch) and the router group's committed offsets now."""
        tps = [TopicPartition(BID_RECEIVED.name, p) for p in sorted(partitions)]
        consumer = make_consumer(self.kafka, self.app_id, f"{self.app_id}-late-deadlines")
        await consumer.start()  # carries the group id but never joins it: only asks for committed offsets
        try:
            ends = await confirmed_end_offsets(consumer, self.kafka, tps, f"{self.app_id}-late-deadlines")
            committed = {tp.partition: await consumer.committed(tp) for tp in tps}
        finally:
            await consumer.stop()
        return {tp.partition: end for tp, end in ends.items()}, committed

    async def sweep(self) -> None:
        """Housekeeping every sweep_interval_s: reap calls whose end never came, forget old finished calls."""
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
        call_ids = list(self.auctions.keys())
        for i in range(0, len(call_ids), SWEEP_CHUNK):
            if i:
                await asyncio.sleep(0)
            for call_id in call_ids[i : i + SWEEP_CHUNK]:
                rec = self.auctions.get(call_id)
                offer = rec.get("offer") if rec is not None and rec.get("phase") == "offered" else None
                if not offer:
                    continue
                # Offers made before offered_ms was kept: routing started earlier still, so at worst early by the routing time.
                offered_ms = offer.get("offered_ms") or rec["ctx"]["routing_started_ms"]
                if now_ms - offered_ms < self.max_call_duration_ms:
                    continue
                key = (call_id, offer["attempt"])
                live.add(key)
                if key not in self._lost_offer_sent:
                    self._lost_offer_sent.add(key)
                    await self.deadlines.send(key=call_id.encode(), value=f"{REAP_PREFIX}{offer['attempt']}".encode())
                    sent += 1
        self._lost_offer_sent &= live
        return sent

    async def signal_forgettable(self) -> int:
        """Send "forget" (keyed by call id, so to the partition owning the entry) for old finished entries."""
        now_ms = int(time.time() * 1000)
        # Keys only (cheap); the values in chunks with a yield between them, so a table of a day's
        # calls never stalls the loop for long (docs/ROUTER.md has the numbers).
        call_ids = list(self.finished.keys())
        old: list[str] = []
        for i in range(0, len(call_ids), SWEEP_CHUNK):
            if i:
                await asyncio.sleep(0)
            chunk = ((c, self.finished.get(c)) for c in call_ids[i : i + SWEEP_CHUNK])
            old += forgettable(
                ((c, e) for c, e in chunk if e is not None), now_ms, self.finished_retention_ms, self._finished_first_seen_ms
            )
        sent = 0
        for call_id in old:
            if call_id not in self._forget_sent:
                self._forget_sent.add(call_id)
                await self.deadlines.send(key=call_id.encode(), value=FORGET.encode())
                sent += 1
        self._forget_sent = {c for c in self._forget_sent if c in self.finished}
        for call_id in [c for c in self._finished_first_seen_ms if c not in self.finished]:
            del self._finished_first_seen_ms[call_id]
        return sent


def create_app(settings: RouterSettings, config: RoutingConfig) -> tuple[RouterApp, Router]:
    """Build the Faust app (nothing connects until it is started)."""
    kafka = settings.kafka
    data_dir = settings.data_dir or tempfile.mkdtemp(prefix="switchboard-router-")
    app = RouterApp(
        settings.app_id,
        fetch_max_wait_ms=kafka.fetch_max_wait_ms,
        broker=[f"kafka://{hp.strip()}" for hp in kafka.bootstrap_servers.split(",") if hp.strip()],
        # TLS/SASL as every aiokafka client of Switchboard has it (KafkaSettings.client_kwargs).
        broker_credentials=kafka.faust_credentials(),
        store="memory://",  # state lives in the changelog topics; recovered on restart
        datadir=str(data_dir),
        topic_partitions=kafka.partitions,
        topic_replication_factor=kafka.replication_factor,
        topic_disable_leader=True,
        broker_session_timeout=kafka.session_timeout_ms / 1000,
        broker_rebalance_timeout=kafka.rebalance_timeout_ms / 1000,
        broker_heartbeat_interval=kafka.heartbeat_interval_ms / 1000,
        producer_linger=kafka.linger_ms / 1000,
        consumer_auto_offset_reset="earliest",
        web_enabled=bool(settings.web_port),
        web_host="127.0.0.1",
        web_port=settings.web_port or 6066,
        web_bind="127.0.0.1",
    )
    router = Router(app, config, settings)
    app.agent(router.source, name="route")(router.process)
    app.agent(router.ledger_source, name="ledger")(router.bookkeeper.process)
    app.timer(settings.deadline_tick_ms / 1000, name="deadlines")(router.signal_expired)
    app.timer(settings.sweep_interval_s, name="sweep")(router.sweep)
    return app, router
