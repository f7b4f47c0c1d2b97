"""The in-house ACD: queues of callers and the agents who answer them (docs/CONFIG.md, queues and agents).

A campaign tier with `strategy: queue` hands its calls to a queue; an agent takes calls from the
queues it is in when its skills cover the queue's `match` keys. The distributor is core/acd.py.
"""

from __future__ import annotations

from string import Formatter
from typing import Any, Literal

from pydantic import Field, field_validator

from switchboard.core.config.conditions import Condition, _check_answers
from switchboard.core.config.schedules import _check_timezone
from switchboard.core.config.types import _Model

# How a queue orders its free agents for a call (Queue.strategy spells the same names).
QUEUE_STRATEGIES = ("longest_idle", "round_robin", "fewest_calls", "best_performer")


class PriorityWhen(_Model):
    """When a priority rule holds: every condition present must (an empty `when` holds for every call)."""

    campaigns: list[str] | None = None  # the call's campaign is one of these
    publishers: list[str] | None = None  # the call's publisher is one of these
    answers: dict[str, Condition] | None = None  # IVR answers / call data, the operators of buyer filters

    @field_validator("answers", mode="before")
    @classmethod
    def _answers(cls, v: Any) -> Any:
        return _check_answers(v)


class PriorityRule(_Model):
    """`queues[].priority[]`: a waiting call the rule's `when` holds for gets `priority` (higher is served first)."""

    when: PriorityWhen = PriorityWhen()
    priority: int


class QueueAnnouncements(_Model):
    """`queues[].announcements.<language>`: what the edge says to a waiting caller (core.announce fills the
    placeholders {position}, {minutes}, {when}); unset texts come from the built-in ones of the language."""

    waiting: str | None = None  # position and projected wait
    waiting_unknown: str | None = None  # position when the projected wait is unknown
    callback_offer: str | None = None  # "press 1 / say yes to be called back, keeping your place"
    callback_accepted: str | None = None  # before the caller hangs up
    callback_answered: str | None = None  # the caller picked up the callback, before the agent is bridged

    @field_validator("waiting", "waiting_unknown", "callback_offer", "callback_accepted", "callback_answered")
    @classmethod
    def _placeholders(cls, v: str | None) -> str | None:
        if v is not None:
            check_placeholders(v)
        return v


# What core.announce fills in an announcement: anything else would be said as "{...}" to the caller.
ANNOUNCEMENT_PLACEHOLDERS = ("position", "minutes", "when")


def check_placeholders(text: str) -> None:
    """Refuse an announcement text with a placeholder core.announce does not fill, or unbalanced braces."""
    known = ", ".join(f"{{{p}}}" for p in ANNOUNCEMENT_PLACEHOLDERS)
    try:
        fields = [f for _, f, _, _ in Formatter().parse(text) if f is not None]
    except ValueError:
        raise ValueError(
            f"{text!r} has an unbalanced brace (placeholders are {known}; write {{{{ or }}}} for a brace itself)"
        ) from None
    for f in fields:
        if f not in ANNOUNCEMENT_PLACEHOLDERS:
            raise ValueError(f"unknown placeholder {{{f}}} (use {known})")


class Queue(_Model):
    id: str
    strategy: Literal["longest_idle", "round_robin", "fewest_calls", "best_performer"] = "longest_idle"
    match: list[str] = []
    max_wait_s: int = Field(180, ge=0)
    callback_offer_after_s: int | None = Field(None, ge=0)
    # The first rule that holds gives a waiting call its priority (none holds: 0); core/acd.py `call_priority`.
    priority: list[PriorityRule] = []
    # Every priority_aging_s a call has waited adds 1 to its priority, so no caller waits for ever behind
    # higher priorities (None: no aging).
    priority_aging_s: int | None = Field(None, ge=1)
    # Overflow (docs/ACD.md): when the campaign has tiers after this queue's, a caller waiting this long,
    # or whose projected wait exceeds overflow_when_projected_wait_s, goes on to them (None: never).
    overflow_after_s: int | None = Field(None, ge=0)
    overflow_when_projected_wait_s: int | None = Field(None, ge=0)
    # Announcements (docs/ACD.md): position and projected wait are said when a call starts waiting and
    # then every announce_every_s (0: only when it starts waiting).
    announce_every_s: int = Field(60, ge=0)
    announcements: dict[str, QueueAnnouncements] = {}  # language → texts
    # Callbacks (docs/ACD.md): offered once the projected wait exceeds callback_offer_after_s; a callback the
    # caller does not answer is tried again callback_retry_after_s later, callback_retries times, then the call
    # ends `callback_failed`; one not placed within callback_max_wait_s of being accepted (or of its chosen
    # time) ends `callback_expired`. Scheduled callbacks ("call me at 17:30") are read in `timezone`.
    callback_retries: int = Field(2, ge=0)
    callback_retry_after_s: int = Field(120, ge=1)
    callback_max_wait_s: int = Field(4 * 3600, ge=60)
    timezone: str = "UTC"
    # After each call an agent is in wrap-up (no calls) this long, or until it ends the wrap-up (AgentDesk).
    wrap_up_s: int = Field(0, ge=0)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        return _check_timezone(v)


class Agent(_Model):
    id: str
    name: str = ""
    queues: list[str] = Field(min_length=1)
    skills: dict[str, list[str]] = {}
    location: str = ""
    # 0..1 for best_performer; `learned`: the share of its recent offers the agent answered (docs/ACD.md).
    performance: float | Literal["learned"] = 0.5
    # always: logged in and ready from the start (a static roster); desk: takes calls only while logged in
    # through AgentDesk (docs/ACD.md "Agents").
    login: Literal["always", "desk"] = "always"
    max_concurrent: int = Field(1, ge=1)
    destination: str = ""

    @field_validator("performance")
    @classmethod
    def _performance(cls, v: float | str) -> float | str:
        if isinstance(v, float | int) and v < 0:
            raise ValueError(f"must be at least 0, got {v:g} (set performance between 0 and 1, or write `learned`)")
        if isinstance(v, float | int) and v > 1:
            raise ValueError(f"must be at most 1, got {v:g} (set performance between 0 and 1, or write `learned`)")
        return v
