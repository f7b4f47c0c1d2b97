"""core.callbacks: a scheduled callback's time, read in the queue's timezone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from switchboard.core.callbacks import CallbackTimeError, callback_time, local_text

NY = "America/New_York"


def test_empty_means_as_soon_as_possible():
    assert callback_time("", NY, datetime(2026, 12, 2, 12, tzinfo=UTC)) is None


def test_hhmm_is_the_next_such_local_time():
    now = datetime(2026, 12, 2, 20, 0, tzinfo=UTC)  # 15:00 in New York (EST, UTC-5)
    assert callback_time("17:30", NY, now) == datetime(2026, 12, 2, 22, 30, tzinfo=UTC)
    assert callback_time("09:00", NY, now) == datetime(2026, 12, 3, 14, 0, tzinfo=UTC)  # tomorrow
    assert local_text(callback_time("09:00", NY, now), NY) == "2026-12-03 09:00"


def test_dated_time_and_dst_gap():
    now = datetime(2027, 3, 10, 12, tzinfo=UTC)
    # 02:30 on 2027-03-14 does not exist in New York (clocks go 02:00 → 03:00): 03:30 EDT.
    assert callback_time("2027-03-14 02:30", NY, now) == datetime(2027, 3, 14, 7, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("25:00", "not a time"),
        ("2026-02-30 10:00", "no such date"),
        ("2026-12-01 10:00", "in the past"),
        ("2027-06-01 10:00", "days ahead"),
    ],
)
def test_bad_times_say_what_to_send(text: str, needle: str):
    with pytest.raises(CallbackTimeError, match=needle):
        callback_time(text, NY, datetime(2026, 12, 2, 12, tzinfo=UTC))
