"""Scheduled callbacks: the time a caller chose, read in the queue's timezone (pure; now is passed in).

A caller who accepts a callback may choose when (RequestCallback.at_local, CallbackRequested.at_local):
  ""                  as soon as an agent is free (the caller keeps its place in the queue);
  "HH:MM"             the next such local time in the queue's `timezone` (today if still ahead, else tomorrow);
  "YYYY-MM-DD HH:MM"  that local date and time; it must not be in the past.
Local times that do not exist (the hour skipped when clocks go forward) move forward by the gap and
ambiguous ones (the hour repeated when clocks go back) take the first occurrence, as a wall clock does.
The ivr validates what the edge sends with `callback_time` (a clear error for the edge) and the queue,
owner of the queue's configuration, resolves it again when the request arrives.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_DATE_HHMM = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[ T]([01]?\d|2[0-3]):([0-5]\d)$")
# A caller can choose a time up to this far ahead: a callback is a promise the queue has to keep.
MAX_AHEAD = timedelta(days=14)


class CallbackTimeError(ValueError):
    """`at_local` is not a time a callback can be scheduled at; the message says what to send."""


def _aware(day: date, at: time, tz: ZoneInfo) -> datetime:
    local = datetime.combine(day, at, tzinfo=tz)
    # A wall-clock time skipped by a DST change does not round-trip through UTC: move it past the gap.
    back = local.astimezone(UTC).astimezone(tz)
    return back if back.replace(tzinfo=None) != local.replace(tzinfo=None) else local


def callback_time(at_local: str, timezone: str, now: datetime) -> datetime | None:
    """When the callback is due (UTC), or None for "as soon as an agent is free"; `now` is timezone-aware."""
    text = at_local.strip()
    if not text:
        return None
    tz = ZoneInfo(timezone)
    now_local = now.astimezone(tz)
    if m := _HHMM.match(text):
        at = time(int(m[1]), int(m[2]))
        due = _aware(now_local.date(), at, tz)
        if due <= now_local:
            due = _aware(now_local.date() + timedelta(days=1), at, tz)
    elif m := _DATE_HHMM.match(text):
        try:
            day = date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            raise CallbackTimeError(f"at_local {text!r}: no such date (write YYYY-MM-DD HH:MM)") from None
        due = _aware(day, time(int(m[4]), int(m[5])), tz)
        if due <= now_local:
            raise CallbackTimeError(f"at_local {text!r} is in the past in {timezone} (choose a later time)")
    else:
        raise CallbackTimeError(f"at_local {text!r} is not a time (write HH:MM or YYYY-MM-DD HH:MM, local to {timezone})")
    if due - now_local > MAX_AHEAD:
        raise CallbackTimeError(f"at_local {text!r} is more than {MAX_AHEAD.days} days ahead (choose an earlier time)")
    return due.astimezone(UTC)


def local_text(due: datetime | None, timezone: str) -> str:
    """How a due time reads in the queue's timezone ("" for as soon as possible): "2026-12-03 17:30"."""
    return "" if due is None else due.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M")
