"""The call side (agent `route`, key call id): each event of a call → core.engine → reservations,
publishing and the call's records. Dispatch on the message topic:

  ivr.completed     → start routing the call (core.engine.start_routing)
  bid.received      → fill the auction in flight; conclude when engine.can_conclude_early says so
                      (everyone answered, or parallel_first's first qualified answer, in arrival order)
  post.answered     → ping_post: the winner accepted the post (→ the reservation, as any offer) or
                      rejected it (→ engine.post_answered(accepted=False): the next highest bid)
  router.deadlines  → an auction's deadline passed; conclude with the answers so far; or a post's
                      deadline passed without an answer: rejected "timeout"; or the sweep's
                      "reap:<attempt>" / "forget" (sweeps.py)
  <app>.replies     → the ledger granted or denied a reservation
  call.ended        → the outcome of the offer in flight: a sale that stands finishes the call;
                      no answer / busy / reject / early buyer hang-up re-routes (engine.offer_failed);
                      routing_pending (the caller left before any offer rang) → rejected "abandoned"
                      (engine.caller_left), also when it overtakes the call's ivr.completed

An offer (engine RouteToBuyer) is never published directly: the call side first sends a
`reserve` to the ledger partition of the buyer, which re-checks the caps against the exact state
and answers. Granted → call.routed (attempt n); denied → engine.reservation_denied, the next
candidate, without using an attempt. The call stays open (its CallRecord in `auctions`) until its
call.ended: then the slot is released to the ledger and, if the sale does not stand, the call is
re-routed (call.routed attempt n+1, call.queued or call.rejected). Eligibility and ranking read
this worker's LoadView (view.py): the ledger's published state plus its own pending changes.

Calls whose call.ended never comes (docs/ROUTER.md): the ledger's sweep releases the buyer's slot
(bookkeeper.py, "reap"); the call side forgets the offer max_call_duration_s after it was made
(the call is finished "reaped", nothing is published), so a call.ended arriving later is ignored
like any other for a finished call. `finished` entries are forgotten finished_retention_s after
the call ended; an ivr.completed older than that is ignored, so forgetting can never route a
call twice.

Dedupe (at-least-once everywhere): one call.routed per attempt (`CallRecord.routed`), at most one
call.rejected (the record is gone after it; `finished` stops a new start), a call.ended counts only
for the offer in flight (its attempt and buyer), a reply only for the reservation in flight, a
post.answered only for the post in flight (its auction, buyer and attempt). A grant nobody waits
for any more (the call moved on) is released at once.

`Calls` is one class: every handler reads and writes the same call's record and ends in `apply`,
which carries out the engine's next action through the same few steps (ping, post, reserve, offer,
terminal); its collaborators (records, publisher, view, the timers' BidsRead) are passed in.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import structlog
from faust.types import EventT

from switchboard.core import engine, reasons
from switchboard.core.call_end import meaning_of
from switchboard.core.config import RoutingConfig
from switchboard.core.eligibility import CallFacts
from switchboard.core.ledger import buyer_timezone
from switchboard.platform import codec
from switchboard.platform.topics import CALL_QUEUED, CALL_REJECTED, CALL_ROUTED, PING_REQUESTED, POST_REQUESTED
from switchboard.services.router import protocol
from switchboard.services.router.deadlines import BidsRead
from switchboard.services.router.outlook import QueueOutlook
from switchboard.services.router.publishing import Publisher, ts_from_ms
from switchboard.services.router.record import (
    Auction,
    CallRecord,
    CallRecords,
    Finished,
    FinishedCalls,
    FinishedKind,
    Offer,
    Post,
    Reservation,
)
from switchboard.services.router.view import LoadView
from switchboard.v1 import events_pb2 as pb

log = structlog.get_logger("router")


def _now() -> datetime:
    return datetime.now(UTC)


def facts_of(ivr: pb.IvrCompleted) -> CallFacts:
    """What eligibility reads of a call: its ivr.completed (or the one rebuilt from its hand-off to a queue)."""
    return CallFacts(
        call_id=ivr.call_id,
        campaign_id=ivr.campaign_id,
        publisher_id=ivr.publisher_id,
        state=ivr.caller.state,
        zip=ivr.caller.zip,
        area_code=ivr.caller.area_code,
        answers=dict(ivr.answers),
    )


class Calls:
    def __init__(
        self,
        config: RoutingConfig,
        records: CallRecords,
        finished: FinishedCalls,
        view: LoadView,
        publisher: Publisher,
        bids_read: BidsRead,
        deadlines_topic: str,
        replies_topic: str,
        finished_retention_ms: int,
        outlook: QueueOutlook | None = None,
    ) -> None:
        self.config = config
        self.records = records
        self.finished = finished
        self.view = view
        self.publisher = publisher
        self.bids_read = bids_read
        self.deadlines_topic = deadlines_topic
        self.replies_topic = replies_topic
        self.finished_retention_ms = finished_retention_ms
        self.outlook = outlook or QueueOutlook()  # the queues' latest summaries: call.queued's position and wait

    # ------------------------------------------------------------ stream side

    async def process(self, stream: Any) -> None:
        async for event in stream.events():
            self.bids_read.saw(event.message)
            try:
                await self.handle(event)
            except Exception as exc:  # Faust would ack and drop the message: dead-letter it and go on
                log.exception("handler_failed", topic=event.message.topic, offset=event.message.offset)
                await self.publisher.dead_letter(event, f"handler error: {type(exc).__name__}: {exc}")

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
                await self.publisher.dead_letter(event, f"undecodable: {exc}")
                return
            if reply["type"] == "granted" or reply["type"] == "denied":
                await self.on_reply(reply)
            else:
                await self.publisher.dead_letter(event, f"not a reply: {reply['type']!r}")
            return
        try:
            msg = codec.decode(topic, value)
        except codec.UndecodableEvent as exc:
            await self.publisher.dead_letter(event, f"undecodable: {exc}")
            return
        # codec.decode returns the message type of the topic it was given.
        if isinstance(msg, pb.IvrCompleted):
            await self.on_ivr_completed(msg)
        elif isinstance(msg, pb.BidReceived):
            await self.on_bid(msg)
        elif isinstance(msg, pb.CallEnded):
            await self.on_call_ended(msg)
        elif isinstance(msg, pb.PostAnswered):
            await self.on_post_answered(msg)
        elif isinstance(msg, pb.CallOverflowed):
            await self.on_overflowed(msg)

    async def on_ivr_completed(self, ivr: pb.IvrCompleted) -> None:
        call_id = ivr.call_id
        finished = self.finished.get(call_id)
        hung_up = finished is not None and finished.kind == FinishedKind.HUNG_UP
        if (finished is not None and not hung_up) or call_id in self.records:
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
        facts = facts_of(ivr)
        now = _now()
        started_ms = ivr.occurred_at.ToMilliseconds() if ivr.HasField("occurred_at") else int(now.timestamp() * 1000)
        rec = CallRecord.opened(ivr, started_ms)
        if hung_up:  # the caller's hang-up (routing_pending) overtook this event
            await self.apply(call_id, rec, engine.caller_left(engine.Progress(call=facts), "before routing started"))
            return
        await self.apply(call_id, rec, engine.start_routing(self.config, facts, now, self.view))

    async def on_overflowed(self, overflowed: pb.CallOverflowed) -> None:
        """The queue gave the call back (docs/ACD.md, Overflow): route it on from the tier after the queue's.

        Only a call this router handed to a queue and has not heard of since: a redelivered
        call.overflowed finds the call open again or finished another way, and changes nothing.
        """
        queued = overflowed.queued
        call_id = overflowed.call_id
        finished = self.finished.get(call_id)
        if call_id in self.records or finished is None or finished.kind not in (FinishedKind.QUEUED, FinishedKind.QUEUED_HUNG_UP):
            log.info("duplicate_overflow_ignored", call_id=call_id)
            return
        ivr = pb.IvrCompleted(
            event_id=codec.new_id(),
            call_id=call_id,
            occurred_at=queued.routing_started_at,
            call_started_at=queued.call_started_at,
            campaign_id=queued.campaign_id,
            publisher_id=queued.publisher_id,
            caller=queued.caller,
            answers=dict(queued.answers),
            qualified=True,
        )
        facts = facts_of(ivr)
        started_ms = (
            queued.routing_started_at.ToMilliseconds() if queued.HasField("routing_started_at") else int(time.time() * 1000)
        )
        self.finished.discard(call_id)
        rec = CallRecord.opened(ivr, started_ms)
        log.info("call_overflowed", call_id=call_id, queue_id=queued.queue_id, reason=overflowed.reason)
        if finished.kind == FinishedKind.QUEUED_HUNG_UP:  # the caller left while it waited: nobody to sell it to
            gone = engine.Progress(call=facts, tier_index=queued.tier_index + 1, attempt=max(1, overflowed.attempt))
            gone.trace.CopyFrom(overflowed.trace)
            await self.apply(call_id, rec, engine.caller_left(gone, "while queued"))
            return
        step = engine.resume_after_queue(
            self.config, facts, queued.tier_index, overflowed.attempt, overflowed.trace, _now(), self.view
        )
        await self.apply(call_id, rec, step)

    async def on_bid(self, bid: pb.BidReceived) -> None:
        answer = engine.BidAnswer.from_pb(bid)
        if answer.outcome == "bid" and answer.amount is not None:
            # The buyer's standing bid (RTB buyers in standing-price tiers, direct's re-offer order).
            at = codec.ts_to_datetime(bid.occurred_at) if bid.HasField("occurred_at") else _now()
            msg = protocol.Bid(type="bid", buyer_id=bid.buyer_id, amount=str(answer.amount), at=at.isoformat())
            await self.publisher.to_ledger(bid.buyer_id, msg)
        rec = self.records.get(bid.call_id)
        auction = rec.auction if rec is not None else None
        if rec is None or auction is None or auction.auction_id != bid.auction_id or bid.buyer_id not in auction.pinged:
            log.info("stale_bid", call_id=bid.call_id, auction_id=bid.auction_id, buyer_id=bid.buyer_id)
            return
        if bid.buyer_id in auction.answers:
            return  # a redelivered answer: the first one counts
        auction = auction.answered(answer)
        rec = rec.waiting_for(auction)
        progress = rec.progress()
        if engine.can_conclude_early(progress, auction.pinged, auction.answers):
            await self.conclude(bid.call_id, rec, auction, progress)
        else:
            self.records.put(bid.call_id, rec)  # the changelog records the new answer

    async def on_deadline(self, call_id: str, signal: str) -> None:
        if signal == protocol.FORGET:
            self.forget(call_id)
            return
        rec = self.records.get(call_id)
        if signal.startswith(protocol.REAP_PREFIX):
            offer = rec.offer if rec is not None else None
            if offer is not None and protocol.reap_offer(offer.attempt) == signal:
                # The edge never reported this offer's end. The ledger's own sweep frees the buyer's
                # slot (not billed); here the call stops waiting for it.
                log.warning("offer_reaped", call_id=call_id, buyer_id=offer.buyer_id, attempt=offer.attempt, billed=False)
                self.finish(call_id, FinishedKind.REAPED)
            return
        if signal.startswith(protocol.POST_DEADLINE_PREFIX):
            post = rec.post if rec is not None else None
            if rec is not None and post is not None and protocol.post_deadline(post.auction_id, post.attempt) == signal:
                detail = f"no answer before the post deadline ({post.timeout_ms} ms)"
                await self.post_outcome(call_id, rec, post, False, reasons.TIMEOUT, detail)
            return
        auction = rec.auction if rec is not None else None
        if rec is None or auction is None or auction.auction_id != signal:
            return  # concluded already
        await self.conclude(call_id, rec, auction, rec.progress())

    async def conclude(self, call_id: str, rec: CallRecord, auction: Auction, progress: engine.Progress) -> None:
        step = engine.conclude_auction(self.config, progress, auction.pinged, auction.answers, _now(), self.view)
        await self.apply(call_id, rec, step)

    async def on_reply(self, reply: protocol.Reply) -> None:
        self.view.apply(reply.get("view"))
        call_id, buyer_id = reply["call_id"], reply["buyer_id"]
        rec = self.records.get(call_id)
        pending = rec.reservation if rec is not None else None
        if rec is not None and pending is not None and pending.reservation_id == reply["reservation_id"]:
            if reply["type"] == "granted":
                self.view.answered(call_id, granted=True)
                await self.offer(call_id, rec, pending)
            else:
                self.view.answered(call_id, granted=False)
                step = engine.reservation_denied(self.config, rec.progress(), reply["rule"], reply["detail"], _now(), self.view)
                await self.apply(call_id, rec, step)
            return
        if reply["type"] != "granted":
            return  # a stale denial changes nothing
        holds = {w.buyer_id for w in (rec.reservation, rec.offer) if w is not None} if rec is not None else set()
        if buyer_id not in holds:
            # The call moved on (e.g. a redelivered event made a new decision): free the slot now.
            log.info("stale_grant_released", call_id=call_id, buyer_id=buyer_id)
            await self.release(call_id, buyer_id, _now(), 0, False)

    async def on_post_answered(self, answered: pb.PostAnswered) -> None:
        call_id = answered.call_id
        rec = self.records.get(call_id)
        post = rec.post if rec is not None else None
        if (
            rec is None
            or post is None
            or (post.auction_id, post.buyer_id, post.attempt) != (answered.auction_id, answered.buyer_id, answered.attempt)
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
        reason = answered.reason or ("" if answered.accepted else reasons.POST_REJECTED)
        await self.post_outcome(call_id, rec, post, answered.accepted, reason, f"in {answered.latency_ms} ms")

    async def post_outcome(self, call_id: str, rec: CallRecord, post: Post, accepted: bool, reason: str, how: str) -> None:
        """The post in flight was answered (or timed out): the engine picks the reservation or the next bid."""
        progress = rec.progress()
        verdict = "accepted" if accepted else f"rejected: {reason}"
        progress.trace.notes.append(f"post to {post.buyer_id} (offer {post.attempt}, {post.price}) {verdict} ({how})")
        log.info("post_answered", call_id=call_id, buyer_id=post.buyer_id, attempt=post.attempt, accepted=accepted, reason=reason)
        step = engine.post_answered(self.config, progress, accepted, _now(), self.view, reason=reason)
        await self.apply(call_id, rec, step)

    async def on_call_ended(self, ended: pb.CallEnded) -> None:
        call_id = ended.call_id
        rec = self.records.get(call_id)
        offer = rec.offer if rec is not None else None
        if rec is None or offer is None:
            if ended.routing_pending:
                await self.caller_left(call_id, rec)
            else:
                log.info("call_ended_ignored", call_id=call_id, reason="no offer in flight")  # queue calls, redeliveries
            return
        if (ended.attempt and ended.attempt != offer.attempt) or (ended.buyer_id and ended.buyer_id != offer.buyer_id):
            log.info(
                "call_ended_ignored",
                call_id=call_id,
                attempt=ended.attempt,
                buyer_id=ended.buyer_id,
                reason="not the offer in flight",
            )
            return
        # What the call.ended means is core.call_end's one rule (the queue, the ivr desk and the simulator
        # read it too): an answered call is over whoever hung up, billable or not; only the buyer's
        # failures (no answer, busy, reject, early hang-up) re-route.
        end = meaning_of(ended.outcome, ended.connected_seconds, offer.billable_after_s)
        seconds = end.connected_seconds
        ended_at = codec.ts_to_datetime(ended.occurred_at) if ended.HasField("occurred_at") else _now()
        await self.release(
            call_id, offer.buyer_id, ended_at, seconds, end.answered, offer.billable_after_s, rec.ivr_completed().campaign_id
        )
        failure = end.offer_outcome
        if failure is None:
            log.info("call_finished", call_id=call_id, buyer_id=offer.buyer_id, attempt=offer.attempt, seconds=seconds)
            self.finish(call_id, FinishedKind.ROUTED)
            return
        step = engine.offer_failed(self.config, rec.progress(), failure, _now(), self.view)
        await self.apply(call_id, rec, step)

    async def caller_left(self, call_id: str, rec: CallRecord | None) -> None:
        """The caller hung up while this router was still deciding (no offer ringing): rejected "abandoned".

        Pings, a post or a reservation in flight become stale (a grant is released when it comes).
        Before the call's ivr.completed got here (another topic: no order between them), `finished`
        remembers the hang-up, and the ivr.completed, when it comes, ends the call instead of routing it.
        """
        if rec is not None:
            phase = None if rec.phase is None else rec.phase.value
            log.info("caller_left_while_routing", call_id=call_id, phase=phase)
            await self.apply(call_id, rec, engine.caller_left(rec.progress(), f"while routing ({phase})"))
        elif call_id not in self.finished:
            log.info("caller_left_before_routing", call_id=call_id)
            self.finish(call_id, FinishedKind.HUNG_UP)
        elif (finished := self.finished.get(call_id)) is not None and finished.kind == FinishedKind.QUEUED:
            # The queue ends it; remembered in case the call overflows back here (on_overflowed).
            self.finished.put(call_id, Finished(FinishedKind.QUEUED_HUNG_UP, finished.at_ms))
        # else: decided and finished already (the decision and the hang-up crossed): nothing to do

    # ------------------------------------------------------------ carrying out the engine's actions

    async def apply(self, call_id: str, rec: CallRecord, step: engine.Step) -> None:
        """Carry out the engine's action: ping, post, reserve an offer, or one terminal event.

        `rec` may still hold the phase the step answered (the post, the offer): the next store
        replaces it, and a terminal event deletes the record.
        """
        action, progress = step.action, step.progress
        rec = rec.stepped(progress)
        if isinstance(action, engine.RequestBids):
            await self.ping(call_id, rec, action, progress)
        elif isinstance(action, engine.PostToBuyer):
            await self.post(call_id, rec, action)
        elif isinstance(action, engine.RouteToBuyer):
            await self.reserve(call_id, rec, action)
        else:
            await self.terminal(call_id, rec, action, progress)

    async def ping(self, call_id: str, rec: CallRecord, action: engine.RequestBids, progress: engine.Progress) -> None:
        auction_id = codec.new_id()
        facts = progress.call
        deadline_ms = int(action.deadline.timestamp() * 1000)
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
            deadline=ts_from_ms(deadline_ms),
            state=facts.state,
            zip=facts.zip,
            area_code=facts.area_code,
            answers=dict(facts.answers),
        )
        if action.caller_number_to:
            # Only when a pinged buyer may see it (core.sharing); the bidder shows it to those alone.
            ping.caller_number = rec.ivr_completed().caller.number
        self.records.put(call_id, rec.waiting_for(Auction(auction_id, tuple(action.buyer_ids), deadline_ms)))
        await self.publisher.send(PING_REQUESTED.name, call_id, ping)

    async def post(self, call_id: str, rec: CallRecord, action: engine.PostToBuyer) -> None:
        """ping_post: post the call's full data to the winner and wait (phase "posting").

        The caller number goes only to a buyer with share_caller_number (include_caller_number).
        Deadline: the campaign's routing.timeout_ms from now; the bidder answers before it, and
        the timer treats a post still unanswered then as rejected "timeout".
        """
        ivr = rec.ivr_completed()
        caller = pb.Caller()
        caller.CopyFrom(ivr.caller)
        if not action.include_caller_number:
            caller.number = ""
        timeout_ms = self.config.campaign(ivr.campaign_id).routing.timeout_ms
        deadline_ms = int(time.time() * 1000) + timeout_ms
        won = rec.auction or rec.post  # the auction the buyer won (a rejected post's next bid: the same one)
        auction_id = won.auction_id if won is not None else codec.new_id()
        price = f"{action.price:.2f}"
        out = pb.PostRequested(
            event_id=codec.new_id(),
            call_id=call_id,
            occurred_at=codec.now_ts(),
            auction_id=auction_id,
            buyer_id=action.buyer_id,
            price=price,
            campaign_id=ivr.campaign_id,
            publisher_id=self.publisher.publisher_of(ivr),
            caller=caller,
            answers=dict(ivr.answers),
            deadline=ts_from_ms(deadline_ms),
            attempt=action.attempt,
        )
        post = Post(auction_id, action.buyer_id, action.attempt, price, deadline_ms, timeout_ms)
        self.records.put(call_id, rec.waiting_for(post))
        log.info(
            "post_requested",
            call_id=call_id,
            buyer_id=action.buyer_id,
            attempt=action.attempt,
            shares_number=action.include_caller_number,
        )
        await self.publisher.send(POST_REQUESTED.name, call_id, out)

    async def reserve(self, call_id: str, rec: CallRecord, action: engine.RouteToBuyer) -> None:
        reservation = Reservation(
            reservation_id=codec.new_id(),
            buyer_id=action.buyer_id,
            destination=action.destination,
            price=f"{action.price:.2f}",
            tier_index=action.tier_index,
            attempt=action.attempt,
            strategy=action.strategy,
        )
        self.records.put(call_id, rec.waiting_for(reservation))
        self.view.reserve(call_id, action.buyer_id, action.price, _now(), action.tier_key, action.weight_pool)
        msg = protocol.Reserve(
            type="reserve",
            reservation_id=reservation.reservation_id,
            call_id=call_id,
            buyer_id=action.buyer_id,
            price=reservation.price,
            attempt=action.attempt,
            tier_key=action.tier_key,
            pool=[[b, w] for b, w in action.weight_pool],
        )
        await self.publisher.to_ledger(action.buyer_id, msg)

    async def offer(self, call_id: str, rec: CallRecord, res: Reservation) -> None:
        """The reservation was granted: publish call.routed for this attempt (once) and wait for call.ended."""
        buyer = self.config.buyer(res.buyer_id)
        if res.attempt not in rec.routed:
            ivr = rec.ivr_completed()
            out = self.publisher.decision(
                pb.CallRouted,
                call_id,
                ivr,
                rec.routing_started_ms,
                trace=rec.progress().trace,
                kind=pb.TARGET_KIND_BUYER,
                buyer_id=res.buyer_id,
                destination=res.destination,
                price=res.price,
                tier_index=res.tier_index,
                attempt=res.attempt,
                strategy=res.strategy,
                caller=ivr.caller,
                answers=dict(ivr.answers),
                billable_after_s=buyer.billable_after_s,
            )
            await self.publisher.send(CALL_ROUTED.name, call_id, out)
            rec = rec.routed_attempt(res.attempt)
            log.info(
                "call_routed",
                call_id=call_id,
                buyer_id=res.buyer_id,
                price=res.price,
                tier=res.tier_index,
                attempt=res.attempt,
            )
        offer = Offer(res.buyer_id, res.attempt, buyer.billable_after_s, offered_ms=int(time.time() * 1000))
        self.records.put(call_id, rec.waiting_for(offer))

    async def release(
        self,
        call_id: str,
        buyer_id: str,
        ended_at: datetime,
        seconds: int,
        answered: bool,
        billable_after_s: int | None = None,
        campaign_id: str = "",
    ) -> None:
        try:
            buyer = self.config.buyer(buyer_id)
            tz, billable = buyer_timezone(buyer), buyer.billable_after_s
        except StopIteration:
            tz, billable = "UTC", 0
        if billable_after_s is not None:
            billable = billable_after_s  # the offer's terms, as they were when it was made
        self.view.release(call_id, buyer_id, ended_at, seconds, billable, tz, answered)
        msg = protocol.Release(
            type="release",
            call_id=call_id,
            buyer_id=buyer_id,
            connected_seconds=seconds,
            answered=answered,
            billable_after_s=billable,
            ended_at=ended_at.isoformat(),
            campaign_id=campaign_id,
        )
        await self.publisher.to_ledger(buyer_id, msg)

    async def terminal(
        self, call_id: str, rec: CallRecord, action: engine.HandToQueue | engine.RejectCall, progress: engine.Progress
    ) -> None:
        ivr = rec.ivr_completed()
        out: pb.CallQueued | pb.CallRejected
        if isinstance(action, engine.HandToQueue):
            out = self.publisher.decision(
                pb.CallQueued,
                call_id,
                ivr,
                rec.routing_started_ms,
                trace=progress.trace,
                queue_id=action.queue_id,
                caller=ivr.caller,
                answers=dict(ivr.answers),
                tier_index=action.tier_index,
                attempt=action.attempt,
            )
            out.position, out.projected_wait_s = self.outlook.stamp(action.queue_id)
            topic, kind = CALL_QUEUED.name, FinishedKind.QUEUED
            log.info("call_queued", call_id=call_id, queue_id=action.queue_id)
        else:
            out = self.publisher.decision(
                pb.CallRejected,
                call_id,
                ivr,
                rec.routing_started_ms,
                trace=progress.trace,
                reason=action.reason,
                detail=action.detail,
                announcement=action.announcement,
            )
            topic, kind = CALL_REJECTED.name, FinishedKind.REJECTED
            log.info("call_rejected", call_id=call_id, reason=action.reason, detail=action.detail)
        # Sent before the tables change: a crash in between repeats the event (consumers dedupe by call id).
        await self.publisher.send(topic, call_id, out)
        self.finish(call_id, kind)

    def finish(self, call_id: str, kind: FinishedKind) -> None:
        self.view.finished(call_id)  # a reservation still in flight (the caller left meanwhile) stops counting
        self.finished.put(call_id, Finished(kind, int(time.time() * 1000)))
        self.records.discard(call_id)

    def forget(self, call_id: str) -> None:
        """The sweep found the finished entry old enough: delete it (checked again on this worker's clock)."""
        entry = self.finished.get(call_id)
        if entry is None:
            return  # forgotten already (a duplicate from a standby's sweep)
        if entry.at_ms is not None and int(time.time() * 1000) - entry.at_ms < self.finished_retention_ms:
            return  # finished again since, or the sender's clock runs ahead
        self.finished.discard(call_id)
