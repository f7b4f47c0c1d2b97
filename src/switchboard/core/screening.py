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

Duplicates (issue #5) need state and are not decided here.
"""

from __future__ import annotations

from typing import NamedTuple

from switchboard.core.caller import CallerFacts
from switchboard.core.config import Blocklist, Campaign, RoutingConfig

BLOCKED = "blocked"
INVALID_NUMBER = "invalid_number"


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
    for where, blocklist in (("the global blocklist", config.blocklist), (f"the blocklist of campaign {campaign.id}", campaign.blocklist)):
        entry = blocklist_match(blocklist, facts)
        if entry is not None:
            return Rejection(BLOCKED, f"caller {facts.number} matches {entry} on {where}")
    if not facts.valid and not campaign.allow_invalid_numbers:
        shown = facts.number or "(none)"
        return Rejection(
            INVALID_NUMBER, f"caller {shown}: {facts.invalid_reason or 'invalid number'} (campaign {campaign.id} does not allow invalid numbers)"
        )
    return None
