"""CRM webhooks: every cti.events event an endpoint of `crm_endpoints` asks for, POSTed as a signed
Standard Webhooks delivery (docs/CONFIG.md#crm_endpoints, "Delivery").

One `EndpointDelivery` per endpoint, each with its own consumer of cti.events in its own group
`cti-crm-<endpoint id>`, its own HTTP client and its own bounds, beside the screen-pop consumer: a
CRM that is down or slow holds only its own deliveries, never the screen pops, routing or another
CRM.

* Body: `platform.webhook_payload.webhook_body` as compact JSON; headers `webhook-id` (the
  CtiEvent's event_id: a redelivery, also after a crash, carries the same id), `webhook-timestamp`
  (when this attempt was signed) and `webhook-signature` (`standardwebhooks.Webhook(secret).sign`).
* A 2xx answer is delivered. Any other status, a timeout or a connection error is retried after a
  full-jitter exponential backoff (core.webhooks), up to `max_attempts` attempts and within
  `max_age_s` of the event; then the event's record goes to the dead-letter topic with the last
  failure as the reason.
* Order: the events of one call (one key of cti.events, so one partition, in topic order) are
  delivered one after another; calls are delivered concurrently, at most
  `SWITCHBOARD_CTI_WEBHOOK_MAX_IN_FLIGHT` requests at once. Reading pauses while
  `SWITCHBOARD_CTI_WEBHOOK_MAX_PENDING` events are unfinished, so a CRM that is down costs bounded
  memory.
* Commits: a partition is committed only up to its oldest event not yet delivered or dead-lettered
  (core.webhooks.OffsetTracker): a kill -9 loses nothing, the unfinished events are delivered
  again after the restart.
* A new endpoint starts at the end of cti.events (it does not get a week of history); its start
  is committed when it first gets its partitions, so nothing published after that is skipped.

No caller number, URL or secret is logged: log lines name the endpoint id, the call and event ids.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition
from prometheus_client import Counter, Gauge, Histogram
from standardwebhooks import Webhook
from standardwebhooks.webhooks import EmptyWebhookSecretError

from switchboard.core.config import CrmEndpoint
from switchboard.core.webhooks import GiveUp, OffsetTracker, after_failure, backoff_s, matches
from switchboard.platform import codec, ops
from switchboard.platform.kafka import EventBus, leave_group_on_close, make_consumer
from switchboard.platform.retry import StoppedWhileRetrying
from switchboard.platform.topics import CTI_EVENTS
from switchboard.platform.webhook_payload import webhook_body, webhook_type
from switchboard.services.cti.settings import CtiSettings
from switchboard.v1 import events_pb2 as pb

log = structlog.get_logger(__name__)

DELIVERIES = Counter(
    "switchboard_crm_deliveries",
    "CRM webhook events finished, by endpoint and result (delivered | dead_lettered)",
    ["endpoint", "result"],
)
ATTEMPTS = Counter(
    "switchboard_crm_delivery_attempts",
    "CRM webhook HTTP attempts, by endpoint and outcome (2xx, http_4xx, http_5xx, http_3xx, timeout, connection_error)",
    ["endpoint", "outcome"],
)
REQUEST_SECONDS = Histogram(
    "switchboard_crm_request_seconds",
    "Time of one CRM webhook HTTP attempt (failures and timeouts included), by endpoint",
    ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
DELIVERY_LATENCY = Histogram(
    "switchboard_crm_delivery_latency_seconds",
    "From the cti event to its 2xx answer (retries included), by endpoint",
    ["endpoint"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0),
)
DEAD_LETTERED = Counter("switchboard_crm_dead_letters", "CRM webhook events dead-lettered, by endpoint", ["endpoint"])
OLDEST_UNDELIVERED = Gauge(
    "switchboard_crm_oldest_undelivered_seconds",
    "Age of the oldest event read for the endpoint and not yet delivered or dead-lettered (0: none)",
    ["endpoint"],
)


class CrmSecretError(ValueError):
    """An endpoint's secret_env is unset or holds no Standard Webhooks secret (the value is never shown)."""


