"""The buyer-facing ping protocol as pure functions (docs/BUYER_API.md is its contract).

- `shown_ping` / `shown_post`: the ping or post as one buyer may see it (core.sharing: the caller number
  only if shared, only the answers of its `share_answers`); what the body builders below are given.
- `ping_json(...)`: the HTTP request body; `ping_proto(...)`: the gRPC request.
- `parse_json_answer(raw)` / `parse_proto_answer(msg)`: a buyer's answer → `Answer`
  (BID, DECLINE or NO_BID "malformed"). Nothing a buyer sends raises here.
- The post (ping_post's second step): `post_json` / `post_proto` build it from a
  post.requested, `parse_json_post_answer` / `parse_proto_post_answer` read the buyer's
  `{"accept": true}` / `{"accept": false, "reason": ...}` into a `PostResult`.
  HTTP pings and posts go to the same URL and differ by the body's "type" field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC
from decimal import Decimal, InvalidOperation

from switchboard.core import reasons, sharing
from switchboard.core.config import Buyer
from switchboard.v1 import bidding_pb2 as bpb
from switchboard.v1 import events_pb2 as pb

CENT = Decimal("0.01")
MAX_REASON_CHARS = 200


@dataclass(frozen=True)
class Answer:
    """One buyer's answer, ready to become a bid.received."""

    outcome: pb.BidOutcome
    amount: str = ""
    reason: str = ""
    available: bool = False
    detail: str = ""  # why a NO_BID happened, for the log only (never a secret, never the body)

    @staticmethod
    def no_bid(reason: str, detail: str = "") -> Answer:
        return Answer(pb.BID_OUTCOME_NO_BID, reason=reason, detail=detail)


class Malformed(ValueError):
    pass


def rfc3339(ping: pb.PingRequested | pb.PostRequested) -> str:
    """The ping's deadline as RFC 3339 UTC with milliseconds ("" when the ping has none)."""
    if not ping.HasField("deadline"):
        return ""
    dt = ping.deadline.ToDatetime(tzinfo=UTC)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def shown_ping(ping: pb.PingRequested, buyer: Buyer) -> pb.PingRequested:
    """`ping` as `buyer` may see it: the router put the number in only if some pinged buyer may see it."""
    shown = sharing.for_buyer(buyer, ping.strategy, sharing.Outlet.PING)
    out = pb.PingRequested()
    out.CopyFrom(ping)
    if not shown.number:
        out.caller_number = ""
    shown.drop_hidden_answers(out.answers)
    return out


def shown_post(post: pb.PostRequested, buyer: Buyer) -> pb.PostRequested:
    """`post` as `buyer` may see it (posts are ping_post's: the router shares the number by the same rule)."""
    shown = sharing.for_buyer(buyer, "ping_post", sharing.Outlet.POST)
    out = pb.PostRequested()
    out.CopyFrom(post)
    if not shown.number:
        out.caller.number = ""
    shown.drop_hidden_answers(out.answers)
    return out


