"""`python -m switchboard.services.queue`: settings → logging → run until SIGTERM (env SWITCHBOARD_QUEUE_*)."""

from __future__ import annotations

from switchboard.core.config import ConfigError
from switchboard.platform.lifecycle import service_main
from switchboard.services.queue.service import SERVICE, run
from switchboard.services.queue.settings import QueueSettings
from switchboard.services.queue.state import StateError


def main() -> None:
    # ConfigError, StateError (unusable queue.state): exit 2 with the message, no traceback.
    service_main(SERVICE, QueueSettings, run, print_errors=(ConfigError, StateError))


if __name__ == "__main__":
    main()