def webhook_signers(endpoints: Sequence[CrmEndpoint], env: Mapping[str, str], config: str) -> dict[str, Webhook]:
    """endpoint id → its signer, from the environment variable each endpoint names; CrmSecretError listing
    every endpoint whose secret is missing or unusable."""
    out: dict[str, Webhook] = {}
    problems: list[str] = []
    for i, e in enumerate(endpoints):
        where = f"{config}: crm_endpoints.{i}.secret_env"
        value = env.get(e.secret_env, "")
        if not value.strip():
            problems.append(
                f"{where}: environment variable {e.secret_env} is not set for cti "
                f"(set it to the endpoint's Standard Webhooks secret, whsec_ followed by base64)"
            )
            continue
        try:
            out[e.id] = Webhook(_checked_secret(value.strip()))
        except (ValueError, EmptyWebhookSecretError):  # the message is ours: the library's could quote the value
            problems.append(
                f"{where}: environment variable {e.secret_env} does not hold a Standard Webhooks secret "
                "(write whsec_ followed by the base64 secret, as the CRM gave it)"
            )
    if problems:
        raise CrmSecretError("\n".join(problems))
    return out


def _checked_secret(value: str) -> str:
    """`value` if it is whsec_ + base64 of a key (ValueError otherwise): the library decodes leniently, dropping
    whatever is not base64, so a mangled secret would sign with another key and every delivery be refused."""
    raw = value.removeprefix("whsec_")
    if not raw or not base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True):
        raise ValueError("empty secret")
    return value


def attempt_outcome(status: int | None, error: str | None) -> str:
    """The bounded label of an attempt: 2xx, http_4xx, ... or the error kind."""
    if error is not None:
        return error
    assert status is not None
    return "2xx" if 200 <= status < 300 else f"http_{status // 100}xx"


@dataclass
class _Item:
    record: ConsumerRecord
    event: pb.CtiEvent | None  # None: undecodable
    read_at: float  # wall clock (s) when read
    generation: int  # the partition's ownership generation when read (a revoked partition's items are dropped)

    @property
    def happened_at(self) -> float:
        """When the event happened (its occurred_at), else when it was read."""
        if self.event is not None and self.event.HasField("occurred_at"):
            return self.event.occurred_at.ToNanoseconds() / 1e9
        return self.read_at