def ping_json(ping: pb.PingRequested, buyer_id: str, timeout_ms: int) -> bytes:
    """The HTTP body of the ping to one buyer (`shown_ping`'s: `caller_number` is "" unless shared with it)."""
    body = {
        "type": "ping",  # the post goes to the same URL with "type": "post"
        "buyer_id": buyer_id,
        "call_id": ping.call_id,
        "auction_id": ping.auction_id,
        "campaign_id": ping.campaign_id,
        "publisher_id": ping.publisher_id,
        "state": ping.state,
        "zip": ping.zip,
        "area_code": ping.area_code,
        "caller_number": ping.caller_number,
        "answers": dict(sorted(ping.answers.items())),
        "deadline": rfc3339(ping),
        "timeout_ms": timeout_ms,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def ping_proto(ping: pb.PingRequested, buyer_id: str, timeout_ms: int) -> bpb.PingRequest:
    req = bpb.PingRequest(
        buyer_id=buyer_id,
        call_id=ping.call_id,
        auction_id=ping.auction_id,
        campaign_id=ping.campaign_id,
        publisher_id=ping.publisher_id,
        state=ping.state,
        zip=ping.zip,
        area_code=ping.area_code,
        answers=dict(ping.answers),
        timeout_ms=timeout_ms,
        caller_number=ping.caller_number,
    )
    if ping.HasField("deadline"):
        req.deadline.CopyFrom(ping.deadline)
    return req


def parse_amount(value: object, max_bid: Decimal) -> str:
    """A bid (JSON number parsed as Decimal, or decimal string) → "37.50"; Malformed otherwise."""
    if isinstance(value, bool) or value is None:
        raise Malformed(f"bid must be a number or decimal string, not {type(value).__name__}")
    if isinstance(value, (int, Decimal)):
        d = Decimal(value)
    elif isinstance(value, str):
        try:
            d = Decimal(value.strip())
        except InvalidOperation:
            raise Malformed("bid is not a decimal number") from None
    else:
        raise Malformed(f"bid must be a number or decimal string, not {type(value).__name__}")
    if not d.is_finite():
        raise Malformed("bid is not finite")
    if d < 0:
        raise Malformed("bid is negative")
    if d > max_bid:
        raise Malformed(f"bid above {max_bid}")
    if d != d.quantize(CENT):
        raise Malformed("bid has more than cents")
    return f"{d.quantize(CENT):.2f}"


def _reason(value: object) -> str:
    text = value if isinstance(value, str) else ""
    # Keep it one short printable line: it ends up in traces and reports.
    text = "".join(ch if ch.isprintable() else " " for ch in text).strip()[:MAX_REASON_CHARS]
    return text or reasons.DECLINED


def _reject_constant(name: str) -> object:
    raise Malformed(f"{name} is not a number")


def answer_from_fields(accept: object, bid: object, available: object, reason: object, max_bid: Decimal) -> Answer:
    """The shared rules of the JSON and gRPC answers (None = field absent)."""
    if accept is not None and not isinstance(accept, bool):
        raise Malformed("accept must be true or false")
    if available is not None and not isinstance(available, bool):
        raise Malformed("available must be true or false")
    if accept is False:
        return Answer(pb.BID_OUTCOME_DECLINE, reason=_reason(reason), available=bool(available))
    if bid is None:
        raise Malformed("bid missing")
    return Answer(pb.BID_OUTCOME_BID, amount=parse_amount(bid, max_bid), available=True if available is None else available)


def parse_json_answer(raw: bytes, max_bid: Decimal) -> Answer:
    try:
        obj = json.loads(raw, parse_float=Decimal, parse_int=Decimal, parse_constant=_reject_constant)
        if not isinstance(obj, dict):
            raise Malformed("answer is not a JSON object")
        return answer_from_fields(obj.get("accept"), obj.get("bid"), obj.get("available"), obj.get("reason"), max_bid)
    except Malformed as exc:
        return Answer.no_bid(reasons.MALFORMED, str(exc))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, absurd nesting
        return Answer.no_bid(reasons.MALFORMED, f"not JSON: {type(exc).__name__}")


def parse_proto_answer(msg: bpb.PingResponse, max_bid: Decimal) -> Answer:
    try:
        return answer_from_fields(
            msg.accept if msg.HasField("accept") else None,
            msg.bid if msg.bid else None,
            msg.available if msg.HasField("available") else None,
            msg.reason,
            max_bid,
        )
    except Malformed as exc:
        return Answer.no_bid(reasons.MALFORMED, str(exc))


def deadline_epoch(ping: pb.PingRequested | pb.PostRequested) -> float | None:
    """The ping's deadline in Unix seconds, None when it has none."""
    if not ping.HasField("deadline"):
        return None
    return ping.deadline.seconds + ping.deadline.nanos / 1e9


# ------------------------------------------------------------------ the post (ping_post)


@dataclass(frozen=True)
class PostResult:
    """A buyer's answer to a post, ready to become a post.answered."""

    accepted: bool
    reason: str = ""  # the buyer's reason for a rejection, or ours (timeout, http_5xx, malformed, ...)
    detail: str = ""  # for the log only

    @staticmethod
    def failed(reason: str, detail: str = "") -> PostResult:
        return PostResult(False, reason, detail)


def post_json(post: pb.PostRequested, timeout_ms: int) -> bytes:
    """The HTTP body of the post (`shown_post`'s: `caller_number` is "" unless shared with the buyer)."""
    body = {
        "type": "post",
        "buyer_id": post.buyer_id,
        "call_id": post.call_id,
        "auction_id": post.auction_id,
        "attempt": post.attempt,
        "campaign_id": post.campaign_id,
        "publisher_id": post.publisher_id,
        "price": post.price,
        "caller_number": post.caller.number,
        "state": post.caller.state,
        "zip": post.caller.zip,
        "area_code": post.caller.area_code,
        "answers": dict(sorted(post.answers.items())),
        "deadline": rfc3339(post),
        "timeout_ms": timeout_ms,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def post_proto(post: pb.PostRequested, timeout_ms: int) -> bpb.PostRequest:
    req = bpb.PostRequest(
        buyer_id=post.buyer_id,
        call_id=post.call_id,
        auction_id=post.auction_id,
        campaign_id=post.campaign_id,
        publisher_id=post.publisher_id,
        price=post.price,
        caller_number=post.caller.number,
        state=post.caller.state,
        zip=post.caller.zip,
        area_code=post.caller.area_code,
        answers=dict(post.answers),
        timeout_ms=timeout_ms,
        attempt=post.attempt,
    )
    if post.HasField("deadline"):
        req.deadline.CopyFrom(post.deadline)
    return req


def parse_json_post_answer(raw: bytes) -> PostResult:
    """`{"accept": true}` → accepted; `{"accept": false, "reason": ...}` → rejected; anything else: "malformed"."""
    try:
        obj = json.loads(raw, parse_constant=_reject_constant)
    except (Malformed, ValueError, RecursionError) as exc:
        return PostResult.failed(reasons.MALFORMED, f"not JSON: {type(exc).__name__}")
    if not isinstance(obj, dict):
        return PostResult.failed(reasons.MALFORMED, "answer is not a JSON object")
    accept = obj.get("accept")
    if not isinstance(accept, bool):
        return PostResult.failed(reasons.MALFORMED, "accept must be true or false")
    if accept:
        return PostResult(True)
    reason = obj.get("reason")
    return PostResult(False, _reason(reason) if reason else reasons.POST_REJECTED)


def parse_proto_post_answer(msg: bpb.PostResponse) -> PostResult:
    if msg.accept:
        return PostResult(True)
    return PostResult(False, _reason(msg.reason) if msg.reason else reasons.POST_REJECTED)
