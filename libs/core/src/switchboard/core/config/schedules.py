"""Buyer schedules: the days and hours a buyer takes calls, in its IANA timezone.

`hours` maps day specs (`mon-fri`, `sat`, `mon,wed`) to `HH:MM-HH:MM` ranges; a range may run
overnight (`20:00-08:00`). Whether a schedule is open at an instant is core/eligibility.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import field_validator

from switchboard.core.config.types import FieldPath, FieldProblems, _did_you_mean, _Model

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = r"(?:[01]\d|2[0-3]):[0-5]\d"
_RANGE = re.compile(rf"^({_TIME})-({_TIME}|24:00)$")


def expand_days(spec: str) -> list[str]:
    """'mon-fri' → [mon..fri]; 'sat' → [sat]; 'mon,wed' → [mon, wed]; 'fri-mon' wraps the weekend."""
    out: list[str] = []
    for part in str(spec).split(","):
        part = part.strip().lower()
        names = part.split("-", 1) if "-" in part else [part]
        for name in names:
            if name not in _DAYS:
                raise ValueError(
                    f"unknown day {name!r}{_did_you_mean(name, _DAYS)} "
                    f"(days are {', '.join(_DAYS)}; ranges look like mon-fri, lists like mon,wed)"
                )
        if len(names) == 2:
            i, j = _DAYS.index(names[0]), _DAYS.index(names[1])
            out.extend(_DAYS[i : j + 1] if i <= j else _DAYS[i:] + _DAYS[: j + 1])
        else:
            out.append(names[0])
    return out


def _minutes(hhmm: str) -> int:
    return int(hhmm[:2]) * 60 + int(hhmm[3:])


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _check_hours(v: Any) -> Any:
    """Each entry `days: "HH:MM-HH:MM"`; a day in one entry only; overnight ranges may not run into the next day's hours."""
    if not isinstance(v, Mapping):
        return v
    problems: list[tuple[FieldPath, str]] = []
    if not v:
        problems.append(
            ((), 'no hours: the buyer would always be closed (add e.g. {mon-fri: "08:00-20:00"}, or remove the schedule)')
        )
    owner: dict[str, str] = {}  # day -> the entry that covers it
    spans: dict[str, tuple[int, int, str]] = {}  # day -> (start, end, entry); end < start runs overnight
    out: dict[str, str] = {}
    for key, rng in v.items():
        try:
            days = expand_days(key)
        except ValueError as exc:
            problems.append(((key,), str(exc)))
            days = []
        fresh = []
        for day in days:
            if day in owner:
                problems.append(((key,), f"{day} is already covered by {owner[day]!r} (list each day in one entry only)"))
            else:
                owner[day] = str(key)
                fresh.append(day)
        if not isinstance(rng, str):
            problems.append(
                ((key,), f'{rng!r} is not a time range (write it in quotes like "08:00-20:00"; to close a day, leave it out)')
            )
            continue
        rng = rng.strip()
        m = _RANGE.match(rng)
        if not m:
            problems.append(
                (
                    (key,),
                    (
                        f'{rng!r} is not a time range HH:MM-HH:MM (write it like "08:00-20:00"; '
                        'times run 00:00 to 24:00, and "20:00-08:00" runs overnight)'
                    ),
                )
            )
            continue
        start, end = _minutes(m.group(1)), _minutes(m.group(2))
        if end == 0:
            end = 24 * 60  # "20:00-00:00" is until midnight
        if start == end:
            problems.append(((key,), f'{rng!r} starts and ends at the same time (for the whole day write "00:00-24:00")'))
            continue
        out[str(key)] = rng
        for day in fresh:
            spans[day] = (start, end, str(key))
    for day, (start, end, key) in spans.items():
        if end >= start:
            continue
        nxt = _DAYS[(_DAYS.index(day) + 1) % 7]
        if nxt in spans and spans[nxt][0] < end:
            problems.append(
                (
                    (key,),
                    (
                        f"{day} runs past midnight until {_hhmm(end)} on {nxt}, overlapping {nxt} from {_hhmm(spans[nxt][0])} "
                        f"(end {day} earlier or start {nxt} later)"
                    ),
                )
            )
    if problems:
        raise FieldProblems(problems)
    return out


def _check_timezone(v: Any) -> Any:
    if not isinstance(v, str):
        return v
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        hint = _did_you_mean(v, available_timezones())
        raise ValueError(f"unknown timezone {v!r}{hint} (use an IANA name such as America/New_York)") from None
    return v


class Schedule(_Model):
    timezone: str
    hours: dict[str, str]

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: Any) -> Any:
        return _check_timezone(v)

    @field_validator("hours", mode="before")
    @classmethod
    def _hours(cls, v: Any) -> Any:
        return _check_hours(v)
