"""The simulator's resolved behaviors (simulation.behavior) against the behaviors a configuration writes (core.config)."""

from dataclasses import fields

import pytest
from pydantic import BaseModel

from switchboard.core.config import AgentBehavior, BuyerBehavior, QueueBehavior
from switchboard.simulation.behavior import AGENT_DEFAULTS, BUYER_DEFAULTS, AgentModel, BuyerModel, QueueModel


@pytest.mark.parametrize(
    ("resolved", "written"), [(BuyerModel, BuyerBehavior), (AgentModel, AgentBehavior), (QueueModel, QueueBehavior)]
)
def test_a_resolved_behavior_has_the_fields_of_the_written_one(resolved: type, written: type[BaseModel]):
    assert [f.name for f in fields(resolved)] == list(written.model_fields)


@pytest.mark.parametrize(("resolved", "defaults"), [(BuyerModel, BUYER_DEFAULTS), (AgentModel, AGENT_DEFAULTS)])
def test_the_built_in_defaults_fill_every_field(resolved: type, defaults: BaseModel):
    assert all(getattr(defaults, f.name) is not None for f in fields(resolved))
