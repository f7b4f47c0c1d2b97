"""Ping signatures (Stripe-style), shared by the bidder (signs) and the buyer simulator (verifies).

Header `X-Switchboard-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` where the
HMAC key is the buyer's secret and the message is `"<t>.".encode() + raw body`.
Signing the timestamp with the body lets a buyer reject replays: it checks the
HMAC and that `t` is within a tolerance of its own clock. Several `v1=` entries
may appear (secret rotation); one match is enough. docs/BUYER_API.md documents
the algorithm for buyers.
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


def parse_header(header: str) -> tuple[int | None, list[str]]:
    """(timestamp, [v1 signatures]) of a header value; (None, []) parts when absent or garbled."""
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
        elif k == "v1":
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
# A buyer with a secret signs its answer the same way (header on the HTTP
# response, metadata on the gRPC call, over the raw answer bytes) so that an
# answer forged or altered on the way cannot change who gets a call.


def answer_signature_problem(
    secret: str | bytes, header: str | None, body: bytes, tolerance_s: float = DEFAULT_TOLERANCE_S, now: float | None = None
) -> str | None:
    """None when `header` validly signs the answer `body`; otherwise a short, secret-free reason for the trace."""
    if not header:
        return "answer not signed"
    t, sigs = parse_header(header)
    if t is None or not sigs:
        return "answer signature garbled"
    current = time.time() if now is None else now
    if abs(current - t) > tolerance_s:
        return f"answer signature timestamp {int(current - t)} s off"
    if not verify_signature(secret, header, body, tolerance_s, now=current):
        return "answer signature does not verify"
    return None
