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

`view` records carry a per-key version (incremented by the single writer), so a reader keeps
the newest whatever order a reply and the view topic deliver them in.
"""

from __future__ import annotations

import json
from typing import Any


class InvalidMessage(ValueError):
    """Not a router-internal message; dead-lettered."""


def encode(msg: dict[str, Any]) -> bytes:
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


REQUIRED: dict[str, tuple[str, ...]] = {
    "reserve": ("reservation_id", "call_id", "buyer_id", "price"),
    "release": ("call_id", "buyer_id", "connected_seconds", "answered", "billable_after_s", "ended_at"),
    "reap": ("buyer_id",),
    "bid": ("buyer_id", "amount", "at"),
    "swrr": ("tier_key", "pool", "chosen", "call_id"),
    "granted": ("reservation_id", "call_id", "buyer_id"),
    "denied": ("reservation_id", "call_id", "buyer_id", "rule", "detail"),
}


def decode_typed(value: bytes | None) -> dict[str, Any]:
    """Decode and check the fields its `type` needs."""
    msg = decode(value)
    kind = msg["type"]
    if kind not in REQUIRED:
        raise InvalidMessage(f"unknown type {kind!r}")
    missing = [k for k in REQUIRED[kind] if k not in msg]
    if missing:
        raise InvalidMessage(f"{kind}: missing {', '.join(missing)}")
    return msg
