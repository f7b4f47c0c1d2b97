"""Analytics sink: every topic → ClickHouse, for analysts and reports.

Run: ``python -m switchboard.services.analytics`` (consumer group ``analytics``).

Settings (env prefix ``SWITCHBOARD_ANALYTICS_``, plus the shared ``SWITCHBOARD_KAFKA_*``):

- ``DSN``: where rows go. Default ``chdb://<current directory>/var/chdb``
  (embedded chDB, absolute path resolved at start). ``chdb:///abs/dir`` for
  another directory, ``?database=name`` to pick the database; a ClickHouse
  server with ``http(s)://user:pass@host:port/database``. Same code either way.
- ``DATABASE``: overrides the DSN's database (default ``switchboard``).
- ``GROUP_ID`` (``analytics``), ``BATCH_ROWS`` (1000), ``FLUSH_INTERVAL_MS`` (200),
  ``RETRY_MAX_MS`` (5000, backoff cap while ClickHouse is unreachable).

An embedded chDB directory has one owner process: while the sink runs, read the
data through the sink's DSN only after stopping it, or point the sink at a
ClickHouse server to query live. Tables (created with IF NOT EXISTS at start):
``events`` (every event, payload as JSON) and the typed ``calls_started``,
``pings``, ``bids``, ``calls_routed``, ``calls_rejected``, ``calls_ended``,
``cti_events``, ``agent_events``, ``call_dispositions``, ``dead_letters``, and the
view ``dispositions_all`` (agent and CRM dispositions with the call's campaign) — see
switchboard.analytics.tables. They are ReplacingMergeTree on the event id: use ``FINAL``
for exact per-event counts.

The schema alone (a deployment's migration step, e.g. the analytics pod's init container):
``python -m switchboard.services.analytics.migrate [--wait S]`` (same DSN settings; idempotent).
"""
