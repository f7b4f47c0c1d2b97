"""Bytes per entry of every stateful part, measured from the resident set (docs/CAPACITY.md uses the numbers).

    .venv/bin/python -m bench.state_memory [--entries N] [--json]

Each part is built the way the service holds it (the same types, keys and values), N entries at
a time in a fresh process, and the growth of the resident set is divided by N. Call ids, event ids and caller numbers are
random like real ones (uuid4 hex, E.164), so nothing is interned or shared that would not be.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import logging
import multiprocessing
import os
import random
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import structlog
from aiokafka import ConsumerRecord

from switchboard.analytics import tables
from switchboard.core import engine
from switchboard.core.eligibility import CallFacts
from switchboard.platform import codec
from switchboard.platform.configfile import load_config
from switchboard.services.analytics.service import Batch
from switchboard.services.cti.service import screen_pop
from switchboard.services.ivr.callers import CallerMemory
from switchboard.services.queue.service import QueueService
from switchboard.services.queue.settings import QueueSettings
from switchboard.services.router.record import CallRecord, Finished, FinishedKind
from switchboard.v1 import events_pb2 as pb


def _call_id() -> str:
    return uuid.uuid4().hex


def _number(rng: random.Random) -> str:
    return f"+1{rng.randint(201, 989)}{rng.randint(2_000_000, 9_999_999)}"


def _ivr(call_id: str, rng: random.Random) -> pb.IvrCompleted:
    return pb.IvrCompleted(
        event_id=codec.new_id(),
        call_id=call_id,
        occurred_at=codec.now_ts(),
        call_started_at=codec.now_ts(),
        campaign_id="solar-ca",
        publisher_id="solar-media",
        caller=pb.Caller(number=_number(rng), state="CA", zip="90001", area_code="213", timezone="America/Los_Angeles"),
        answers={"homeowner": "yes", "zip": "90001"},
    )


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(build: Callable[[int], Any], n: int) -> float:
    """Bytes per entry of what `build(n)` returns (kept alive while measured): the growth of the
    resident set, which counts protobuf's C arenas too (tracemalloc sees only Python's allocator).
    Run in a fresh process per part (see `sizes`), so no memory freed by another part is reused."""
    build(min(n, 1000))  # imports, caches and first-use allocations are not per entry
    gc.collect()
    before = _rss_bytes()
    kept = build(n)
    gc.collect()
    after = _rss_bytes()
    del kept
    return (after - before) / n


def _measure_in_child(name: str, n: int) -> float:
    return measure(PARTS[name], n)


# ------------------------------------------------------------------ the parts


def router_finished(n: int) -> Any:
    """Faust's memory store of `finished`: call id → {"kind", "at_ms"}, and its key → partition map."""
    data, key_partition = {}, {}
    for i in range(n):
        cid = _call_id()
        data[cid] = Finished(FinishedKind.ROUTED, 1_800_000_000_000 + i).to_json()
        key_partition[cid] = i % 4
    return data, key_partition


def router_open_call(n: int) -> Any:
    """`auctions`: an open call whose offer is bridged to a buyer (the state a call is in for most of its life)."""
    rng = random.Random(1)
    data, key_partition = {}, {}
    for i in range(n):
        cid = _call_id()
        progress = engine.Progress(call=CallFacts(call_id=cid, campaign_id="solar-ca", publisher_id="solar-media", state="CA"))
        stored = {
            "ctx": {"ivr": base64.b64encode(codec.encode(_ivr(cid, rng))).decode(), "routing_started_ms": 1_800_000_000_000},
            "routed": [1],
            "progress": progress.to_dict(),
            "phase": "offered",
            "reservation": None,
            "auction_id": None,
            "pinged": [],
            "answers": {},
            "deadline_ms": None,
            "post": None,
            "offer": {"buyer_id": "acme-solar", "attempt": 1, "price": "40.00", "billable_after_s": 60, "offered_ms": 1},
        }
        data[cid] = CallRecord.from_json(stored).to_json()  # as the router stores it
        key_partition[cid] = i % 4
    return data, key_partition


def ivr_caller(n: int) -> Any:
    rng = random.Random(2)
    memory = CallerMemory(retention_s=None, capacity=n + 1)
    for i in range(n):
        memory.note(f"solar-ca|{_number(rng)}", datetime.fromtimestamp(1_800_000_000 + i, tz=UTC))
    return memory


