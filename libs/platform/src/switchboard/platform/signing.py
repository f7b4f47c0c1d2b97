"""Ping signatures (Stripe-style), shared by the bidder (signs) and the buyer simulator (verifies).

Header `X-Switchboard-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` where the
HMAC key is the buyer's secret and the message is `"<t>.".encode() + raw body`.
Signing the timestamp with the body lets a buyer reject replays: it checks the
HMAC and that `t` is within a tolerance of its own clock. Several `v1=` entries
may appear (secret rotation); one match is enough. docs/BUYER_API.md documents
the algorithm for buyers.

A buyer's answer is signed `t=<unix seconds>,v2=<hex>` (`sign_answer`): the same
HMAC over `"<t>.<call_id>.<auction_id>."` + the raw answer, so a signed answer
is good for its own auction only; replayed for another one it does not verify.
"""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "X-Switchboard-Signature"
GRPC_METADATA_KEY = "x-switchboard-signature"  # gRPC metadata keys are lower case
DEFAULT_TOLERANCE_S = 300


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def compute(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `"<timestamp>.<body>"`."""
    return hmac.new(_key(secret), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str | bytes, body: bytes, timestamp: int | None = None) -> str:
    """The header value for `body`: `t=<timestamp>,v1=<hex>` (timestamp defaults to now)."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={compute(secret, t, body)}"


def parse_header(header: str, version: str = "v1") -> tuple[int | None, list[str]]:
    """(timestamp, [signatures of `version`]) of a header value; (None, []) parts when absent or garbled."""
    t: int | None = None
    sigs: list[str] = []
    for part in header.split(","):
        k, sep, v = part.strip().partition("=")
        if not sep:
            continue
        if k == "t":
            try:
                t = int(v)
            except ValueError:
                return None, []
        elif k == version:
            sigs.append(v.strip().lower())
    return t, sigs


def verify_signature(
    secret: str | bytes, header: str | None, body: bytes, tolerance_s: float = DEFAULT_TOLERANCE_S, now: float | None = None
) -> bool:
    """True when `header` carries a valid v1 signature of `body` made within `tolerance_s` of `now`."""
    if not header:
        return False
    t, sigs = parse_header(header)
    if t is None or not sigs:
        return False
    current = time.time() if now is None else now
    if abs(current - t) > tolerance_s:
        return False  # too old (a replay) or from a clock far in the future
    expected = compute(secret, t, body)
    return any(hmac.compare_digest(expected, s) for s in sigs)


# ------------------------------------------------------------------ answers
# A buyer with a secret signs its answer (header on the HTTP response, metadata
# on the gRPC call) over the raw answer bytes AND the call and auction it
# answers, so that an answer forged or altered on the way, or a genuine one
# replayed into another auction, cannot change who gets a call.

ANSWER_VERSION = "v2"


def compute_answer(secret: str | bytes, timestamp: int, call_id: str, auction_id: str, body: bytes) -> str:
    """The hex HMAC-SHA256 of `"<timestamp>.<call_id>.<auction_id>.<body>"`."""
    return hmac.new(_key(secret), f"{timestamp}.{call_id}.{auction_id}.".encode() + body, hashlib.sha256).hexdigest()


def sign_answer(secret: str | bytes, call_id: str, auction_id: str, body: bytes, timestamp: int | None = None) -> str:
    """The header value of an answer to the ping of `auction_id` (call `call_id`): `t=<timestamp>,v2=<hex>`."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},{ANSWER_VERSION}={compute_answer(secret, t, call_id, auction_id, body)}"


def answer_signature_problem(
    secret: str | bytes,
    header: str | None,
    body: bytes,
    call_id: str,
    auction_id: str,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> str | None:
    """None when `header` validly signs the answer `body` to `auction_id` of `call_id`; otherwise a short,
    secret-free reason for the trace."""
    if not header:
        return "answer not signed"
    t, sigs = parse_header(header, ANSWER_VERSION)
    if t is None:
        return "answer signature garbled"
    if not sigs:
        if parse_header(header)[1]:
            return "answer signed v1 (not bound to the auction): sign answers v2 (BUYER_API.md section 5)"
        return "answer signature garbled"
    current = time.time() if now is None else now
    if abs(current - t) > tolerance_s:
        return f"answer signature timestamp {int(current - t)} s off"
    expected = compute_answer(secret, t, call_id, auction_id, body)
    if not any(hmac.compare_digest(expected, s) for s in sigs):
        return "answer signature does not verify (altered, another key, or an answer to another auction)"
    return None
