"""AgentDesk lets no stranger in (docs/ACD.md, "Securing AgentDesk"): the gRPC edge's rule, its own variables.

A throwaway CA (trustme) signs the queue's certificate for 127.0.0.1. One real queue process with TLS and a
bearer token per desk client; one that must refuse to start open to strangers. An offer carries the caller's
number, so a refused call must reach no handler: its Login logs nobody in.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import trustme

from switchboard.v1 import agent_desk_pb2 as dpb
from switchboard.v1 import agent_desk_pb2_grpc as dgrpc
from switchboard.v1 import events_pb2 as pb
from tests.support import ServiceProcess, running_service, service_env

pytestmark = pytest.mark.integration

CONFIG = """
version: 1
queues:
  - {id: sales, max_wait_s: 600}
agents:
  - {id: ana, queues: [sales], login: desk}
"""
TOKEN = "agent-ui-token-" + "x" * 24


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    ca = trustme.CA()
    d = tmp_path_factory.mktemp("desk-pki")
    server = ca.issue_cert("127.0.0.1")
    files = {"ca": d / "ca.pem", "cert": d / "server.pem", "key": d / "server.key"}
    ca.cert_pem.write_to_path(files["ca"])
    server.private_key_pem.write_to_path(files["key"])
    files["cert"].write_bytes(b"".join(b.bytes() for b in server.cert_chain_pems))
    return files


def desk_env(broker, config: Path, **extra: str) -> dict[str, str]:
    return service_env(broker.kafka_settings(), config, SWITCHBOARD_QUEUE_DESK_INSECURE="false", **extra)


@pytest.fixture(scope="module")
def queue_service(broker, pki, tmp_path_factory) -> Iterator[ServiceProcess]:
    workdir = tmp_path_factory.mktemp("queue-desk-tls")
    config = workdir / "acd.yaml"
    config.write_text(CONFIG)
    tokens = workdir / "tokens.json"
    tokens.write_text(json.dumps({"agent-ui": TOKEN}))
    env = desk_env(
        broker,
        config,
        SWITCHBOARD_QUEUE_DESK_TLS_CERT_FILE=str(pki["cert"]),
        SWITCHBOARD_QUEUE_DESK_TLS_KEY_FILE=str(pki["key"]),
        SWITCHBOARD_QUEUE_DESK_TOKENS_FILE=str(tokens),
        SWITCHBOARD_QUEUE_GROUP_ID=f"queue-tls-{uuid.uuid4().hex[:6]}",
    )
    with running_service("queue", env, workdir) as service:
        yield service


def tls(pki: dict[str, Path], token: str | None = None) -> grpc.ChannelCredentials:
    creds = grpc.ssl_channel_credentials(root_certificates=pki["ca"].read_bytes())
    if token is None:
        return creds
    return grpc.composite_channel_credentials(creds, grpc.access_token_call_credentials(token))  # authorization: Bearer


async def test_only_a_desk_client_with_its_token_logs_an_agent_in(queue_service, pki):
    target = f"127.0.0.1:{queue_service.info['desk_port']}"
    async with grpc.aio.secure_channel(target, tls(pki)) as channel:
        stub = dgrpc.AgentDeskStub(channel)
        for metadata in ([], [("authorization", "Bearer " + TOKEN[:-1] + "z")], [("authorization", TOKEN)]):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Login(dpb.AgentLoginRequest(agent_id="ana", ready=True), metadata=metadata)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, metadata
        with pytest.raises(grpc.aio.AioRpcError) as err:  # the push stream too: it carries the offers
            async for _ in stub.Work(dpb.AgentRequest(agent_id="ana")):
                pass
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    async with grpc.aio.secure_channel(target, tls(pki, TOKEN)) as channel:
        stub = dgrpc.AgentDeskStub(channel)
        # the refused Logins reached no handler: ana is still logged out
        assert (await stub.GetAgent(dpb.AgentRequest(agent_id="ana"))).state == pb.AGENT_STATE_LOGGED_OUT
        status = await stub.Login(dpb.AgentLoginRequest(agent_id="ana", ready=True))
        assert status.state == pb.AGENT_STATE_READY
        await stub.Logout(dpb.AgentRequest(agent_id="ana"))
    async with grpc.aio.insecure_channel(target) as channel:  # plaintext to the TLS port: no connection
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await dgrpc.AgentDeskStub(channel).GetAgent(dpb.AgentRequest(agent_id="ana"), timeout=5)
        assert err.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_refuses_to_start_open_to_strangers(broker, tmp_path):
    config = tmp_path / "acd.yaml"
    config.write_text(CONFIG)
    proc = ServiceProcess("queue", desk_env(broker, config), tmp_path / "ready", tmp_path / "queue.log")
    assert proc.wait(30) == 2
    log = proc.logs()
    assert "AgentDesk would serve plaintext" in log
    assert "SWITCHBOARD_QUEUE_DESK_INSECURE=true" in log and "SWITCHBOARD_QUEUE_DESK_TLS_CERT_FILE" in log
