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
# printf '%s' '1700000000.c1.a1.{"accept":true,"bid":"12.50"}' | openssl dgst -sha256 -hmac whsec_test
ANSWER_VECTOR = "e140f84bc0459730490c9361f5c510d37300011e39719169e6336b8095b94823"


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
    header = signing.sign_answer(SECRET, "c1", "a1", ANSWER, timestamp=T)
    assert header.startswith(f"t={T},v2=")
    assert signing.answer_signature_problem(SECRET, header, ANSWER, "c1", "a1", tolerance_s=300, now=T + 5) is None


def test_answer_signature_known_vector() -> None:
    """The test vector of docs/BUYER_API.md section 5 (answers)."""
    header = signing.sign_answer("whsec_test", "c1", "a1", b'{"accept":true,"bid":"12.50"}', timestamp=1700000000)
    assert (
        header
        == "t=1700000000,v2="
        + hmac.new(b"whsec_test", b'1700000000.c1.a1.{"accept":true,"bid":"12.50"}', hashlib.sha256).hexdigest()
    )
    assert header == f"t=1700000000,v2={ANSWER_VECTOR}"


def test_answer_signature_problems_are_named_without_the_secret() -> None:
    good = signing.sign_answer(SECRET, "c1", "a1", ANSWER, timestamp=T)
    cases = {
        "answer not signed": (None, ANSWER, "a1"),
        "answer signature garbled": ("t=abc,v2=00", ANSWER, "a1"),
        "does not verify": (signing.sign_answer("other", "c1", "a1", ANSWER, timestamp=T), ANSWER, "a1"),
        "does not verify ": (good, ANSWER.replace(b"37.50", b"99.50"), "a1"),  # a changed bid
        "does not verify  ": (good, ANSWER, "a2"),  # the genuine answer of auction a1, replayed for a2
        "signed v1": (signing.sign(SECRET, ANSWER, timestamp=T), ANSWER, "a1"),  # the old, unbound scheme
    }
    for expected, (header, body, auction) in cases.items():
        problem = signing.answer_signature_problem(SECRET, header, body, "c1", auction, now=T)
        assert problem is not None and expected.strip() in problem, (expected, problem)
        assert SECRET not in problem
    assert signing.answer_signature_problem(SECRET, good, ANSWER, "c2", "a1", now=T) is not None  # another call
    stale = signing.answer_signature_problem(SECRET, good, ANSWER, "c1", "a1", tolerance_s=300, now=T + 301)
    assert stale is not None and "timestamp" in stale
