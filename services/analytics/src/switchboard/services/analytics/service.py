"""The analytics sink: every topic → ClickHouse (embedded chDB or a server), batch then commit.

Loop: fetch records of all topics (consumer group "analytics"), decode and map
each to its `events` row and typed-table row (switchboard.analytics.tables),
and flush when `batch_rows` are pending or the oldest pending row is
`flush_interval_ms` old. A flush inserts every table's rows, then commits the
Kafka offsets of exactly the records in the batch. A crash between insert and
commit redelivers those records; the ReplacingMergeTree tables collapse the
duplicates (at-least-once end to end).

platform.kafka.consume commits after each handler call, which would commit
rows that are still only in memory; hence the aiokafka loop here.

Undecodable records go to the deadletter topic (EventBus.dead_letter) and are
committed with the batch; the sink reads deadletter too, so they reach the
`dead_letters` table from there. An undecodable record *on* the deadletter
topic is recorded directly (no re-publish, no loop). Nothing a producer sends
stops the sink.

A batch ClickHouse refuses for its data (a value that fails a column type or a
table constraint) is bisected: halves are inserted until each refused row is
alone, and the records of the refused rows are dead-lettered with ClickHouse's
error text; every other row is stored and the whole batch committed, so one bad
row never blocks the sink. (Halves inserted before a refusal are inserted again
if the batch is retried: the ReplacingMergeTree tables collapse them.) Errors of
the storage rather than the data (connection refused, timeouts, too many parts,
a missing table: `transient`) keep the batch and retry it with backoff up to
retry_max_ms, without fetching more. A refused row of a record on the
deadletter topic is logged (`dead_letter_row_refused`), not dead-lettered again:
the letter stays in the topic.

clickhouse-connect calls block (and chDB runs in-process), so they all run on
one dedicated thread: the event loop keeps heartbeating and fetching.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from switchboard.analytics import tables
from switchboard.analytics.client import database_of, open_client, redact
from switchboard.platform import codec, ops
from switchboard.platform.kafka import EventBus, leave_group_on_close, make_consumer, track_lag
from switchboard.platform.lifecycle import mark_ready
from switchboard.platform.metrics import EVENTS_CONSUMED, LagTracker
from switchboard.platform.retry import StoppedWhileRetrying
from switchboard.platform.topics import ALL_TOPICS, BY_NAME, DEAD_LETTER
from switchboard.services.analytics.settings import AnalyticsSettings

SERVICE = "analytics"
log = structlog.get_logger(__name__)


@dataclass
class Batch:
    """Rows waiting for the next insert, and the offsets they cover."""

    rows: dict[str, list[tuple]] = field(default_factory=lambda: defaultdict(list))
    sources: dict[str, list[ConsumerRecord]] = field(default_factory=lambda: defaultdict(list))  # the record of each row
    offsets: dict[TopicPartition, int] = field(default_factory=dict)  # next offset to commit
    records: int = 0
    first_at: float | None = None  # monotonic time of the oldest pending record

    def add(self, table: tables.Table, row: tuple, source: ConsumerRecord) -> None:
        self.rows[table.name].append(row)
        self.sources[table.name].append(source)

    def covered(self, record: ConsumerRecord) -> None:
        self.offsets[TopicPartition(record.topic, record.partition)] = record.offset + 1
        self.records += 1
        if self.first_at is None:
            self.first_at = time.monotonic()

    def due(self, batch_rows: int, interval_s: float) -> bool:
        if not self.records:
            return False
        return self.records >= batch_rows or time.monotonic() - (self.first_at or 0) >= interval_s

    def wait_s(self, interval_s: float) -> float:
        """How long the next fetch may block before the batch is due."""
        if self.first_at is None:
            return interval_s
        return max(0.0, interval_s - (time.monotonic() - self.first_at))


TABLES_BY_NAME = {t.name: t for t in tables.ALL_TABLES}

# ClickHouse error codes of the storage's state, not of the rows: retry the same batch later.
# (159 TIMEOUT_EXCEEDED, 164 READONLY, 202 TOO_MANY_SIMULTANEOUS_QUERIES, 203 NO_FREE_CONNECTION,
# 209 SOCKET_TIMEOUT, 210 NETWORK_ERROR, 241 MEMORY_LIMIT_EXCEEDED, 242 TABLE_IS_READ_ONLY,
# 252 TOO_MANY_PARTS, 60 UNKNOWN_TABLE, 81 UNKNOWN_DATABASE, 225 NO_ZOOKEEPER, 319
# UNKNOWN_STATUS_OF_INSERT, 425 SYSTEM_ERROR, 439 CANNOT_SCHEDULE_TASK, 999 KEEPER_EXCEPTION,
# 1000 POCO_EXCEPTION, 236 ABORTED, 394 QUERY_WAS_CANCELLED.)
TRANSIENT_CODES = frozenset({159, 164, 202, 203, 209, 210, 241, 242, 252, 60, 81, 225, 319, 425, 439, 999, 1000, 236, 394})
_CODE = re.compile(r"Code: (\d+)\.")


def transient(exc: BaseException) -> bool:
    """An insert error of the storage (retry the batch), not of the rows (bisect and dead-letter)."""
    from clickhouse_connect.driver.exceptions import DatabaseError, DataError, IntegrityError, OperationalError

    if isinstance(exc, OperationalError | OSError | TimeoutError):
        return True
    if isinstance(exc, DataError | IntegrityError):  # the client could not convert a value
        return False
    if isinstance(exc, DatabaseError):
        code = _CODE.search(str(exc))
        return code is None or int(code.group(1)) in TRANSIENT_CODES  # no code: a server we cannot read, retry
    return False  # client-side conversion (ValueError, TypeError, OverflowError, DataError...): the rows


@dataclass(frozen=True)
class Refused:
    """A row ClickHouse refused, the record it came from, and ClickHouse's reason."""

    table: str
    record: ConsumerRecord
    error: str


