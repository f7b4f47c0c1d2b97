"""The ivr's caller memory (duplicate windows) is bounded: expires past the longest window, capped in size."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from switchboard.platform.configfile import load_config
from switchboard.services.ivr.callers import CallerMemory, longest_window_s

T0 = 1_800_000_000.0  # a wall-clock second


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, tz=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def test_callers_past_the_retention_are_forgotten_and_the_others_kept():
    clock = Clock()
    memory = CallerMemory(retention_s=3600, clock=clock)
    for i in range(100):
        clock.now = T0 + i * 60  # one new caller a minute, each noted when its call starts
        memory.note(f"c1|+1310555{i:04d}", at(i * 60))
    # At 99 minutes: the calls of minutes 0..38 are more than an hour old.
    assert len(memory.last_seen) == 61
    assert memory.get("c1|+13105550038") is None and memory.get("c1|+13105550039") == at(39 * 60)
    assert memory.evicted == 0


def test_a_repeat_caller_is_kept_from_its_latest_call_and_an_older_record_changes_nothing():
    clock = Clock()
    memory = CallerMemory(retention_s=100, clock=clock)
    memory.note("c1|+13105550001", at(0))
    memory.note("c1|+13105550002", at(10))
    memory.note("c1|+13105550001", at(50))  # called again: moves behind the other
    memory.note("c1|+13105550001", at(20))  # an older record read late: the later call stays
    clock.now = T0 + 130
    assert memory.prune(clock.now) == 1
    assert list(memory.last_seen) == ["c1|+13105550001"] and memory.get("c1|+13105550001") == at(50)


def test_capacity_bounds_the_memory_oldest_first():
    clock = Clock()
    memory = CallerMemory(retention_s=None, capacity=1000, clock=clock)
    for i in range(1500):
        memory.note(f"c1|+1310556{i:04d}", at(i))
    assert len(memory.last_seen) == 1000 and memory.evicted == 500
    assert next(iter(memory.last_seen)) == "c1|+13105560500"


def test_the_retention_is_the_longest_duplicate_window_of_the_config(tmp_path: Path):
    path = tmp_path / "routing.yaml"
    path.write_text(
        """\
version: 1
buyers:
  - {id: b1, destination: "+18005550100", bid: {type: static, price: 20.00}}
campaigns:
  - {id: c1, numbers: ["+18885550123"], publisher: p1, duplicate_window: 30m, routing: {tiers: [{strategy: price, buyers: [b1]}]}}
  - {id: c2, numbers: ["+18885550124"], publisher: p1, duplicate_window: 2d, routing: {tiers: [{strategy: price, buyers: [b1]}]}}
  - {id: c3, numbers: ["+18885550125"], publisher: p1, routing: {tiers: [{strategy: price, buyers: [b1]}]}}
publishers:
  - id: p1
"""
    )
    config = load_config(path)
    assert longest_window_s(config) == 2 * 86400
    assert CallerMemory.for_config(config).retention_s == 2 * 86400
    no_windows = config.model_copy(update={"campaigns": [c for c in config.campaigns if not c.duplicate_window]})
    assert longest_window_s(no_windows) == 0
