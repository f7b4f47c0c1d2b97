"""The queue service's agent side without I/O: agent.events in the outbox, wrap-ups ended by the sweep (core.agents)."""

from __future__ import annotations

from pathlib import Path

from switchboard.platform import codec
from switchboard.platform.configfile import load_config
from switchboard.platform.topics import AGENT_EVENTS, CALL_ROUTED
from switchboard.services.queue.service import QueueService
from switchboard.services.queue.settings import QueueSettings
from switchboard.v1 import events_pb2 as pb

CONFIG = """\
version: 1
queues:
  - {id: sales, max_wait_s: 3600, wrap_up_s: 20}
agents:
  - {id: a1, queues: [sales]}
"""


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def taken(service: QueueService, topic_name: str) -> list:
    topic = {t.name: t for t in (AGENT_EVENTS, CALL_ROUTED)}[topic_name]
    return [(r.key, codec.decode(topic, r.value)) for r in service.take_outbox() if r.topic == topic_name]


def test_a_call_puts_the_agent_on_call_then_in_wrap_up_and_the_sweep_ends_it(tmp_path: Path):
    path = tmp_path / "acd.yaml"
    path.write_text(CONFIG)
    clock = Clock()
    service = QueueService(QueueSettings(config=path), load_config(path), clock=clock)
    service.handle(pb.CallQueued(event_id=codec.new_id(), call_id="c1", queue_id="sales"))
    service.handle(pb.CallQueued(event_id=codec.new_id(), call_id="c2", queue_id="sales"))
    outbox = service.take_outbox()
    [(key, ev)] = [(r.key, codec.decode(AGENT_EVENTS, r.value)) for r in outbox if r.topic == AGENT_EVENTS.name]
    assert key == b"a1"
    assert (ev.state, ev.previous_state, ev.call_id, list(ev.queue_ids)) == (
        pb.AGENT_STATE_ON_CALL,
        pb.AGENT_STATE_READY,
        "c1",
        ["sales"],
    )
    clock.now = 110.0
    service.handle(pb.CallEnded(event_id=codec.new_id(), call_id="c1", outcome=pb.CALL_OUTCOME_ANSWERED, connected_seconds=9))
    [(_, ev)] = taken(service, AGENT_EVENTS.name)
    assert (ev.state, ev.call_id) == (pb.AGENT_STATE_WRAP_UP, "c1")
    clock.now = 129.0
    service.sweep()
    assert service.take_outbox() == []  # wrap-up not over: c2 keeps waiting
    clock.now = 130.0
    service.sweep()
    outbox = service.take_outbox()
    states = [codec.decode(AGENT_EVENTS, r.value).state for r in outbox if r.topic == AGENT_EVENTS.name]
    assert states == [pb.AGENT_STATE_READY, pb.AGENT_STATE_ON_CALL]
    routed = [codec.decode(CALL_ROUTED, r.value) for r in outbox if r.topic == CALL_ROUTED.name]
    assert [r.call_id for r in routed] == ["c2"]
