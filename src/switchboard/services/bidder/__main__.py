"""`python -m switchboard.services.bidder`: settings → logging → run until SIGTERM."""

from __future__ import annotations

import sys

from switchboard.core.config import ConfigError
from switchboard.platform.lifecycle import run_service
from switchboard.platform.logging import configure_logging
from switchboard.services.bidder.service import run
from switchboard.services.bidder.settings import BidderSettings


def main() -> None:
    settings = BidderSettings()
    configure_logging(settings.log, service="bidder")
    try:
        run_service(lambda stop: run(settings, stop))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
