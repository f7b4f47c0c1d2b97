"""Who may talk to the gRPC edge (docs/IVR.md, "Securing the gRPC edge").

The rule is the platform's, shared with AgentDesk (switchboard.platform.grpcsecurity: TLS, mTLS,
bearer tokens, health without a credential, plaintext only with `grpc_insecure`); this maps the
ivr's SWITCHBOARD_IVR_GRPC_* settings onto it.
"""

from __future__ import annotations

from switchboard.platform.grpcsecurity import GrpcServerSecurity
from switchboard.services.ivr.settings import IvrSettings


def edge_security(settings: IvrSettings) -> GrpcServerSecurity:
    return GrpcServerSecurity(
        name="the gRPC edge",
        env_prefix="SWITCHBOARD_IVR_GRPC_",
        exposure="start calls",
        doc="docs/IVR.md, 'Securing the gRPC edge'",
        host=settings.grpc_host,
        port=settings.grpc_port,
        tls_cert_file=settings.grpc_tls_cert_file,
        tls_key_file=settings.grpc_tls_key_file,
        tls_client_ca_file=settings.grpc_tls_client_ca_file,
        tokens=settings.grpc_tokens,
        tokens_file=settings.grpc_tokens_file,
        insecure=settings.grpc_insecure,
    )