class EndpointDelivery:
    """The deliveries of one endpoint: its consumer loop, one task per call with events waiting."""

    def __init__(
        self,
        endpoint: CrmEndpoint,
        signer: Webhook,
        settings: CtiSettings,
        bus: EventBus,
        stop: asyncio.Event,
        *,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.endpoint = endpoint
        self.signer = signer
        self.settings = settings
        self.bus = bus
        self.stop = stop
        self.rand = rand
        self.group_id = f"{settings.group_id}-crm-{endpoint.id}"
        self.started = asyncio.Event()  # set once the first assignment's start positions are committed
        self.tracker = OffsetTracker()
        self.slots = asyncio.Semaphore(settings.webhook_max_in_flight)
        self.calls: dict[bytes, deque[_Item]] = {}  # call key → its events not finished, in topic order
        self.pending: dict[tuple[int, int], float] = {}  # (partition, offset) → when its event happened
        self.delivered: OrderedDict[str, None] = OrderedDict()  # event ids delivered (bounded): a repeat is skipped
        self.tasks: set[asyncio.Task[None]] = set()
        self.owned: set[TopicPartition] = set()
        self.generation: dict[int, int] = {}
        self.committed: dict[int, int] = {}
        self.client = httpx.AsyncClient(
            timeout=endpoint.timeout_ms / 1000,
            limits=httpx.Limits(max_connections=settings.webhook_max_in_flight),
            follow_redirects=False,  # a redirect is not a delivery: it counts as a failed attempt (http_3xx)
        )
        self._gauge_due = 0.0
        self.failure: BaseException | None = None  # a call's task that died: ends the service

    # ------------------------------------------------------------------ the consumer loop

    async def run(self) -> None:
        kafka = self.settings.kafka
        consumer = make_consumer(kafka, self.group_id, self.group_id, CTI_EVENTS.name, auto_offset_reset="latest")
        await consumer.start()
        leave_group_on_close(consumer)
        health = ops.health()
        try:
            with health.watching(f"crm:{self.endpoint.id}") as loop:
                while not self.stop.is_set():
                    loop.beat()
                    assigned = consumer.assignment()
                    if self.tracker.pending() >= self.settings.webhook_max_pending:
                        consumer.pause(*assigned)
                    else:
                        consumer.resume(*assigned)
                    batches = await consumer.getmany(timeout_ms=100, max_records=500)
                    await self._follow_assignment(consumer, batches)
                    for records in batches.values():
                        for record in records:
                            self._take(record)
                    await self._commit(consumer)
                    self._show_oldest()
        finally:
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            await self.client.aclose()
            OLDEST_UNDELIVERED.labels(self.endpoint.id).set(0)
            await consumer.stop()
        if self.failure is not None:
            raise self.failure

    async def _follow_assignment(
        self, consumer: AIOKafkaConsumer, batches: Mapping[TopicPartition, list[ConsumerRecord]]
    ) -> None:
        now = set(consumer.assignment())
        for tp in self.owned - now:  # revoked: the new owner delivers from the last commit
            self.tracker.forget(tp.partition)
            self.generation[tp.partition] = self.generation.get(tp.partition, 0) + 1
            self.committed.pop(tp.partition, None)
            for key in [k for k in self.pending if k[0] == tp.partition]:
                del self.pending[key]
        for tp in now - self.owned:
            try:
                done = await consumer.committed(tp)
                if done is None:
                    # A new group reads from the end; commit where it starts, so a crash before its first
                    # delivery does not start it at a later end.
                    records = batches.get(tp)
                    start = records[0].offset if records else await consumer.position(tp)
                    await consumer.commit({tp: start})
                    done = start
                self.committed[tp.partition] = done
            except KafkaError as exc:
                log.warning("crm_start_commit_failed", endpoint=self.endpoint.id, partition=tp.partition, error=str(exc))
                records = batches.get(tp)
                if records:  # not taken (not owned yet): read them again once the start is committed
                    consumer.seek(tp, records[0].offset)
                continue  # retried at the next loop
            self.owned.add(tp)
        self.owned &= now
        if self.owned and self.owned == now and not self.started.is_set():
            self.started.set()

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        points = {
            TopicPartition(CTI_EVENTS.name, p): offset
            for p, offset in self.tracker.commit_points().items()
            if TopicPartition(CTI_EVENTS.name, p) in self.owned and self.committed.get(p) != offset
        }
        if not points:
            return
        try:
            await consumer.commit(points)
        except KafkaError as exc:  # e.g. during a rebalance: the next loop commits again, or the new owner redelivers
            log.warning("crm_commit_failed", endpoint=self.endpoint.id, error=str(exc))
            return
        for tp, offset in points.items():
            self.committed[tp.partition] = offset

    def _show_oldest(self) -> None:
        now = time.time()
        if now < self._gauge_due:
            return
        self._gauge_due = now + 1.0
        oldest = min(self.pending.values(), default=None)
        OLDEST_UNDELIVERED.labels(self.endpoint.id).set(0 if oldest is None else max(0.0, now - oldest))

    # ------------------------------------------------------------------ one record

    def _take(self, record: ConsumerRecord) -> None:
        if TopicPartition(record.topic, record.partition) not in self.owned:
            return  # fetched before its start was committed: read again from the commit
        self.tracker.add(record.partition, record.offset)
        try:
            event: pb.CtiEvent | None = codec.decode(CTI_EVENTS, record.value)
        except codec.UndecodableEvent:
            event = None
        if event is not None and not self._wanted(event):
            self.tracker.done(record.partition, record.offset)
            return
        item = _Item(record, event, time.time(), self.generation.get(record.partition, 0))
        self.pending[(record.partition, record.offset)] = item.happened_at
        key = record.key or b""
        queue = self.calls.get(key)
        if queue is None:
            queue = self.calls[key] = deque()
            task = asyncio.create_task(self._drain(key, queue), name=f"crm-{self.endpoint.id}")
            self.tasks.add(task)
            task.add_done_callback(self._task_done)
        queue.append(item)

    def _wanted(self, event: pb.CtiEvent) -> bool:
        if event.event_id in self.delivered:
            log.info("crm_duplicate_skipped", endpoint=self.endpoint.id, call_id=event.call_id, event_id=event.event_id)
            return False
        try:
            kind = webhook_type(event)
        except ValueError:
            return False  # a type without a webhook name (unspecified): nothing to deliver
        return matches(self.endpoint, kind, event)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not isinstance(exc, StoppedWhileRetrying):
            log.error("crm_task_failed", endpoint=self.endpoint.id, error=f"{type(exc).__name__}: {exc}", exc_info=exc)
            # Its call's events would hold the partition's commits for ever: stop cti (run() raises it), the
            # restart delivers them again.
            self.failure = self.failure or exc
            self.stop.set()

    async def _drain(self, key: bytes, queue: deque[_Item]) -> None:
        """Deliver one call's events in order, each finished (delivered or dead-lettered) before the next."""
        try:
            while queue:
                item = queue[0]
                if self._current(item):
                    await self._finish(item)
                    if self._current(item):  # not revoked meanwhile (a re-assigned partition's offsets are new entries)
                        self.tracker.done(item.record.partition, item.record.offset)
                        self.pending.pop((item.record.partition, item.record.offset), None)
                queue.popleft()
        finally:
            if self.calls.get(key) is queue:
                del self.calls[key]

    def _current(self, item: _Item) -> bool:
        """The item's partition is still this consumer's, as when it was read."""
        return self.generation.get(item.record.partition, 0) == item.generation

    async def _finish(self, item: _Item) -> None:
        if item.event is None:
            await self._dead_letter(item, f"undecodable: not a CtiEvent (crm endpoint {self.endpoint.id})")
            return
        try:
            await self._deliver(item, item.event)
        except (asyncio.CancelledError, StoppedWhileRetrying):
            raise
        except Exception as exc:  # a bug here must not hold the call's later events for ever: dead-letter it
            log.exception("crm_delivery_error", endpoint=self.endpoint.id, call_id=item.event.call_id)
            await self._dead_letter(item, f"crm delivery error: crm endpoint {self.endpoint.id}: {type(exc).__name__}: {exc}")

    async def _deliver(self, item: _Item, event: pb.CtiEvent) -> None:
        body = json.dumps(webhook_body(event), separators=(",", ":"), ensure_ascii=False)
        attempts = 0
        while True:
            attempts += 1
            failure = await self._attempt(event, body)
            if failure is None:
                self._remember(event.event_id)
                DELIVERIES.labels(self.endpoint.id, "delivered").inc()
                DELIVERY_LATENCY.labels(self.endpoint.id).observe(max(0.0, time.time() - item.happened_at))
                log.info(
                    "crm_delivered", endpoint=self.endpoint.id, call_id=event.call_id, event_id=event.event_id, attempts=attempts
                )
                return
            age = time.time() - item.happened_at
            delay = backoff_s(attempts, self.rand(), self.settings.webhook_backoff_base_s, self.settings.webhook_backoff_max_s)
            step = after_failure(self.endpoint, attempts, age, delay, failure)
            if isinstance(step, GiveUp):
                await self._dead_letter(item, step.reason)
                return
            log.warning(
                "crm_delivery_failed",
                endpoint=self.endpoint.id,
                call_id=event.call_id,
                event_id=event.event_id,
                attempt=attempts,
                failure=failure,
                retry_in_s=round(step.delay_s, 3),
            )
            try:
                await asyncio.wait_for(self.stop.wait(), timeout=step.delay_s)
            except TimeoutError:
                continue
            # Stopping: the event stays uncommitted and is delivered after the restart.
            raise StoppedWhileRetrying(f"stopped while crm endpoint {self.endpoint.id} still failed: {failure}")

    async def _attempt(self, event: pb.CtiEvent, body: str) -> str | None:
        """One POST: None when delivered (2xx), else the failure (http_<status>, timeout, connection_error)."""
        signed_at = datetime.now(tz=UTC)
        headers = {
            "content-type": "application/json",
            "user-agent": "switchboard-cti",
            "webhook-id": event.event_id,
            "webhook-timestamp": str(int(signed_at.timestamp())),
            "webhook-signature": self.signer.sign(event.event_id, signed_at, body),
        }
        status: int | None = None
        error: str | None = None
        async with self.slots:
            started = time.perf_counter()
            try:
                response = await self.client.post(self.endpoint.url, content=body.encode(), headers=headers)
                status = response.status_code
            except httpx.TimeoutException:
                error = "timeout"
            except httpx.ConnectError:
                error = "connection_refused"
            except httpx.HTTPError:
                error = "connection_error"
            finally:
                REQUEST_SECONDS.labels(self.endpoint.id).observe(time.perf_counter() - started)
        outcome = attempt_outcome(status, error)
        ATTEMPTS.labels(self.endpoint.id, outcome).inc()
        if outcome == "2xx":
            return None
        return error or f"http_{status}"

    def _remember(self, event_id: str) -> None:
        self.delivered[event_id] = None
        while len(self.delivered) > self.settings.webhook_dedupe_capacity:
            self.delivered.popitem(last=False)

    async def _dead_letter(self, item: _Item, reason: str) -> None:
        await self.bus.dead_letter(item.record, reason, stop=self.stop)
        DELIVERIES.labels(self.endpoint.id, "dead_lettered").inc()
        DEAD_LETTERED.labels(self.endpoint.id).inc()
        call_id = item.event.call_id if item.event is not None else ""
        log.warning("crm_dead_lettered", endpoint=self.endpoint.id, call_id=call_id, reason=reason)


class Webhooks:
    """Every endpoint's delivery, each in its own task next to the screen-pop consumer."""

    def __init__(self, deliveries: list[EndpointDelivery]) -> None:
        self.deliveries = deliveries
        self.tasks: list[asyncio.Task[None]] = []

    @classmethod
    def start(
        cls,
        endpoints: Sequence[CrmEndpoint],
        signers: Mapping[str, Webhook],
        settings: CtiSettings,
        bus: EventBus,
        stop: asyncio.Event,
    ) -> Webhooks:
        hooks = cls([EndpointDelivery(e, signers[e.id], settings, bus, stop) for e in endpoints])
        for d in hooks.deliveries:
            task = asyncio.create_task(d.run(), name=f"crm-{d.endpoint.id}")
            # A delivery that died would leave its CRM without events while cti looks healthy: stop the
            # service instead (stop() raises the error, the process exits non-zero and is restarted).
            task.add_done_callback(_log_failure(d.endpoint.id, stop))
            hooks.tasks.append(task)
        if endpoints:
            log.info("crm_endpoints", endpoints=[e.id for e in endpoints])
        return hooks

    def when_started(self, then: Callable[[], None]) -> None:
        """Call `then` once every endpoint has its partitions and its start committed (at once without endpoints)."""

        async def wait() -> None:
            await asyncio.gather(*(d.started.wait() for d in self.deliveries))
            then()

        task = asyncio.create_task(wait(), name="crm-started")
        task.add_done_callback(_log_failure("started"))
        self.tasks.append(task)

    async def stop(self) -> None:
        """Wait for every delivery to end (the stop event is set); raise the error of one that failed."""
        for task in self.tasks:
            if task.get_name() == "crm-started":
                task.cancel()
        results = await asyncio.gather(*self.tasks, return_exceptions=True)
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            raise failed[0]


def _log_failure(what: str, stop: asyncio.Event | None = None) -> Callable[[asyncio.Task[None]], None]:
    def done(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("crm_endpoint_failed", endpoint=what, error=f"{type(exc).__name__}: {exc}", exc_info=exc)
            if stop is not None:
                stop.set()

    return done
