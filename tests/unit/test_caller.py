import pytest

from switchboard.core.caller import (
    US_STATES,
    caller_facts,
    normalize_number,
    normalize_zip,
    state_from_description,
)


def test_us_state_table_has_50_states_and_dc():
    assert len(US_STATES) == 51
    assert len(set(US_STATES.values())) == 51
    assert US_STATES["district of columbia"] == "DC"


@pytest.mark.parametrize(
    ("raw", "e164", "area", "state", "tz"),
    [
        ("+13105551234", "+13105551234", "310", "CA", "America/Los_Angeles"),  # "California"
        ("2135551234", "+12135551234", "213", "CA", "America/Los_Angeles"),  # "Los Angeles, CA", US default region
        ("+1 (415) 555-2671", "+14155552671", "415", "CA", "America/Los_Angeles"),
        ("tel:+12125550100", "+12125550100", "212", "NY", "America/New_York"),
        ("+15125550100", "+15125550100", "512", "TX", "America/Chicago"),
        ("+12065550100", "+12065550100", "206", "WA", "America/Los_Angeles"),  # "Washington State"
        ("+12022241234", "+12022241234", "202", "DC", "America/New_York"),  # "Washington D.C."
        ("+13125550100", "+13125550100", "312", "IL", "America/Chicago"),  # "Chicago, IL"
    ],
)
def test_valid_us_numbers(raw, e164, area, state, tz):
    f = caller_facts(raw)
    assert f.valid and f.invalid_reason == ""
    assert (f.number, f.area_code, f.state, f.timezone) == (e164, area, state, tz)
    assert f.zip == ""


def test_toll_free_has_area_code_but_no_state_or_single_timezone():
    f = caller_facts("+18885550123")
    assert f.valid and f.area_code == "888" and f.state == "" and f.timezone == ""


def test_canada_is_nanp_without_us_state():
    f = caller_facts("+14165550100")
    assert f.valid and f.area_code == "416" and f.state == "" and f.timezone == "America/Toronto"


def test_non_nanp_number_has_no_area_code():
    f = caller_facts("+442071234567")
    assert f.valid and f.number == "+442071234567" and f.area_code == "" and f.state == ""
    assert f.timezone == "Europe/London"


@pytest.mark.parametrize("raw", ["", "   ", "abc", "555", "+1555"])
def test_invalid_numbers_are_flagged_with_empty_facts(raw):
    f = caller_facts(raw)
    assert not f.valid and f.invalid_reason
    assert (f.area_code, f.state, f.timezone) == ("", "", "")
    assert f.number == raw.strip()


@pytest.mark.parametrize(
    ("desc", "code"),
    [
        ("California", "CA"),
        ("Los Angeles, CA", "CA"),
        ("New York", "NY"),
        ("Washington State", "WA"),
        ("Washington D.C.", "DC"),
        ("west virginia", "WV"),
        ("Ontario", ""),
        ("London", ""),
        ("", ""),
        ("Somewhere, ZZ", ""),
    ],
)
def test_state_from_description(desc, code):
    assert state_from_description(desc) == code


def test_with_zip_keeps_other_facts():
    f = caller_facts("+13105551234").with_zip("90210")
    assert f.zip == "90210" and f.state == "CA" and f.valid


@pytest.mark.parametrize(
    ("raw", "z"), [("90210", "90210"), (" 90210-1234 ", "90210"), ("902101234", "90210"), ("9021", None), ("abcde", None)]
)
def test_normalize_zip(raw, z):
    assert normalize_zip(raw) == z


def test_normalize_number():
    assert normalize_number("(888) 555-0123") == "+18885550123"
    assert normalize_number("nope") is None
