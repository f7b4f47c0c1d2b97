"""Screening of a caller at the start of a call (pure: no I/O): blocklists and invalid numbers.

`screen(config, campaign, facts)` returns None when the call may go on, or a
`Rejection(reason, detail)`:

* `blocked`: the caller's number, one of its prefixes or its area code is on the
  global blocklist (`blocklist:` at the top level) or the campaign's. Checked
  first, so a listed caller is reported as blocked even when its number is also
  invalid. The detail names the list and the entry that matched.
* `invalid_number`: `core.caller` found the number invalid or unplaceable
  (anonymous, not a number, no such area code) and the campaign does not set
  `allow_invalid_numbers: true`.

`duplicate(campaign, facts, last_seen, now)` decides `duplicate`: the same
caller called the campaign before, less than its `duplicate_window` ago. The
state (when each caller last called each campaign) is kept by the caller of
this function (the ivr service keeps it in the compacted topic ivr.callers);
screening only compares times. A caller without a valid number (anonymous,
invalid but allowed) cannot be recognised and is never a duplicate.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from switchboard.core.caller import CallerFacts
from switchboard.core.config import Blocklist, Campaign, RoutingConfig, duration_seconds
from switchboard.core.reasons import BLOCKED, DUPLICATE, INVALID_NUMBER


class Rejection(NamedTuple):
    reason: str
    detail: str


def blocklist_match(blocklist: Blocklist, facts: CallerFacts) -> str | None:
    """'number +1…' / 'prefix +1900' / 'area code 900' for the first entry that matches the caller, else None."""
    number = facts.number  # E.164 when valid; the input as given otherwise (exact entries can still match it)
    if number and number in blocklist.numbers:
        return f"number {number}"
    for prefix in blocklist.prefixes:
        if number.startswith(prefix):
            return f"prefix {prefix}"
    if facts.area_code and facts.area_code in blocklist.area_codes:
        return f"area code {facts.area_code}"
    return None


def screen(config: RoutingConfig, campaign: Campaign, facts: CallerFacts) -> Rejection | None:
    """None when the caller may go on to the IVR and routing, else why not (module doc)."""
    for where, blocklist in (
        ("the global blocklist", config.blocklist),
        (f"the blocklist of campaign {campaign.id}", campaign.blocklist),
    ):
        entry = blocklist_match(blocklist, facts)
        if entry is not None:
            return Rejection(BLOCKED, f"caller {facts.number} matches {entry} on {where}")
    if not facts.valid and not campaign.allow_invalid_numbers:
        shown = facts.number or "(none)"
        return Rejection(
            INVALID_NUMBER,
            f"caller {shown}: {facts.invalid_reason or 'invalid number'} (campaign {campaign.id} does not allow invalid numbers)",
        )
    return None


def caller_key(campaign_id: str, number: str) -> str:
    """The key of a caller's duplicate-window state: one per campaign and E.164 number."""
    return f"{campaign_id}|{number}"


def duplicate_key(campaign: Campaign, facts: CallerFacts) -> str | None:
    """The state key to check and record for this call, or None when duplicates are not checked for it."""
    if not campaign.duplicate_window or not facts.valid or not facts.number:
        return None
    return caller_key(campaign.id, facts.number)


def duplicate(campaign: Campaign, facts: CallerFacts, last_seen: datetime | None, now: datetime) -> Rejection | None:
    """`duplicate` when the caller's last accepted call to the campaign is less than duplicate_window before `now`."""
    if last_seen is None or duplicate_key(campaign, facts) is None:
        return None
    assert campaign.duplicate_window is not None
    window_s = duration_seconds(campaign.duplicate_window)
    age_s = (now - last_seen).total_seconds()
    if 0 <= age_s < window_s or age_s < 0:  # a last call "in the future" (clock skew between instances) is recent
        return Rejection(
            DUPLICATE,
            f"caller {facts.number} called campaign {campaign.id} {int(max(age_s, 0))} s ago "
            f"(at {last_seen.isoformat(timespec='seconds')}); duplicate_window is {campaign.duplicate_window}",
        )
    return None
