"""Shared fixtures: a real Tansu broker per test session (ephemeral port), a publisher on it, temp dirs.

Plain helpers (service processes, reading topics back) are in tests/support.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from switchboard.platform.broker import EmbeddedBroker
from switchboard.platform.kafka import EventBus
from switchboard.platform.settings import DEMO_CONFIG, KafkaSettings
from tests.support import event_bus

EXAMPLE_CONFIG = DEMO_CONFIG


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One real Kafka-protocol broker (Tansu, memory storage) for the session, all topics created."""
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    b = EmbeddedBroker(log_path=log)
    asyncio.run(b.start())
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def kafka(broker: EmbeddedBroker) -> KafkaSettings:
    return broker.kafka_settings()


@pytest.fixture
async def bus(kafka: KafkaSettings) -> AsyncIterator[EventBus]:
    """A started EventBus (service name "test") on the session broker."""
    async with event_bus(kafka) as b:
        yield b


@pytest.fixture
def demo_config_path() -> Path:
    return EXAMPLE_CONFIG
