"""Router-private messages between the call side and the buyer ledger (JSON, never read outside the router).

Topics (all with KafkaSettings.partitions partitions, names from RouterSettings.internal_topic):

  <app>.ledger   key buyer id (or tier key for "swrr"); consumed by the ledger agent, the ONLY
                 writer of buyer state:
                   reserve  {reservation_id, call_id, buyer_id, price, tier_key, pool, attempt}
                   release  {call_id, buyer_id, connected_seconds, answered, billable_after_s, ended_at}
                   reap     {buyer_id}   (sent by the sweep timer: release the buyer's stale open calls)
                   bid      {buyer_id, amount, at}
                   swrr     {tier_key, pool, chosen, call_id}   (sent by the ledger itself on a grant)
  <app>.replies  key call id; consumed by the call-side agent (same partitions as the call's events):
                   granted  {reservation_id, call_id, buyer_id, view}
                   denied   {reservation_id, call_id, buyer_id, rule, detail, view}
  <app>.view     key "load:<buyer id>" / "tier:<tier key>"; every worker reads all of it (no group):
                   {kind: "load"|"tier", key, version, state, recent?}
  router.deadlines  key call id; the timers' signals to the call side (values below: the auction
                 id of an auction whose deadline passed, post_deadline(), reap_offer(), FORGET).

`view` records carry a per-key version (incremented by the single writer), so a reader keeps
the newest whatever order a reply and the view topic deliver them in.

Each message is a TypedDict (the JSON object as it is sent); a decoder checks that the keys its
`type` requires are there (the required keys of its TypedDict), and the values are the writer's:
the router's own code. No `from __future__ import annotations` here: TypedDict tells required
from NotRequired keys at run time only from evaluated annotations.
"""

import json
from collections.abc import Mapping
from typing import Any, Literal, NotRequired, TypedDict, cast


class InvalidMessage(ValueError):
    """Not a router-internal message; dead-lettered."""


class LoadRecord(TypedDict):
    kind: Literal["load"]
    key: str  # buyer id
    version: int
    state: dict[str, Any]  # core.ledger.BuyerLoad.to_dict()


class TierRecord(TypedDict):
    kind: Literal["tier"]
    key: str  # tier key
    version: int
    state: dict[str, Any]  # core.ledger.TierState.to_dict()
    recent: NotRequired[list[str]]  # the call ids of the tier's latest picks


ViewRecord = LoadRecord | TierRecord


class Reserve(TypedDict):
    type: Literal["reserve"]
    reservation_id: str
    call_id: str
    buyer_id: str
    price: str  # two decimals
    attempt: NotRequired[int]
    tier_key: NotRequired[str]
    pool: NotRequired[list[list[Any]]]  # a weight tier's [[buyer id, weight], ...]; empty for other tiers


class Release(TypedDict):
    type: Literal["release"]
    call_id: str
    buyer_id: str
    connected_seconds: int
    answered: bool
    billable_after_s: int
    ended_at: str  # ISO 8601
    campaign_id: NotRequired[str]  # for the revenue metric; absent in releases of older routers


class Reap(TypedDict):
    type: Literal["reap"]
    buyer_id: str


class Bid(TypedDict):
    type: Literal["bid"]
    buyer_id: str
    amount: str
    at: str  # ISO 8601


class Swrr(TypedDict):
    type: Literal["swrr"]
    tier_key: str
    pool: list[list[Any]]  # [[buyer id, weight], ...]
    chosen: str
    call_id: str


class Granted(TypedDict):
    type: Literal["granted"]
    reservation_id: str
    call_id: str
    buyer_id: str
    view: NotRequired[LoadRecord]  # the buyer's load after the grant


class Denied(TypedDict):
    type: Literal["denied"]
    reservation_id: str
    call_id: str
    buyer_id: str
    rule: str
    detail: str
    view: NotRequired[LoadRecord]


Reply = Granted | Denied
Message = Reserve | Release | Reap | Bid | Swrr | Granted | Denied

_TYPES: dict[str, Any] = {
    "reserve": Reserve,
    "release": Release,
    "reap": Reap,
    "bid": Bid,
    "swrr": Swrr,
    "granted": Granted,
    "denied": Denied,
}
# type → the keys a message of that type must have, in declaration order (for the error message).
REQUIRED: dict[str, tuple[str, ...]] = {
    kind: tuple(k for k in t.__annotations__ if k in t.__required_keys__ and k != "type") for kind, t in _TYPES.items()
}
VIEW_REQUIRED = tuple(k for k in LoadRecord.__annotations__ if k in LoadRecord.__required_keys__)


def encode(msg: Mapping[str, object]) -> bytes:
    return json.dumps(msg, separators=(",", ":")).encode()


def decode(value: bytes | None, required: tuple[str, ...] = ("type",)) -> dict[str, Any]:
    try:
        msg = json.loads(value or b"")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidMessage(f"not JSON: {exc}") from exc
    if not isinstance(msg, dict):
        raise InvalidMessage(f"not a JSON object: {type(msg).__name__}")
    missing = [k for k in required if k not in msg]
    if missing:
        raise InvalidMessage(f"missing {', '.join(missing)}")
    return msg


def decode_typed(value: bytes | None) -> Message:
    """Decode and check the fields its `type` needs."""
    msg = decode(value)
    kind = msg["type"]
    if kind not in REQUIRED:
        raise InvalidMessage(f"unknown type {kind!r}")
    missing = [k for k in REQUIRED[kind] if k not in msg]
    if missing:
        raise InvalidMessage(f"{kind}: missing {', '.join(missing)}")
    return cast(Message, msg)  # checked just above


def decode_view(value: bytes | None) -> ViewRecord:
    """A view record; LoadView.apply ignores a kind it does not know."""
    return cast(ViewRecord, decode(value, VIEW_REQUIRED))  # the keys both kinds need are checked by decode


# router.deadlines values besides an auction id.
POST_DEADLINE_PREFIX = "post:"
REAP_PREFIX = "reap:"
FORGET = "forget"  # a finished call to forget (finished_retention_s passed)


def post_deadline(auction_id: str, attempt: int) -> str:
    """The signal of a post's deadline."""
    return f"{POST_DEADLINE_PREFIX}{auction_id}:{attempt}"


def reap_offer(attempt: int) -> str:
    """The signal of an offer made max_call_duration_s ago or more (its call.ended never came)."""
    return f"{REAP_PREFIX}{attempt}"
