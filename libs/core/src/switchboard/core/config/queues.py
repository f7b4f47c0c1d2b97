"""The in-house ACD: queues of callers and the agents who answer them (docs/CONFIG.md, queues and agents).

A campaign tier with `strategy: queue` hands its calls to a queue; an agent takes calls from the
queues it is in when its skills cover the queue's `match` keys. The distributor is core/acd.py.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from switchboard.core.config.conditions import Condition, _check_answers
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


class Agent(_Model):
    id: str
    name: str = ""
    queues: list[str] = Field(min_length=1)
    skills: dict[str, list[str]] = {}
    location: str = ""
    performance: float = Field(0.5, ge=0, le=1)
    max_concurrent: int = Field(1, ge=1)
    destination: str = ""
