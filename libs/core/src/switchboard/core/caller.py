"""Facts about a caller derived from the caller number alone (pure: no I/O).

`caller_facts("+1 (415) 555-2671")` normalizes the number to E.164 (US is the
default region for numbers dialed without a country code) and derives what the
routing filters need: the NANP area code, the two-letter US state and the IANA
timezone, all from the offline metadata shipped in `phonenumbers`.

An invalid number is not an error here: it comes back with `valid=False`, the
reason, and empty derived fields (issue #5 turns such calls into rejects with
reason `invalid_number`; until then they route with unknown geography).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers
from phonenumbers import geocoder
from phonenumbers import timezone as pn_timezone

DEFAULT_REGION = "US"

# Full English name → USPS code; phonenumbers' geocoder describes US numbers by
# state ("California") or by "City, ST" ("Los Angeles, CA").
US_STATES: dict[str, str] = {
    "alabama": "AL",
    "alaska": "AK",
    "arizona": "AZ",
    "arkansas": "AR",
    "california": "CA",
    "colorado": "CO",
    "connecticut": "CT",
    "delaware": "DE",
    "florida": "FL",
    "georgia": "GA",
    "hawaii": "HI",
    "idaho": "ID",
    "illinois": "IL",
    "indiana": "IN",
    "iowa": "IA",
    "kansas": "KS",
    "kentucky": "KY",
    "louisiana": "LA",
    "maine": "ME",
    "maryland": "MD",
    "massachusetts": "MA",
    "michigan": "MI",
    "minnesota": "MN",
    "mississippi": "MS",
    "missouri": "MO",
    "montana": "MT",
    "nebraska": "NE",
    "nevada": "NV",
    "new hampshire": "NH",
    "new jersey": "NJ",
    "new mexico": "NM",
    "new york": "NY",
    "north carolina": "NC",
    "north dakota": "ND",
    "ohio": "OH",
    "oklahoma": "OK",
    "oregon": "OR",
    "pennsylvania": "PA",
    "rhode island": "RI",
    "south carolina": "SC",
    "south dakota": "SD",
    "tennessee": "TN",
    "texas": "TX",
    "utah": "UT",
    "vermont": "VT",
    "virginia": "VA",
    "washington": "WA",
    "west virginia": "WV",
    "wisconsin": "WI",
    "wyoming": "WY",
    "district of columbia": "DC",
}
# Spellings the geocoder uses that are not the plain state name.
_STATE_ALIASES: dict[str, str] = {
    "washington state": "WA",
    "washington d.c.": "DC",
    "washington dc": "DC",
    "washington, d.c.": "DC",
    "d.c.": "DC",
}
US_STATE_CODES: frozenset[str] = frozenset(US_STATES.values())

_ZIP = re.compile(r"^(\d{5})(?:-?\d{4})?$")


@dataclass(frozen=True)
class CallerFacts:
    number: str  # E.164 when valid, else the input as given (stripped) for the record
    valid: bool
    area_code: str = ""  # NANP area code ("213"), "" outside NANP or when invalid
    state: str = ""  # two-letter US state / DC, "" when unknown
    timezone: str = ""  # IANA name when the number maps to exactly one zone, else ""
    zip: str = ""  # from IVR answers later (with_zip), never from the number
    invalid_reason: str = ""

    def with_zip(self, zip_code: str) -> CallerFacts:
        return CallerFacts(**{**self.__dict__, "zip": zip_code})


def state_from_description(description: str) -> str:
    """'California' → 'CA'; 'Los Angeles, CA' → 'CA'; 'Washington D.C.' → 'DC'; otherwise ''."""
    d = description.strip().lower()
    if not d:
        return ""
    if d in _STATE_ALIASES:
        return _STATE_ALIASES[d]
    if d in US_STATES:
        return US_STATES[d]
    # "City, ST": the part after the last comma is a USPS code.
    if "," in d:
        tail = d.rsplit(",", 1)[1].strip().upper()
        if tail in US_STATE_CODES:
            return tail
        return US_STATES.get(tail.lower(), "")
    return ""


def normalize_zip(value: str) -> str | None:
    """'90210' / '90210-1234' / '902101234' → '90210'; anything else → None."""
    m = _ZIP.match(value.strip())
    return m.group(1) if m else None


def normalize_number(raw: str, region: str = DEFAULT_REGION) -> str | None:
    """E.164 form of a valid number, else None (used for dialed tracking numbers too)."""
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def caller_facts(raw: str, region: str = DEFAULT_REGION) -> CallerFacts:
    """Derive CallerFacts from a caller number as the telephony edge gave it."""
    given = (raw or "").strip()
    if not given:
        return CallerFacts(number="", valid=False, invalid_reason="no caller number (anonymous or withheld)")
    try:
        parsed = phonenumbers.parse(given, region)
    except phonenumbers.NumberParseException as exc:
        return CallerFacts(number=given, valid=False, invalid_reason=f"not a phone number: {exc}")
    if not phonenumbers.is_valid_number(parsed):
        return CallerFacts(number=given, valid=False, invalid_reason="not a valid number for its region")
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    area_code = ""
    state = ""
    if parsed.country_code == 1:
        area_code = str(parsed.national_number)[:3]
        # Only numbers of the US proper carry a state (Canada, PR, Caribbean: none).
        if phonenumbers.region_code_for_number(parsed) == "US":
            state = state_from_description(geocoder.description_for_number(parsed, "en"))
    zones = [z for z in pn_timezone.time_zones_for_number(parsed) if z != "Etc/Unknown"]
    # Several zones (toll-free, Alaska's 907) means we do not know: leave it empty.
    tz = zones[0] if len(zones) == 1 else ""
    return CallerFacts(number=e164, valid=True, area_code=area_code, state=state, timezone=tz)
