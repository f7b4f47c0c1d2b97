"""The services' domain metrics: what each counts, read back from prometheus-client's registry."""

from __future__ import annotations

import time

import pytest
from prometheus_client import REGISTRY

from switchboard.core import reasons
from switchboard.core.acd import Acd
from switchboard.core.waits import QueueEstimates
from switchboard.platform import codec
from switchboard.platform.configfile import load_config
from switchboard.platform.metrics import LagTracker, reason_kind
from switchboard.services.bidder.metrics import count_answer, is_fault
from switchboard.services.queue.metrics import QueueGauges, projected_wait
from switchboard.services.router.metrics import count_decision
from switchboard.v1 import events_pb2 as pb


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_decisions_by_kind_and_reason_and_latency_of_first_decisions_only():
    before = {
        r or k: value("switchboard_decisions_total", kind=k, reason=r)
        for k, r in (("routed", ""), ("queued", ""), ("rejected", "no_bid"), ("rejected", "abandoned"))
    }
    timed = value("switchboard_decision_latency_seconds_count")
    started = codec.now_ts()
    started.FromMilliseconds(int(time.time() * 1000) - 120)
    count_decision(pb.CallRouted(call_id="c", attempt=1, routing_started_at=started))
    count_decision(pb.CallRouted(call_id="c", attempt=2, routing_started_at=started))  # a re-offer: not timed
    count_decision(pb.CallQueued(call_id="q", attempt=1, routing_started_at=started))
    count_decision(pb.CallRejected(call_id="r", reason="no_bid", routing_started_at=started))
    count_decision(pb.CallRejected(call_id="a", reason=reasons.ABANDONED, routing_started_at=started))  # not timed
    count_decision(pb.PingRequested(call_id="p"))  # not a decision
    assert value("switchboard_decisions_total", kind="routed", reason="") == before["routed"] + 2
    assert value("switchboard_decisions_total", kind="queued", reason="") == before["queued"] + 1
    assert value("switchboard_decisions_total", kind="rejected", reason="no_bid") == before["no_bid"] + 1
    assert value("switchboard_decisions_total", kind="rejected", reason="abandoned") == before["abandoned"] + 1
    assert value("switchboard_decision_latency_seconds_count") == timed + 3
    assert value("switchboard_decision_latency_seconds_bucket", le="0.1") < value(
        "switchboard_decision_latency_seconds_bucket", le="0.15"
    )  # the 120 ms ones


def test_pings_by_outcome_and_buyer_faults_by_reason():
    assert is_fault(reasons.TIMEOUT) and is_fault("http_5xx") and is_fault("grpc_unavailable")
    assert not is_fault("") and not is_fault(reasons.DECLINED) and not is_fault(reasons.POST_REJECTED)
    b = "unit-buyer"
    count_answer(b, pb.BID_OUTCOME_BID, "")
    count_answer(b, pb.BID_OUTCOME_NO_BID, reasons.TIMEOUT)
    count_answer(b, pb.BID_OUTCOME_DECLINE, "")
    assert value("switchboard_pings_total", buyer=b, outcome="bid") == 1
    assert value("switchboard_pings_total", buyer=b, outcome="no_bid") == 1
    assert value("switchboard_pings_total", buyer=b, outcome="decline") == 1
    assert value("switchboard_buyer_faults_total", buyer=b, reason="timeout") == 1


@pytest.mark.parametrize(
    ("waiting", "free", "slots", "aht", "oldest", "expected"),
    [
        (0, 2, 3, 60.0, 0.0, 0.0),  # a free slot takes it at once
        (1, 2, 3, 60.0, 5.0, 0.0),
        (2, 2, 3, 60.0, 5.0, 20.0),  # one call ahead of it no slot takes: 1 * 60 / 3
        (5, 0, 3, 60.0, 5.0, 120.0),
        (5, 0, 3, None, 42.0, 42.0),  # no handle time known yet: the oldest wait stands in
    ],
)
def test_projected_wait(waiting, free, slots, aht, oldest, expected):
    assert projected_wait(waiting, free, slots, aht, oldest) == pytest.approx(expected)


def test_queue_gauges_from_the_acd_state(demo_config_path):
    demo_config = load_config(demo_config_path)
    acd = Acd.from_config(demo_config)
    queue = demo_config.queues[0].id
    estimates = QueueEstimates()
    estimates.handled(queue, 100)
    estimates.handled(queue, 200)  # an exponential average: 100 + 0.2 * 100
    gauges = QueueGauges(estimates)
    gauges.show(acd, now=0.0)
    # the demo's `login: desk` agents are logged out until they log in: not available
    agents = sum(1 for s in acd.agents_of(queue) if s.agent.login == "always")
    assert 0 < agents < len(acd.agents_of(queue))
    assert value("switchboard_queue_waiting_calls", queue=queue) == 0
    assert value("switchboard_agents", queue=queue, state="available") == agents
    assert value("switchboard_agents", queue=queue, state="busy") == 0  # logged-out agents are not busy
    assert value("switchboard_queue_projected_wait_seconds", queue=queue) == 0


def test_lag_gauge_set_at_most_every_interval_and_revoked_partitions_removed():
    now = [0.0]
    lag = LagTracker(every_s=1.0, clock=lambda: now[0])
    assert lag.due() and not lag.due()
    lag.show([("unit.topic", 0, 5), ("unit.topic", 1, -1)])
    assert value("switchboard_consumer_lag", topic="unit.topic", partition="0") == 5
    assert value("switchboard_consumer_lag", topic="unit.topic", partition="1") == 0  # never negative
    lag.show([("unit.topic", 1, 3)])
    assert REGISTRY.get_sample_value("switchboard_consumer_lag", {"topic": "unit.topic", "partition": "0"}) is None
    now[0] = 1.0
    assert lag.due()


def test_dead_letter_reason_label_is_bounded():
    assert reason_kind("handler error: ValueError: bad 42") == "handler error"
    assert reason_kind("undecodable: truncated") == "undecodable"
    assert reason_kind("") == "unknown"
