"""core.screening: blocklists and invalid numbers decide a call's rejection at start."""

from __future__ import annotations

from switchboard.core.caller import caller_facts
from switchboard.core.config import RoutingConfig
from switchboard.core.reasons import BLOCKED, DUPLICATE, INVALID_NUMBER
from switchboard.core.screening import Rejection, screen


def config(
    global_list: dict | None = None, campaign_list: dict | None = None, allow_invalid: bool = False, window: str | None = None
) -> RoutingConfig:
    return RoutingConfig.model_validate(
        {
            "publishers": [{"id": "p"}],
            "buyers": [{"id": "b", "destination": "+18005550100", "bid": {"type": "static", "price": "10"}}],
            "campaigns": [
                {
                    "id": "c",
                    "numbers": ["+18885550123"],
                    "publisher": "p",
                    "allow_invalid_numbers": allow_invalid,
                    "duplicate_window": window,
                    "blocklist": campaign_list or {},
                    "routing": {"tiers": [{"strategy": "price", "buyers": ["b"]}]},
                }
            ],
            "blocklist": global_list or {},
        }
    )


def check(cfg: RoutingConfig, number: str) -> Rejection | None:
    return screen(cfg, cfg.campaigns[0], caller_facts(number))


def test_a_valid_unlisted_caller_passes():
    assert check(config({"numbers": ["+12135550000"], "prefixes": ["+1900"], "area_codes": ["976"]}), "+13105551234") is None


def test_exact_number_on_the_global_list():
    r = check(config({"numbers": ["+12135550000"]}), "(213) 555-0000")  # normalized before matching
    assert r is not None and r.reason == BLOCKED
    assert "number +12135550000" in r.detail and "global blocklist" in r.detail


def test_prefix_on_the_campaign_list():
    r = check(config(campaign_list={"prefixes": ["+1310555"]}), "+13105551234")
    assert r is not None and r.reason == BLOCKED
    assert "prefix +1310555" in r.detail and "blocklist of campaign c" in r.detail


def test_area_code_on_either_list():
    for cfg in (config({"area_codes": ["213"]}), config(campaign_list={"area_codes": ["213"]})):
        r = check(cfg, "+12135551234")
        assert r is not None and r.reason == BLOCKED and "area code 213" in r.detail
    assert check(config({"area_codes": ["213"]}), "+13105551234") is None


def test_global_list_is_named_first():
    r = check(config({"area_codes": ["213"]}, {"area_codes": ["213"]}), "+12135551234")
    assert r is not None and "global blocklist" in r.detail


def test_invalid_number_rejected_unless_the_campaign_allows_it():
    for bad in ("+11555551234", "", "not a number"):
        r = check(config(), bad)
        assert r is not None and r.reason == INVALID_NUMBER and "campaign c" in r.detail, bad
        assert check(config(allow_invalid=True), bad) is None


def test_blocked_wins_over_invalid():
    r = check(config(campaign_list={"numbers": ["+11555551234"]}), "+11555551234")
    assert r is not None and r.reason == BLOCKED


def test_duplicate_only_inside_the_window():
    from datetime import UTC, datetime, timedelta

    from switchboard.core.screening import duplicate, duplicate_key

    cfg = config(window="30m")
    campaign, caller = cfg.campaigns[0], caller_facts("+13105551234")
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    assert duplicate_key(campaign, caller) == "c|+13105551234"
    assert duplicate(campaign, caller, None, now) is None  # never called before
    r = duplicate(campaign, caller, now - timedelta(minutes=29, seconds=59), now)
    assert r is not None and r.reason == DUPLICATE and "1799 s ago" in r.detail and "30m" in r.detail
    assert duplicate(campaign, caller, now - timedelta(minutes=30), now) is None  # the window is half-open
    assert duplicate(campaign, caller, now + timedelta(seconds=2), now) is not None  # another instance's clock runs ahead
    # No window on the campaign, or a caller that cannot be recognised: never a duplicate.
    assert duplicate_key(config().campaigns[0], caller) is None
    assert duplicate(config().campaigns[0], caller, now, now) is None
    assert duplicate_key(campaign, caller_facts("anonymous")) is None
