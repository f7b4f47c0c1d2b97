"""The router's Publisher.dead_letter retries a failing write and waits for its delivery (no agent crash)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka.errors import KafkaTimeoutError
from faust.exceptions import ProducerSendError

from switchboard.platform import codec
from switchboard.platform.settings import KafkaSettings
from switchboard.platform.topics import DEAD_LETTER
from switchboard.services.router.publishing import Publisher


class FlakyTopic:
    """A Faust topic's send(): the first `failures` sends fail as Faust reports a broker timeout, later
    deliveries fail once more after the send was accepted (the future), then all succeed."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.delivery_failures = 1
        self.sent: list[tuple[bytes | None, bytes]] = []

    async def send(self, *, key: bytes | None, value: bytes) -> Any:
        if self.failures:
            self.failures -= 1
            try:
                raise KafkaTimeoutError("injected")
            except KafkaTimeoutError as exc:
                raise ProducerSendError("Error while sending") from exc
        fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        if self.delivery_failures:
            self.delivery_failures -= 1
            fut.set_exception(KafkaTimeoutError("injected: no ack"))
        else:
            self.sent.append((key, value))
            fut.set_result(object())
        return fut


async def test_a_failing_dead_letter_write_is_retried_until_delivered():
    topic = FlakyTopic(failures=2)
    publisher = Publisher(None, {DEAD_LETTER.name: topic}, None, KafkaSettings())  # type: ignore[arg-type]
    message = SimpleNamespace(topic="ivr.completed", partition=2, offset=41, key=b"call-1", value=b"\xffjunk")
    await asyncio.wait_for(publisher.dead_letter(SimpleNamespace(message=message), "undecodable: test"), 10)
    [(key, value)] = topic.sent
    letter = codec.decode(DEAD_LETTER, value)
    assert key == b"call-1"
    assert (letter.source_topic, letter.source_partition, letter.source_offset, letter.value) == (
        "ivr.completed",
        2,
        41,
        b"\xffjunk",
    )
    assert letter.reason == "undecodable: test" and letter.service == "router"
