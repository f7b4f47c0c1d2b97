"""Who may talk to AgentDesk (docs/ACD.md, "Securing AgentDesk").

The rule is the platform's, shared with the gRPC edge (switchboard.platform.grpcsecurity: TLS, mTLS,
bearer tokens, health without a credential, plaintext only with `desk_insecure`); this maps the
queue's SWITCHBOARD_QUEUE_DESK_* settings onto it.
"""

from __future__ import annotations

from switchboard.platform.grpcsecurity import GrpcServerSecurity
from switchboard.services.queue.settings import QueueSettings


def desk_security(settings: QueueSettings) -> GrpcServerSecurity:
    return GrpcServerSecurity(
        name="AgentDesk",
        env_prefix="SWITCHBOARD_QUEUE_DESK_",
        exposure="log agents in and out and read the offers pushed to them, caller numbers included",
        doc="docs/ACD.md, 'Securing AgentDesk'",
        host=settings.desk_host,
        port=settings.desk_port,
        tls_cert_file=settings.desk_tls_cert_file,
        tls_key_file=settings.desk_tls_key_file,
        tls_client_ca_file=settings.desk_tls_client_ca_file,
        tokens=settings.desk_tokens,
        tokens_file=settings.desk_tokens_file,
        insecure=settings.desk_insecure,
    )
