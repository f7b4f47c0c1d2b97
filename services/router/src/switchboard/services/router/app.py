"""The router's Faust app: what runs where, and the wiring of its parts (create_app).

Agents (concurrency 1 each: docs/ROUTER.md, "Rebalance under traffic"):
  route   key call id; ivr.completed, bid.received, call.ended, post.answered, router.deadlines and
          <app>.replies → calls.Calls, the call side (its docstring has the flow)
  ledger  key buyer id; <app>.ledger → bookkeeper.Bookkeeper, the single writer of buyer state
Timers (they write no table: they send messages the agents handle in stream context):
  deadlines  every deadline_tick_ms → deadlines.DeadlineTimer (auctions and posts whose time is up)
  sweep      every sweep_interval_s → sweeps.Sweeper (calls whose end never came, finished calls to forget)

Tables keyed by call id (co-partitioned with the sources, changelog-backed; record.py has their
content): `auctions` (the open calls) and `finished` (how and when each call ended); keyed by
buyer id / tier key: `loads` and `tiers` (bookkeeper.py).

The parts are plain classes that get what they use passed in: the tables (through
record.CallRecords / FinishedCalls), the topics, a publishing.Publisher, the worker's LoadView
(view.py), its QueueOutlook (outlook.py: call.queued's position and projected wait) and the BidsRead the call side writes and the deadline timer reads. Only `_wire`
knows all of them; `Router` holds them for the service (service.py reads its view).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import faust
from faust.transport.base import Transport

from switchboard.core.config import RoutingConfig
from switchboard.platform.topics import (
    BID_RECEIVED,
    CALL_ENDED,
    CALL_OVERFLOWED,
    CALL_QUEUED,
    CALL_REJECTED,
    CALL_ROUTED,
    DEAD_LETTER,
    IVR_COMPLETED,
    PING_REQUESTED,
    POST_ANSWERED,
    POST_REQUESTED,
)
from switchboard.services.router.bookkeeper import Bookkeeper
from switchboard.services.router.calls import Calls
from switchboard.services.router.deadlines import BidsRead, DeadlineTimer
from switchboard.services.router.outlook import QueueOutlook
from switchboard.services.router.publishing import Publisher
from switchboard.services.router.record import CallRecords, FinishedCalls
from switchboard.services.router.settings import RouterSettings
from switchboard.services.router.sweeps import Sweeper
from switchboard.services.router.transport import transport_class
from switchboard.services.router.view import LoadView

_RAW: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}


class RouterApp(faust.App):
    """faust.App whose consumer honours KafkaSettings.fetch_max_wait_ms (see transport.py)."""

    def __init__(self, *args: Any, fetch_max_wait_ms: int, **kwargs: Any) -> None:
        self._fetch_max_wait_ms = fetch_max_wait_ms
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> Transport:
        return transport_class(self._fetch_max_wait_ms)(self.conf.broker_consumer, self)


@dataclass(frozen=True)
class Router:
    """One worker's parts, wired by create_app."""

    calls: Calls
    deadlines: DeadlineTimer
    sweeper: Sweeper
    bookkeeper: Bookkeeper
    view: LoadView
    outlook: QueueOutlook


def _wire(app: RouterApp, config: RoutingConfig, settings: RouterSettings) -> Router:
    """The tables, topics and parts of one worker, and its agents and timers on `app`."""
    partitions = settings.kafka.partitions
    # JSON keys and values: the changelog decodes back to the same str keys and dict values on recovery.
    schema: faust.Schema[str, Any] = faust.Schema(key_serializer="json", value_serializer="json")
    records = CallRecords(app.Table("auctions", partitions=partitions, schema=schema))
    finished = FinishedCalls(app.Table("finished", partitions=partitions, schema=schema))
    replies_topic = settings.internal_topic("replies")
    source = app.topic(
        IVR_COMPLETED.name,
        BID_RECEIVED.name,
        CALL_ENDED.name,
        POST_ANSWERED.name,
        CALL_OVERFLOWED.name,
        settings.deadlines_topic,
        replies_topic,
        partitions=partitions,
        internal=True,
        **_RAW,
    )
    deadlines = app.topic(settings.deadlines_topic, partitions=partitions, internal=True, **_RAW)
    internal = {
        kind: app.topic(settings.internal_topic(kind), partitions=partitions, internal=True, **_RAW)
        for kind in ("ledger", "replies", "view")
    }
    out = {
        t.name: app.topic(t.name, **_RAW)
        for t in (PING_REQUESTED, POST_REQUESTED, CALL_ROUTED, CALL_REJECTED, CALL_QUEUED, DEAD_LETTER)
    }
    publisher = Publisher(config, out, internal["ledger"], settings.kafka)
    view = LoadView()
    outlook = QueueOutlook()
    bookkeeper = Bookkeeper(
        app, config, partitions, internal, publisher.dead_letter, timedelta(seconds=settings.max_call_duration_s)
    )
    bids_read = BidsRead()
    finished_retention_ms = int(settings.finished_retention_s * 1000)
    calls = Calls(
        config,
        records,
        finished,
        view,
        publisher,
        bids_read,
        settings.deadlines_topic,
        replies_topic,
        finished_retention_ms,
        outlook,
    )
    timer = DeadlineTimer(
        records,
        deadlines,
        bids_read,
        settings.kafka,
        settings.app_id,
        settings.late_deadline_ms,
        settings.late_deadline_hold_ms,
    )
    sweeper = Sweeper(records, finished, deadlines, bookkeeper, int(settings.max_call_duration_s * 1000), finished_retention_ms)
    app.agent(source, name="route")(calls.process)
    app.agent(internal["ledger"], name="ledger")(bookkeeper.process)
    app.timer(settings.deadline_tick_ms / 1000, name="deadlines")(timer.signal_expired)
    app.timer(settings.sweep_interval_s, name="sweep")(sweeper.sweep)
    return Router(calls, timer, sweeper, bookkeeper, view, outlook)


def create_app(settings: RouterSettings, config: RoutingConfig) -> tuple[RouterApp, Router]:
    """Build the Faust app (nothing connects until it is started)."""
    kafka = settings.kafka
    data_dir = settings.data_dir or tempfile.mkdtemp(prefix="switchboard-router-")
    app = RouterApp(
        settings.app_id,
        fetch_max_wait_ms=kafka.fetch_max_wait_ms,
        broker=[f"kafka://{hp.strip()}" for hp in kafka.bootstrap_servers.split(",") if hp.strip()],
        # TLS/SASL as every aiokafka client of Switchboard has it (KafkaSettings.client_kwargs).
        broker_credentials=kafka.faust_credentials(),
        store="memory://",  # state lives in the changelog topics; recovered on restart
        datadir=str(data_dir),
        topic_partitions=kafka.partitions,
        topic_replication_factor=kafka.replication_factor,
        topic_disable_leader=True,
        broker_session_timeout=kafka.session_timeout_ms / 1000,
        broker_rebalance_timeout=kafka.rebalance_timeout_ms / 1000,
        broker_heartbeat_interval=kafka.heartbeat_interval_ms / 1000,
        producer_linger=kafka.linger_ms / 1000,
        consumer_auto_offset_reset="earliest",
        web_enabled=bool(settings.web_port),
        web_host="127.0.0.1",
        web_port=settings.web_port or 6066,
        web_bind="127.0.0.1",
    )
    return app, _wire(app, config, settings)
