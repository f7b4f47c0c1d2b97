"""bench/state_memory.py (the numbers of docs/CAPACITY.md) still builds every part the way the services hold it."""

from __future__ import annotations

from bench.state_memory import PARTS, router_finished


def test_every_part_is_built():
    for name, build in PARTS.items():
        assert build(200) is not None, name


def test_the_finished_part_holds_what_the_router_stores():
    data, key_partition = router_finished(10)
    assert len(data) == len(key_partition) == 10
    assert all(set(v) == {"kind", "at_ms"} for v in data.values())
