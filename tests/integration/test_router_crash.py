"""The router killed with SIGKILL (a crash, no clean shutdown) in the middle of a run, then started again.

Modelled on the SIGTERM restart in test_router_workers.py, but nothing gets flushed or committed on the
way down: at the kill some calls are routed and hold slots, some auctions wait for bids (the bidder is
not running), a release and a re-route (call.ended) are in flight, and more calls arrive while the
router is down. After the restart (same app id, same data dir) and the bidder's return, everything is
checked from the events read back from the topics:

* every call has exactly one outcome (its last call.routed not followed by a re-routable call.ended,
  or one call.rejected) — no call is lost, no call is sold twice;
* no attempt of a call is routed to two different buyers (a repeated call.routed after the crash is
  allowed, at-least-once, but only to the same buyer);
* the top buyer's concurrency cap is never exceeded (open calls over time from call.routed/call.ended).

Regression (docs/ROUTER.md, "Crash and restart"): records of partitions without a committed offset
at the kill (e.g. the ivr.completed / call.ended partitions whose first events came just before it)
were dropped while the restarted router recovered its tables, and those calls never got an outcome.
Under CPU load (two copies in parallel, two busy processes) this test failed 3 times in 16 runs
without the fix and 0 of 16 with it. A few calls are published while the router is down so
that several such partitions have a backlog at the restart.

No other router may run meanwhile (every router of the session reads the same ivr.completed), hence
a campaign and an app id of its own.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from switchboard.platform import codec
from switchboard.platform.broker import EmbeddedBroker
from switchboard.platform.settings import KafkaSettings
from switchboard.platform.topics import (
    CALL_ENDED,
    CALL_QUEUED,
    CALL_REJECTED,
    CALL_ROUTED,
    IVR_COMPLETED,
    PING_REQUESTED,
)
from switchboard.v1 import events_pb2 as pb
from tests.integration.test_router_ledger import Routers, edge
from tests.support import ServiceProcess, read_all, service_env, stop_services, until

pytestmark = pytest.mark.integration

CAP = 2

# Long auction deadlines: the auctions waiting at the kill must still be open when the router and
# the bidder are back, so they conclude with bids (and compete for the top buyer's slots).
CONFIG = """
version: 1
publishers:
  - {id: pub, min_price: 10.00}
buyers:
  - {id: TOP,   destination: "+18005550400", bid: {type: static, price: 40.00}, billable_after_s: 10, caps: {concurrency: CAP}}
  - {id: NEXT,  destination: "+18005550401", bid: {type: static, price: 30.00}}
  - {id: SPARE, destination: "+18005550402", bid: {type: static, price: 20.00}}
campaigns:
  - {id: CAMPAIGN, numbers: ["+18885550301"], publisher: pub, routing: {timeout_ms: 30000, tiers: [{strategy: price, buyers: [TOP, NEXT, SPARE]}]}}