class StorageUnavailable(RuntimeError):
    """ClickHouse could not be opened at start (chDB path owned by another process, server down)."""


class AnalyticsSink:
    def __init__(self, settings: AnalyticsSettings) -> None:
        self.settings = settings
        self.database = database_of(settings.dsn, settings.database)
        self.bus = EventBus(settings.kafka, SERVICE)
        self.batch = Batch()
        self.consumer: AIOKafkaConsumer | None = None
        self.client: Any = None
        self.inserted = 0
        self.stop: asyncio.Event | None = None  # ends the retries of a failing dead-letter write (run sets it)
        self._flush_lock = asyncio.Lock()
        # One thread owns the ClickHouse client: chDB handles are not for concurrent use.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")

    async def _blocking(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, partial(fn, *args))

    def _open_storage(self) -> Any:
        client = open_client(self.settings.dsn, self.database)
        try:
            tables.ensure_schema(client, self.database)
        except BaseException:
            client.close()
            raise
        return client

    # ------------------------------------------------------------ records → rows

    async def add(self, record: ConsumerRecord) -> None:
        topic = BY_NAME[record.topic]
        delivery = tables.Delivery(record.topic, record.partition, record.offset, record.key)
        try:
            event = codec.decode(topic, record.value)
        except codec.UndecodableEvent as exc:
            await self._undecodable(record, delivery, f"undecodable: {exc}")
            self.batch.covered(record)
            return
        try:
            self.batch.add(tables.EVENTS, tables.event_row(event, delivery), record)
            typed = tables.typed_row(record.topic, event)
            if typed is not None:
                self.batch.add(*typed, record)
        except Exception as exc:  # a mapping bug must not stop the sink: dead-letter, go on
            log.exception("row_mapping_failed", topic=record.topic, offset=record.offset)
            await self._undecodable(record, delivery, f"handler error: {type(exc).__name__}: {exc}")
        self.batch.covered(record)

    async def _undecodable(self, record: ConsumerRecord, delivery: tables.Delivery, reason: str) -> None:
        if record.topic != DEAD_LETTER.name:
            await self.bus.dead_letter(record, reason, stop=self.stop)  # comes back to us on the deadletter topic
            return
        # Garbage on the deadletter topic itself: record it here instead of publishing it again.
        letter = codec.dead_letter(SERVICE, record, reason)
        self.batch.add(tables.EVENTS, tables.event_row(letter, delivery), record)
        self.batch.add(tables.DEAD_LETTERS, tables.dead_letter_row(letter), record)
        log.warning("dead_letter_undecodable", partition=record.partition, offset=record.offset, reason=reason)

    # ------------------------------------------------------------ flush

    def _insert_all(self, batch: Batch) -> list[Refused]:
        """Insert every table's rows (blocking); return the rows refused for their data. Raises on a transient error."""
        refused: list[Refused] = []
        for name, table_rows in batch.rows.items():
            self._insert_bisecting(TABLES_BY_NAME[name], table_rows, batch.sources[name], refused)
        return refused

    def _insert_bisecting(
        self, table: tables.Table, rows: list[tuple], sources: list[ConsumerRecord], refused: list[Refused]
    ) -> None:
        """Insert `rows`; when refused for their data, insert each half the same way down to the refused rows."""
        if not rows:
            return
        try:
            tables.insert_rows(self.client, table, rows, self.database)
            return
        except Exception as exc:
            if transient(exc):
                raise
            if len(rows) == 1:
                refused.append(Refused(table.name, sources[0], f"{type(exc).__name__}: {exc}"))
                return
        mid = len(rows) // 2
        self._insert_bisecting(table, rows[:mid], sources[:mid], refused)
        self._insert_bisecting(table, rows[mid:], sources[mid:], refused)

    async def _refused(self, refused: list[Refused]) -> None:
        """Dead-letter the records of refused rows (one letter per record, naming every table that refused it)."""
        by_record: dict[tuple[str, int, int], list[Refused]] = defaultdict(list)
        for r in refused:
            by_record[(r.record.topic, r.record.partition, r.record.offset)].append(r)
        for (topic, partition, offset), rows in by_record.items():
            reason = "clickhouse refused " + "; ".join(f"its {r.table} row: {r.error}" for r in rows)
            if topic == DEAD_LETTER.name:
                log.error("dead_letter_row_refused", partition=partition, offset=offset, reason=reason)
                continue
            await self.bus.dead_letter(rows[0].record, reason, stop=self.stop)

    async def flush(self, revoked: set[TopicPartition] | None = None) -> bool:
        """Insert the pending rows, then commit their offsets. False (batch kept) when the insert failed."""
        async with self._flush_lock:
            batch = self.batch
            if not batch.records:
                return True
            try:
                refused = await self._blocking(self._insert_all, batch)
            except Exception:
                log.exception("insert_failed", records=batch.records, dsn=redact(self.settings.dsn))
                if revoked:  # no longer ours: the new owner re-reads them from the last commit
                    for tp in revoked:
                        batch.offsets.pop(tp, None)
                return False
            if refused:
                log.warning("rows_refused", rows=len(refused), tables=sorted({r.table for r in refused}))
                await self._refused(refused)  # before the commit: a refused row is never committed unrecorded
            n = sum(map(len, batch.rows.values())) - len(refused)
            self.batch = Batch()
            self.inserted += batch.records
            assert self.consumer is not None
            try:
                if batch.offsets:
                    await self.consumer.commit(batch.offsets)
            except KafkaError as exc:
                # Rows are stored; the records come again after the rebalance and collapse on merge.
                log.warning("commit_failed", error=repr(exc), records=batch.records)
            log.debug("flushed", records=batch.records, rows=n, tables=sorted(batch.rows))
            return True

    # ------------------------------------------------------------ main loop

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        self.stop = stop
        interval_s = s.flush_interval_ms / 1000
        log.info("opening_storage", dsn=redact(s.dsn), database=self.database)
        t0 = time.monotonic()
        try:
            self.client = await self._blocking(self._open_storage)
        except Exception as exc:
            self._executor.shutdown(wait=False)
            raise StorageUnavailable(
                f"cannot open analytics storage {redact(s.dsn)}: {exc}. An embedded chDB path has one owner: "
                "stop the process that has it open, or set SWITCHBOARD_ANALYTICS_DSN to another path or a server."
            ) from exc
        log.info("storage_open", ms=round((time.monotonic() - t0) * 1000))
        consumer_started = False
        try:
            await self.bus.start()
            self.consumer = make_consumer(s.kafka, s.group_id, SERVICE)
            self.consumer.subscribe([t.name for t in ALL_TOPICS], listener=_FlushOnRevoke(self))
            await self.consumer.start()
            leave_group_on_close(self.consumer)
            consumer_started = True
            ready = False
            backoff = 0.0
            health = ops.health()
            assigned = f"assigned:{s.group_id}"
            health.set(assigned, False, "joining the group")
            lag = LagTracker()
            with health.watching(f"consume:{s.group_id}") as loop:
                while not stop.is_set():
                    loop.beat()
                    if self.batch.due(s.batch_rows, interval_s):
                        if await self.flush():
                            backoff = 0.0
                        else:  # storage down: keep the batch, stop fetching, retry with backoff
                            backoff = min(s.retry_max_ms / 1000, max(0.1, backoff * 2))
                            await _wait(stop, backoff)
                            continue
                    timeout_ms = max(1, int(min(0.1, self.batch.wait_s(interval_s)) * 1000))
                    room = max(1, s.batch_rows - self.batch.records)
                    fetched = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=room)
                    health.set(assigned, bool(self.consumer.assignment()), "" if self.consumer.assignment() else "no partitions")
                    if not ready and self.consumer.assignment():
                        ready = True
                        mark_ready(SERVICE, dsn=redact(s.dsn), database=self.database, group_id=s.group_id)
                        log.info("ready", partitions=len(self.consumer.assignment()))
                    for records in fetched.values():
                        for record in records:
                            EVENTS_CONSUMED.labels(record.topic).inc()
                            await self.add(record)
                    if fetched:
                        log.debug("fetched", records=sum(map(len, fetched.values())), pending=self.batch.records)
                    await track_lag(self.consumer, lag)
            if not await self.flush():
                log.error("final_flush_failed", pending=self.batch.records, note="uncommitted: redelivered on restart")
        except StoppedWhileRetrying as exc:
            # A dead letter could not be written: the batch is not committed, its records come again on restart.
            log.error("stopped_with_batch_uncommitted", error=str(exc), pending=self.batch.records)
        finally:
            if consumer_started and self.consumer is not None:
                await self.consumer.stop()
            await self.bus.stop()
            await self._blocking(self.client.close)  # releases the chDB data path
            self._executor.shutdown(wait=True)
            log.info("stopped", inserted=self.inserted)


class _FlushOnRevoke(ConsumerRebalanceListener):
    """Flush before partitions move, so their offsets can still be committed by us."""

    def __init__(self, sink: AnalyticsSink) -> None:
        self.sink = sink

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.sink.flush(revoked=set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        pass


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass


async def run(settings: AnalyticsSettings, stop: asyncio.Event) -> None:
    """Run the sink until `stop` is set: flush, commit, close the client (releasing the chDB path)."""
    await AnalyticsSink(settings).run(stop)
