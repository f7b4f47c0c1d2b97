"""The router's side of overflow (docs/ACD.md): call.overflowed resumes routing after the queue tier, once,
and never for a caller who hung up while queued. At the wiring point (`_wire`), tables as dicts: the two
orders of a hang-up and an overflow, which no real run can stage on demand."""

from __future__ import annotations

import json
from typing import Any

from switchboard.core.config import RoutingConfig
from switchboard.platform import codec
from switchboard.platform.topics import CALL_ENDED, CALL_OVERFLOWED, CALL_QUEUED, CALL_REJECTED, CALL_ROUTED, IVR_COMPLETED
from switchboard.services.router.app import Router, _wire
from switchboard.services.router.record import FinishedCalls, FinishedKind
from switchboard.services.router.settings import RouterSettings
from switchboard.v1 import events_pb2 as pb
from tests.support import ivr
from tests.unit.test_router_record import _App, _event

CONFIG = RoutingConfig.model_validate(
    {
        "publishers": [{"id": "pub", "min_price": "10.00"}],
        "buyers": [{"id": "a", "destination": "+18005550001", "bid": {"type": "static", "price": "40.00"}}],
        "campaigns": [
            {
                "id": "camp",
                "numbers": ["+18885550123"],
                "publisher": "pub",
                "routing": {"tiers": [{"strategy": "queue", "queue": "q"}, {"strategy": "priority", "buyers": ["a"]}]},
            }
        ],
        "queues": [{"id": "q"}],
    }
)


def _router() -> tuple[_App, Router]:
    app = _App()
    return app, _wire(app, CONFIG, RouterSettings(config="routing.yaml"))  # type: ignore[arg-type]


def sent(app: _App, topic: str) -> list[bytes]:
    return [v for _, v in app.topics[topic].sent] if topic in app.topics else []


def ledger(app: _App) -> list[dict[str, Any]]:
    return [json.loads(v) for _, v in app.topics[next(t for t in app.topics if t.endswith(".ledger"))].sent]


async def queued_call(app: _App, router: Router) -> pb.CallQueued:
    call = ivr("camp")
    await router.calls.handle(_event(IVR_COMPLETED.name, call.call_id, codec.encode(call)))
    (raw,) = sent(app, CALL_QUEUED.name)
    return pb.CallQueued.FromString(raw)


def overflowed(queued: pb.CallQueued, **kw: Any) -> Any:
    msg = pb.CallOverflowed(
        event_id=codec.new_id(), call_id=queued.call_id, queued=queued, attempt=1, reason="no_agents", trace=queued.trace, **kw
    )
    return _event(CALL_OVERFLOWED.name, queued.call_id, codec.encode(msg))


def hang_up(call_id: str) -> Any:
    msg = pb.CallEnded(event_id=codec.new_id(), call_id=call_id, routing_pending=True)
    return _event(CALL_ENDED.name, call_id, codec.encode(msg))


async def test_an_overflow_routes_on_from_the_next_tier_once() -> None:
    app, router = _router()
    queued = await queued_call(app, router)
    assert FinishedCalls(app.tables["finished"]).get(queued.call_id).kind == FinishedKind.QUEUED  # type: ignore[union-attr]
    await router.calls.handle(overflowed(queued))
    # The reservation goes to buyer a's ledger partition; the grant makes it call.routed (test_router_record).
    reserve = [v for _, v in app.topics[next(t for t in app.topics if t.endswith(".ledger"))].sent]
    assert (len(reserve) == 1 and b'"buyer_id": "a"' in reserve[0]) or b'"buyer_id":"a"' in reserve[0]
    assert queued.call_id in app.tables["auctions"] and queued.call_id not in app.tables["finished"]
    await router.calls.handle(overflowed(queued))  # redelivered: the call is open again, nothing new
    assert len(ledger(app)) == 1
    assert sent(app, CALL_REJECTED.name) == [] and sent(app, CALL_ROUTED.name) == []


async def test_a_caller_gone_while_queued_is_rejected_abandoned_when_the_call_overflows() -> None:
    app, router = _router()
    queued = await queued_call(app, router)
    await router.calls.handle(hang_up(queued.call_id))  # the queue ends it, unless it overflowed meanwhile
    assert FinishedCalls(app.tables["finished"]).get(queued.call_id).kind == FinishedKind.QUEUED_HUNG_UP  # type: ignore[union-attr]
    await router.calls.handle(overflowed(queued))  # it had: read after the hang-up
    (raw,) = sent(app, CALL_REJECTED.name)
    rejected = pb.CallRejected.FromString(raw)
    assert (rejected.reason, rejected.announcement) == ("abandoned", "")
    assert "while queued" in rejected.detail
    assert queued.call_id not in app.tables["auctions"]
    await router.calls.handle(overflowed(queued))  # redelivered: finished as rejected now, nothing new
    assert len(sent(app, CALL_REJECTED.name)) == 1


async def test_a_hang_up_read_after_the_overflow_ends_the_resumed_routing() -> None:
    app, router = _router()
    queued = await queued_call(app, router)
    await router.calls.handle(overflowed(queued))
    await router.calls.handle(hang_up(queued.call_id))  # the reservation is in flight: the caller left while routing
    (raw,) = sent(app, CALL_REJECTED.name)
    assert pb.CallRejected.FromString(raw).reason == "abandoned"