"""

# Outcomes after which the router offers the call again (docs/ROUTER.md, step 5). This test only
# ends calls ANSWERED (for billable_after_s or longer) or NO_ANSWER.
REROUTABLE = {pb.CALL_OUTCOME_NO_ANSWER, pb.CALL_OUTCOME_BUSY, pb.CALL_OUTCOME_FAILED, pb.CALL_OUTCOME_DECLINED}


@dataclass
class CallEvents:
    """The terminal-side events of a set of calls read back from the topics, also grouped per call."""

    routed: list[pb.CallRouted]
    ended: list[pb.CallEnded]
    rejected: list[pb.CallRejected]
    by_call: dict[str, dict[str, list]]


async def read_call_events(kafka: KafkaSettings, calls: Iterable[str]) -> CallEvents:
    """Every call.routed / call.ended / call.rejected of `calls`; each call had its ivr.completed, none was queued."""
    ids = set(calls)

    def in_ids(ev: object) -> bool:
        return ev.call_id in ids

    ivrs = await read_all(kafka, IVR_COMPLETED, in_ids)
    routed = await read_all(kafka, CALL_ROUTED, in_ids)
    ended = await read_all(kafka, CALL_ENDED, in_ids)
    rejected = await read_all(kafka, CALL_REJECTED, in_ids)
    queued = await read_all(kafka, CALL_QUEUED, in_ids)
    assert {ev.call_id for ev in ivrs} == ids
    assert not queued, "no queue tier in this campaign"
    by_call: dict[str, dict[str, list]] = defaultdict(lambda: {"routed": [], "ended": [], "rejected": []})
    for kind, events in (("routed", routed), ("ended", ended), ("rejected", rejected)):
        for ev in events:
            by_call[ev.call_id][kind].append(ev)
    return CallEvents(routed, ended, rejected, by_call)


def check_one_outcome_each(events: CallEvents, calls: Iterable[str], info: Callable[[str], str]) -> None:
    """Rule 4: no attempt of a call went to two buyers, and every call has exactly one outcome."""
    for call_id in calls:
        c = events.by_call[call_id]
        buyers_per_attempt: dict[int, set[str]] = defaultdict(set)
        for r in c["routed"]:
            buyers_per_attempt[r.attempt].add(r.buyer_id)
        assert all(len(b) == 1 for b in buyers_per_attempt.values()), (
            f"{call_id}: one attempt, several buyers {dict(buyers_per_attempt)}; {info(call_id)}"
        )
        n = outcome_count(c["routed"], c["ended"], c["rejected"])
        assert n == 1, f"{call_id}: {n} outcomes; {info(call_id)}"


def outcome_count(routed: list[pb.CallRouted], ended: list[pb.CallEnded], rejected: list[pb.CallRejected]) -> int:
    """1 when the call ended well: its last routing stands xor one call.rejected (docs/TOPICS.md).

    The last offer does not stand when a re-routable call.ended follows it, or the caller hung up before
    it connected (CALLER_HANGUP, 0 s: then the call.rejected `abandoned` is the outcome)."""
    stands = 0
    if routed:
        last = max(routed, key=lambda r: r.attempt)
        failed = any(
            e.attempt == last.attempt
            and e.buyer_id == last.buyer_id
            and (e.outcome in REROUTABLE or (e.outcome == pb.CALL_OUTCOME_CALLER_HANGUP and e.connected_seconds <= 0))
            for e in ended
        )
        stands = 0 if failed else 1
    return stands + len({r.event_id for r in rejected})


async def test_sigkill_mid_run_keeps_every_call_and_the_cap(broker: EmbeddedBroker, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    campaign, top, nxt, spare = f"crash-{tag}", f"top-{tag}", f"next-{tag}", f"spare-{tag}"
    config = tmp_path / "routing.yaml"
    config.write_text(
        CONFIG.replace("CAMPAIGN", campaign)
        .replace("TOP", top)
        .replace("NEXT", nxt)
        .replace("SPARE", spare)
        .replace("CAP", str(CAP))
    )
    kafka = broker.kafka_settings()
    app_id = f"router-crash-{tag}"
    env = service_env(
        kafka,
        config,
        SWITCHBOARD_ROUTER_APP_ID=app_id,
        # Same data dir across the crash: whatever Faust left there must not confuse the restart.
        SWITCHBOARD_ROUTER_DATA_DIR=str(tmp_path / "router-data"),
        # A bidder group of its own: its committed offsets survive its own restart only.
        SWITCHBOARD_BIDDER_GROUP_ID=f"bidder-crash-{tag}",
        # Tansu holds a JoinGroup for half a session timeout and drops the killed member only when
        # its session expires: 4 s instead of 10 s lets the restarted router join alone, sooner.
        SWITCHBOARD_KAFKA_SESSION_TIMEOUT_MS="4000",
    )
    routers = Routers(kafka, app_id, tmp_path, env)
    bidders: list[ServiceProcess] = []

    def spawn_bidder() -> ServiceProcess:
        n = len(bidders)
        b = ServiceProcess("bidder", env, ready_dir=tmp_path / f"bidder-ready-{n}", log=tmp_path / f"bidder-{n}.log")
        bidders.append(b)
        return b

    calls: list[str] = []
    try:
        spawn_bidder().wait_ready(60)
        routers.start()
        async with edge(routers) as e:

            async def new_call() -> str:
                call_id = (await e.call(campaign)).call_id
                calls.append(call_id)
                return call_id

            # -- before the crash: two calls hold the top buyer's slots, the third goes to the next one.
            a1 = await e.routed(await new_call())
            a2 = await e.routed(await new_call())
            a3 = await e.routed(await new_call())
            assert (a1.buyer_id, a2.buyer_id, a3.buyer_id) == (top, top, nxt)

            # -- auctions waiting for bids: the bidder is gone, the pings are out, nobody answers yet.
            assert stop_services(bidders[-1])["bidder"] == 0
            waiting = [await new_call() for _ in range(3)]

            async def pinged() -> bool:
                pings = await read_all(kafka, PING_REQUESTED, lambda ev: ev.call_id in waiting)
                return {p.call_id for p in pings} == set(waiting)

            await until("ping.requested for every waiting call", pinged, interval_s=0.1)

            # -- in flight at the kill: a release (a1 answered, a sale) and a re-route (a3 not answered).
            await e.end(a1, pb.CALL_OUTCOME_ANSWERED, 30)
            await e.end(a3, pb.CALL_OUTCOME_NO_ANSWER)
            [before] = routers.procs
            before.kill()  # SIGKILL by pid: no flush, no commit, no leaving the group
            assert before.proc.returncode == -9

            # -- calls arriving while the router is down.
            for _ in range(4):
                await new_call()

            # -- back: the router (same app id and data dir) and the bidder, started together: the
            # bidder answers the pings still out, maybe before the router is up again.
            bidder = spawn_bidder()
            routers.start()
            bidder.wait_ready(60)

            def decided(call_id: str) -> bool:
                return bool(e.events(call_id, CALL_ROUTED.name) or e.events(call_id, CALL_REJECTED.name))

            # Every call gets a routing or a rejection; a3 gets its second attempt (or a rejection).
            async def all_decided() -> bool:
                return all(decided(c) for c in calls) and (
                    any(r.attempt == 2 for r in e.events(a3.call_id, CALL_ROUTED.name))
                    or bool(e.events(a3.call_id, CALL_REJECTED.name))
                )

            await until("an outcome for every call after the restart", all_decided, timeout_s=90, interval_s=0.1)

            # -- the edge ends every call that stands routed: answered, a sale, nothing re-routes.
            ended_by_test: set[tuple[str, int]] = {(a1.call_id, a1.attempt), (a3.call_id, a3.attempt)}
            for call_id in calls:
                routed = e.events(call_id, CALL_ROUTED.name)
                if not routed or e.events(call_id, CALL_REJECTED.name):
                    continue
                last = max(routed, key=lambda r: r.attempt)
                if (call_id, last.attempt) not in ended_by_test:
                    await e.end(last, pb.CALL_OUTCOME_ANSWERED, 30)
                    ended_by_test.add((call_id, last.attempt))
                    await e.released(last.buyer_id, call_id)
            await e.released(top, a1.call_id)
            info = {
                c: [(type(x).__name__, getattr(x, "attempt", 0), getattr(x, "buyer_id", "")) for x in e.events(c)] for c in calls
            }

        # -- the checks, from the topics read back.
        events = await read_call_events(kafka, calls)
        check_one_outcome_each(events, calls, lambda call_id: f"{info[call_id]}; logs in {tmp_path}")
        routed_all, ended_all = events.routed, events.ended

        peak = max_open(routed_all, ended_all, top)
        assert peak <= CAP, f"{peak} calls open at once with {top} (cap {CAP}); {info}; logs in {tmp_path}"
        print(f"\nSIGKILL restart: peak {peak}/{CAP}; {info}")
    finally:
        # By pid: SIGTERM first (the clean shutdown), SIGKILL if one does not exit in time.
        stop_services(*[s for s in (*bidders, *routers.procs) if s.proc.poll() is None])


def max_open(routed: list[pb.CallRouted], ended: list[pb.CallEnded], buyer_id: str) -> int:
    """The most calls open at once with `buyer_id`.

    A call.routed repeated after the crash (same call, attempt and buyer) is one routing: its first
    record opens the call. A call.ended closes the routing of its (call, attempt, buyer). An end
    counts before a route at the same instant (the ledger frees a slot only after the edge reported
    the end).
    """
    first: dict[tuple[str, int], pb.CallRouted] = {}
    for r in routed:
        if r.buyer_id == buyer_id:
            key = (r.call_id, r.attempt)
            if key not in first or codec.ts_ms(r.occurred_at) < codec.ts_ms(first[key].occurred_at):
                first[key] = r
    timeline = [(codec.ts_ms(r.occurred_at), 1, key) for key, r in first.items()]
    timeline += [(codec.ts_ms(e.occurred_at), 0, (e.call_id, e.attempt)) for e in ended if e.buyer_id == buyer_id]
    open_calls: set[tuple[str, int]] = set()
    peak = 0
    for _, is_route, key in sorted(timeline):
        if is_route:
            open_calls.add(key)
            peak = max(peak, len(open_calls))
        else:
            open_calls.discard(key)
    return peak
