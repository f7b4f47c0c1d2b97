"""core.reasons: every call.rejected reason has one name, the producers use it, and docs/TOPICS.md lists it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from switchboard.core import engine, reasons
from tests.unit.test_engine import NOW, call, make_config, static

ROOT = Path(__file__).resolve().parents[2]


def test_every_reason_is_one_lower_case_name() -> None:
    names = {k: v for k, v in vars(reasons).items() if k.isupper() and isinstance(v, str) and not k.endswith("ANNOUNCEMENT")}
    assert set(names.values()) == reasons.ALL_REASONS | reasons.ANSWER_REASONS
    assert not reasons.ALL_REASONS & reasons.ANSWER_REASONS  # a call's reason never reads as a buyer's
    for name, value in names.items():
        if name != "POST_REJECTED":  # "rejected": the post's verdict, named apart from call.rejected
            assert value == name.lower(), name


def test_buyer_fault_names() -> None:
    assert reasons.http_status(404) == "http_4xx" and reasons.http_status(503) == "http_5xx"
    assert reasons.grpc_status("DEADLINE_EXCEEDED") == "grpc_deadline_exceeded"
    text = (ROOT / "docs" / "TOPICS.md").read_text()
    section = text[text.index("Buyer answer reasons") :]
    listed = set(re.findall(r"`([a-z_]+)`", section))
    assert listed >= set(reasons.ANSWER_REASONS), sorted(reasons.ANSWER_REASONS - listed)


def test_docs_topics_lists_every_reason() -> None:
    text = (ROOT / "docs" / "TOPICS.md").read_text()
    section = text[text.index("Reject reasons") :]
    listed = set(re.findall(r"`([a-z_]+)`", section))
    assert listed >= reasons.ALL_REASONS, sorted(reasons.ALL_REASONS - listed)


def test_announcements() -> None:
    assert reasons.announcement(reasons.ABANDONED) == ""  # the caller is gone
    assert "closed" in reasons.announcement(reasons.OUTSIDE_HOURS)
    assert reasons.announcement(reasons.NO_BID) == reasons.DEFAULT_ANNOUNCEMENT
    assert set(reasons.ANNOUNCEMENTS) <= set(reasons.ROUTING_REASONS)


@pytest.mark.parametrize(
    ("campaign", "states", "reason"),
    # a buyer that takes only Texas callers, and a caller from California: nobody eligible
    [("nope", ["CA"], reasons.UNKNOWN_CAMPAIGN), ("camp", ["TX"], reasons.NO_ELIGIBLE_BUYER)],
)
def test_the_engine_rejects_with_the_reasons_announcement(campaign: str, states: list[str], reason: str) -> None:
    cfg = make_config([static("a", "40.00", filters={"states": states})], [{"strategy": "priority", "buyers": ["a"]}])
    step = engine.start_routing(cfg, call(campaign_id=campaign), NOW)
    assert isinstance(step.action, engine.RejectCall) and step.action.reason == reason
    assert step.action.announcement == reasons.announcement(reason)
