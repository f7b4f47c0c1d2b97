"""`python -m switchboard.services.queue`: settings → logging → run until SIGTERM (env SWITCHBOARD_QUEUE_*)."""

from __future__ import annotations

from switchboard.core.config import ConfigError
from switchboard.platform.lifecycle import service_main
from switchboard.services.queue.service import SERVICE, run
from switchboard.services.queue.settings import QueueSettings


def main() -> None:
    service_main(SERVICE, QueueSettings, run, print_errors=(ConfigError,))  # ConfigError: exit 2, no traceback


if __name__ == "__main__":
    main()
