"""`python -m switchboard.services.analytics`: the ClickHouse sink of every topic."""

from __future__ import annotations

import sys


from switchboard.platform.lifecycle import run_service
from switchboard.platform.logging import configure_logging
from switchboard.services.analytics.service import StorageUnavailable, run
from switchboard.services.analytics.settings import AnalyticsSettings


def main() -> None:
    settings = AnalyticsSettings()
    log = configure_logging(settings.log, service="analytics")
    try:
        run_service(lambda stop: run(settings, stop))
    except StorageUnavailable as exc:
        log.error("storage_unavailable", error=str(exc))  # a known condition: one line, no traceback
        sys.exit(2)


if __name__ == "__main__":
    main()
