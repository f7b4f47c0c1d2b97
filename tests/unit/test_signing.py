"""Ping signatures: the documented algorithm (docs/BUYER_API.md), replays and tampering rejected."""

from __future__ import annotations

import hashlib
import hmac

from switchboard.platform import signing
from switchboard.platform.signing import verify_signature

SECRET = "whsec_test"
BODY = b'{"call_id":"c1","bid":1}'
T = 1_700_000_000
# printf '%s' '1700000000.{"call_id":"c1","bid":1}' | openssl dgst -sha256 -hmac whsec_test
KNOWN = "87b7b8a63d6d336c74e8fb8ce5d9741952668ce84d15b1d609ac78fa0d3abc50"


def test_known_vector() -> None:
    assert signing.sign(SECRET, BODY, timestamp=T) == f"t={T},v1={KNOWN}"
    assert hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest() == KNOWN


def test_valid_signature_verifies_within_tolerance() -> None:
    header = f"t={T},v1={KNOWN}"
    assert verify_signature(SECRET, header, BODY, tolerance_s=300, now=T + 299)
    assert verify_signature(SECRET, header, BODY, tolerance_s=300, now=T - 10)
    assert verify_signature(SECRET.encode(), header, BODY, now=T)


def test_tampered_body_fails() -> None:
    header = signing.sign(SECRET, BODY, timestamp=T)
    assert not verify_signature(SECRET, header, BODY.replace(b"c1", b"c2"), now=T)
    assert not verify_signature(SECRET, header, BODY + b" ", now=T)


def test_old_timestamp_fails_even_with_a_correct_hmac() -> None:
    header = signing.sign(SECRET, BODY, timestamp=T)
    assert not verify_signature(SECRET, header, BODY, tolerance_s=300, now=T + 301)
    # A replayer cannot refresh t: the HMAC covers it.
    forged = header.replace(f"t={T}", f"t={T + 1000}")
    assert not verify_signature(SECRET, forged, BODY, tolerance_s=300, now=T + 1000)


def test_wrong_secret_and_garbled_headers_fail() -> None:
    header = signing.sign(SECRET, BODY, timestamp=T)
    assert not verify_signature("other", header, BODY, now=T)
    for bad in (None, "", "garbage", f"t={T}", f"v1={KNOWN}", f"t=abc,v1={KNOWN}", f"t={T},v0={KNOWN}"):
        assert not verify_signature(SECRET, bad, BODY, now=T), bad


def test_rotation_any_v1_matches() -> None:
    header = f"t={T},v1={'0' * 64},v1={KNOWN}"
    assert verify_signature(SECRET, header, BODY, now=T)


def test_default_timestamp_is_now() -> None:
    assert verify_signature(SECRET, signing.sign(SECRET, BODY), BODY)


# ------------------------------------------------------------------ answers (issue #4)

ANSWER = b'{"bid":"37.50","accept":true,"available":true}'


def test_answer_signed_with_the_buyer_secret_passes() -> None:
    header = signing.sign(SECRET, ANSWER, timestamp=T)
    assert signing.answer_signature_problem(SECRET, header, ANSWER, tolerance_s=300, now=T + 5) is None


def test_answer_signature_problems_are_named_without_the_secret() -> None:
    good = signing.sign(SECRET, ANSWER, timestamp=T)
    cases = {
        "answer not signed": (None, ANSWER),
        "answer signature garbled": ("t=abc,v1=00", ANSWER),
        "answer signature does not verify": (signing.sign("other", ANSWER, timestamp=T), ANSWER),
        "answer signature does not verify ": (good, ANSWER.replace(b"37.50", b"99.50")),  # a changed bid
    }
    for expected, (header, body) in cases.items():
        problem = signing.answer_signature_problem(SECRET, header, body, now=T)
        assert problem == expected.strip(), (expected, problem)
        assert SECRET not in problem
    stale = signing.answer_signature_problem(SECRET, good, ANSWER, tolerance_s=300, now=T + 301)
    assert stale is not None and "timestamp" in stale
