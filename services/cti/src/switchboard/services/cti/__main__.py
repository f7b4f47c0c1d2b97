"""`python -m switchboard.services.cti`: call context events for CRMs (env SWITCHBOARD_CTI_*)."""

from __future__ import annotations

from switchboard.core.config import ConfigError
from switchboard.platform.lifecycle import service_main
from switchboard.services.cti.service import SERVICE, run
from switchboard.services.cti.settings import CtiSettings
from switchboard.services.cti.webhooks import CrmSecretError


def main() -> None:
    # A bad configuration, an API without tokens or a CRM secret missing from the environment: exit 2 with the message, no traceback.
    service_main(SERVICE, CtiSettings, run, print_errors=(ConfigError, CrmSecretError))


if __name__ == "__main__":
    main()
