"""`python -m switchboard.services.bidder`: settings → logging → run until SIGTERM."""

from __future__ import annotations

from switchboard.core.config import ConfigError
from switchboard.platform.lifecycle import service_main
from switchboard.services.bidder.service import run
from switchboard.services.bidder.settings import BidderSettings


def main() -> None:
    service_main("bidder", BidderSettings, run, print_errors=(ConfigError,))  # ConfigError: exit 2, no traceback


if __name__ == "__main__":
    main()
