"""The in-house ACD: queues of callers and the agents who answer them (docs/CONFIG.md, queues and agents).

A campaign tier with `strategy: queue` hands its calls to a queue; an agent takes calls from the
queues it is in when its skills cover the queue's `match` keys. The distributor is core/acd.py.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from switchboard.core.config.types import _Model

# How a queue orders its free agents for a call (Queue.strategy spells the same names).
QUEUE_STRATEGIES = ("longest_idle", "round_robin", "fewest_calls", "best_performer")


class Queue(_Model):
    id: str
    strategy: Literal["longest_idle", "round_robin", "fewest_calls", "best_performer"] = "longest_idle"
    match: list[str] = []
    max_wait_s: int = Field(180, ge=0)
    callback_offer_after_s: int | None = Field(None, ge=0)


class Agent(_Model):
    id: str
    name: str = ""
    queues: list[str] = Field(min_length=1)
    skills: dict[str, list[str]] = {}
    location: str = ""
    performance: float = Field(0.5, ge=0, le=1)
    max_concurrent: int = Field(1, ge=1)
    destination: str = ""