def cti_seen(n: int) -> Any:
    """cti's dedupe memory: one source event id per event handled (dedupe_capacity, default 200 000)."""
    return OrderedDict((f"call.routed/{codec.new_id()}", None) for _ in range(n))


def cti_context(n: int) -> Any:
    """cti's routed context per (call, attempt): the screen pop kept for the wrap-up (context_capacity, default 100 000)."""
    rng = random.Random(3)
    context: OrderedDict[str, pb.CtiEvent] = OrderedDict()
    for _ in range(n):
        cid = _call_id()
        routed = pb.CallRouted(
            event_id=codec.new_id(),
            call_id=cid,
            campaign_id="solar-ca",
            publisher_id="solar-media",
            caller=_ivr(cid, rng).caller,
            answers={"homeowner": "yes"},
            kind=pb.TARGET_KIND_BUYER,
            buyer_id="acme-solar",
            destination="+18005550100",
            price="40.00",
        )
        context[f"{cid}#1"] = screen_pop(routed)
    return context


CONFIG = "version: 1\nqueues:\n  - {id: sales, max_wait_s: 3600}\nagents:\n  - {id: a1, queues: [sales]}\n"


def queue_waiting(n: int) -> Any:
    """Waiting calls of the queue service (the ACD's call and its call.queued payload)."""
    rng = random.Random(4)
    with TemporaryDirectory() as d:
        path = Path(d) / "acd.yaml"
        path.write_text(CONFIG)
        service = QueueService(QueueSettings(config=path), load_config(path))
    gc.collect()
    for i in range(n):
        cid = _call_id()
        ivr = _ivr(cid, rng)
        queued = pb.CallQueued(
            event_id=codec.new_id(),
            call_id=cid,
            occurred_at=codec.now_ts(),
            campaign_id="solar-ca",
            queue_id="sales",
            caller=ivr.caller,
            answers=ivr.answers,
            trace=pb.DecisionTrace(notes=["tier 0 price: no eligible buyer"]),
        )
        service.handle(queued, partition=i % 4, offset=i)
    return service


def queue_finished_id(n: int) -> Any:
    """A finished call id the queue remembers (remember_finished, default 100 000)."""
    return OrderedDict((_call_id(), None) for _ in range(n))


def analytics_pending(n: int) -> Any:
    """A pending record of the analytics batch: the ConsumerRecord and its `events` and typed rows."""
    rng = random.Random(5)
    batch = Batch()
    for i in range(n):
        cid = _call_id()
        ev = pb.CallRouted(
            event_id=codec.new_id(),
            call_id=cid,
            occurred_at=codec.now_ts(),
            call_started_at=codec.now_ts(),
            campaign_id="solar-ca",
            publisher_id="solar-media",
            caller=_ivr(cid, rng).caller,
            kind=pb.TARGET_KIND_BUYER,
            buyer_id="acme-solar",
            destination="+18005550100",
            price="40.00",
            trace=pb.DecisionTrace(notes=["tier 0 price: acme-solar bid 40.00"]),
        )
        value = codec.encode(ev)
        record = ConsumerRecord("call.routed", i % 4, i, 0, 0, cid.encode(), value, None, len(cid), len(value), ())
        delivery = tables.Delivery(record.topic, record.partition, record.offset, record.key)
        batch.add(tables.EVENTS, tables.event_row(ev, delivery), record)
        typed = tables.typed_row(record.topic, ev)
        assert typed is not None
        batch.add(*typed, record)
        batch.covered(record)
    return batch


PARTS: dict[str, Callable[[int], Any]] = {
    "router finished entry": router_finished,
    "router open call (auctions)": router_open_call,
    "ivr caller memory entry": ivr_caller,
    "cti routed context": cti_context,
    "cti seen event id": cti_seen,
    "queue waiting call": queue_waiting,
    "queue finished id": queue_finished_id,
    "analytics pending record": analytics_pending,
}


def sizes(entries: int) -> dict[str, int]:
    """Bytes per entry of every part, measured over `entries` entries each."""
    # The services log every decision at INFO: not what is measured, and slow.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    out = {}
    for name in PARTS:  # one forked child per part
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork")) as pool:
            out[name] = round(pool.submit(_measure_in_child, name, entries).result())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    measured = sizes(args.entries)
    if args.json:
        print(json.dumps(measured))
        return
    for name, size in measured.items():
        print(f"{name:32} {size:6d} bytes/entry")


if __name__ == "__main__":
    main()
