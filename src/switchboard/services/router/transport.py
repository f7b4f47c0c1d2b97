"""A Faust aiokafka transport whose worker consumer honours KafkaSettings.fetch_max_wait_ms.

Why: faust-streaming hard-codes `fetch_max_wait_ms=1500` in
`AIOKafkaConsumerThread._create_worker_consumer`. A fetch then waits up to
1.5 s for data on an idle partition, and on Tansu each routed call would pay
that wait on every hop (ivr.completed → ping.requested → bid.received). With a
few milliseconds a hop costs ~10 ms. Everything else is Faust's own code: we
only change the value on the (not yet started) aiokafka consumer, which reads
it when `start()` builds its fetcher.
"""

from __future__ import annotations

from typing import Any

import aiokafka
from faust.transport.drivers import aiokafka as faust_aiokafka

from switchboard.platform.kafka import leave_group_on_close


class FastFetchConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    fetch_max_wait_ms: int = 5

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka keeps the constructor argument here and uses it in start() (aiokafka 0.11-0.14).
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms
        return consumer

    async def on_start(self) -> None:
        await super().on_start()  # creates and starts the aiokafka consumer (and its coordinator)
        if self._consumer is not None:
            leave_group_on_close(self._consumer)


class FastFetchConsumer(faust_aiokafka.Consumer):
    fetch_max_wait_ms: int = 5

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        thread = FastFetchConsumerThread(self, loop=self.loop, beacon=self.beacon)
        thread.fetch_max_wait_ms = self.fetch_max_wait_ms
        return thread


def transport_class(fetch_max_wait_ms: int) -> type[faust_aiokafka.Transport]:
    """A Transport class whose consumers fetch with `fetch_max_wait_ms` (one class per app)."""
    consumer_cls = type("FastFetchConsumer", (FastFetchConsumer,), {"fetch_max_wait_ms": fetch_max_wait_ms})
    return type("FastFetchTransport", (faust_aiokafka.Transport,), {"Consumer": consumer_cls})
