"""`python -m switchboard.services.analytics.migrate`: create the analytics schema on the DSN's store.

The migration step of a deployment (the analytics pod's init container in deploy/base/analytics.yaml):
the database and every table and view of switchboard.analytics.tables (tables `CREATE ... IF NOT EXISTS`,
views `CREATE OR REPLACE`: they hold no data), so it is
idempotent and every start may run it. The DSN and database are the sink's settings
(SWITCHBOARD_ANALYTICS_DSN, SWITCHBOARD_ANALYTICS_DATABASE). With `--wait N` it retries for up to N
seconds while the server does not answer (it may start after the pod). Schema changes beyond new
tables (versioned migrations) are issue 14's.

Exit codes: 0 done, 2 the store did not answer in time, 1 the settings are wrong.
"""

from __future__ import annotations

import argparse
import sys
import time

import structlog

from switchboard.analytics import tables
from switchboard.analytics.client import database_of, open_client, redact, split_dsn
from switchboard.platform.logging import configure_logging
from switchboard.services.analytics.settings import AnalyticsSettings

log = structlog.get_logger("analytics.migrate")


def migrate(dsn: str, database: str | None = None) -> list[str]:
    """Apply the schema to `dsn` (blocking); return the tables and views it holds."""
    db = database_of(dsn, database)
    client = open_client(dsn, db)
    try:
        tables.ensure_schema(client, db)
        return [t.name for t in tables.ALL_TABLES] + [v.name for v in tables.ALL_VIEWS]
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m switchboard.services.analytics.migrate", description=__doc__.splitlines()[0])
    parser.add_argument("--wait", type=float, default=0.0, help="seconds to retry while the store does not answer (default 0)")
    args = parser.parse_args(argv)
    try:
        settings = AnalyticsSettings()
        split_dsn(settings.dsn)  # an unsupported DSN is a settings error, not something to wait out
    except ValueError as exc:  # pydantic's ValidationError names every wrong variable
        print(f"analytics settings: {exc}", file=sys.stderr)  # noqa: T201 — before logging is configured
        return 1
    configure_logging(settings.log, service="analytics-migrate")
    deadline = time.monotonic() + args.wait
    attempt = 0
    while True:
        attempt += 1
        try:
            made = migrate(settings.dsn, settings.database)
        except Exception as exc:  # noqa: BLE001 — any failure to reach the store is retried until the deadline
            # Every failed attempt is logged, the last one too (on a slow machine the first may outlast the wait).
            log.info("store_not_answering", dsn=redact(settings.dsn), attempt=attempt, error=type(exc).__name__)
            if time.monotonic() >= deadline:
                log.error("schema_not_applied", dsn=redact(settings.dsn), attempts=attempt, error=f"{type(exc).__name__}: {exc}")
                return 2
            time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
            continue
        log.info("schema_applied", dsn=redact(settings.dsn), database=database_of(settings.dsn, settings.database), tables=made)
        return 0


if __name__ == "__main__":
    sys.exit(main())
