"""`python -m switchboard.services.router`: settings → logging → run until SIGTERM."""

from __future__ import annotations

from switchboard.core.config import ConfigError
from switchboard.platform.kafka import PartitionMismatch
from switchboard.platform.lifecycle import service_main
from switchboard.services.router.service import run
from switchboard.services.router.settings import RouterSettings


def main() -> None:
    # ConfigError, PartitionMismatch: exit 2 with the message (file/variable and the fix), no traceback
    service_main("router", RouterSettings, run, print_errors=(ConfigError, PartitionMismatch))


if __name__ == "__main__":
    main()
