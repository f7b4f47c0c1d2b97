"""The floor's relay process: `python -m bench.relay BOOTSTRAP PARTITIONS MODE` (bench/floor.py starts it).

MODE "pipelined": per fetched batch, send every record, then await all acks, then commit
(the best one consume→produce process does). MODE "serial": send_and_wait one record at a
time, as the handlers under platform.kafka.consume publish. Prints "ready" once its group
consumer owns partitions; stops cleanly on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time

from aiokafka import AIOKafkaProducer

from bench.floor import IN, OUT, STAMP
from switchboard.platform.kafka import leave_group_on_close, make_consumer
from switchboard.platform.settings import KafkaSettings


async def relay(kafka: KafkaSettings, mode: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    consumer = make_consumer(kafka, "bench-relay", "bench-relay", IN.name)
    producer = AIOKafkaProducer(**kafka.client_kwargs(), acks="all", linger_ms=kafka.linger_ms, client_id="bench-relay")
    await consumer.start()
    leave_group_on_close(consumer)
    await producer.start()
    ready = False
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=100, max_records=500)
            if not ready and consumer.assignment():
                ready = True
                print("ready", flush=True)
            acks = []
            for records in batches.values():
                for r in records:
                    value = r.value[: STAMP.size] + STAMP.pack(time.time())
                    if mode == "serial":
                        await producer.send_and_wait(OUT.name, value, key=r.key)
                    else:
                        acks.append(await producer.send(OUT.name, value, key=r.key))
            if acks:
                await asyncio.gather(*acks)
            if batches:
                await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()


if __name__ == "__main__":
    bootstrap, partitions, mode = sys.argv[1:4]
    if mode not in ("pipelined", "serial"):
        sys.exit(f"mode: pipelined or serial, not {mode!r}")
    asyncio.run(relay(KafkaSettings(bootstrap_servers=bootstrap, partitions=int(partitions)), mode))
