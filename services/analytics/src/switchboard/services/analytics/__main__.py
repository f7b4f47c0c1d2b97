"""`python -m switchboard.services.analytics`: the ClickHouse sink of every topic."""

from __future__ import annotations

from switchboard.platform.lifecycle import service_main
from switchboard.services.analytics.service import SERVICE, StorageUnavailable, run
from switchboard.services.analytics.settings import AnalyticsSettings


def main() -> None:
    # A known condition (chDB path owned by another process, server down): one log line, exit 2.
    service_main(SERVICE, AnalyticsSettings, run, log_errors={StorageUnavailable: "storage_unavailable"})


if __name__ == "__main__":
    main()
