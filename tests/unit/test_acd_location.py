"""agents[].location: matched when a queue's `match` names location, refused when nothing would read it."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchboard.core.acd import Acd, WaitingCall, caller_needs, skill_gap
from switchboard.core.config import Agent, ConfigError, Queue
from switchboard.platform.configfile import load_config


def test_a_queue_matching_on_location_gives_the_caller_an_agent_there() -> None:
    queue = Queue(id="q", match=["location"])
    ca, tx = Agent(id="ca", queues=["q"], location="US-CA"), Agent(id="tx", queues=["q"], location="US-TX")
    assert skill_gap(ca, {"location": "us-tx"}) == "location" and skill_gap(tx, {"location": "us-tx"}) is None
    acd = Acd([queue], [ca, tx])
    needs = caller_needs(queue, {"location": "US-TX"})
    offer = acd.offer(WaitingCall("c1", "q", 0.0, needs), 0.0)
    assert offer.assignment is not None and offer.assignment.agent.id == "tx"
    assert {(c.agent_id, c.excluded_by) for c in offer.considered} == {("ca", "skill:location"), ("tx", "")}
    anywhere = acd.offer(WaitingCall("c2", "q", 0.0, caller_needs(queue, {})), 0.0)  # no location: any agent
    assert anywhere.assignment is not None and anywhere.assignment.agent.id == "ca"


def test_skills_can_add_locations_an_agent_covers() -> None:
    agent = Agent(id="ana", queues=["q"], location="US-CA", skills={"location": ["US-NV"]})
    assert skill_gap(agent, {"location": "US-NV"}) is None and skill_gap(agent, {"location": "US-CA"}) is None


CONFIG = """
version: 1
queues:
  - {id: plain}
  - {id: local, match: [location]}
agents:
  - {id: ana, queues: [plain], location: US-CA}
  - {id: ben, queues: [plain, local], location: US-TX}
"""


def test_a_location_nothing_matches_on_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "acd.yaml"
    path.write_text(CONFIG)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    text = str(exc.value)
    assert "acd.yaml:7: agents.0.location: location is set but no queue of this agent matches on location" in text
    assert "agents.1" not in text  # ben's queue `local` matches on it
