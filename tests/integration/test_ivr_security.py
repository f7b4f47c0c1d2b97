"""The gRPC edge lets no stranger in (docs/IVR.md, "Securing the gRPC edge"): TLS, bearer tokens per client, mTLS.

A throwaway CA (trustme) signs the ivr's certificate for 127.0.0.1 and an edge client's certificate. Two real ivr
processes: one with TLS and tokens, one with mTLS only; a third that must refuse to start open to strangers.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import trustme

from switchboard.platform.settings import DEMO_CONFIG
from switchboard.platform.topics import CALL_STARTED
from switchboard.v1 import call_control_pb2 as cc
from switchboard.v1 import call_control_pb2_grpc as cc_grpc
from tests.support import ServiceProcess, new_call_id, read_all, running_service, service_env, wait_event

pytestmark = pytest.mark.integration

AUTO = "+18885550188"  # campaign auto-insurance of the demo config
TOKEN = "edge-token-" + "x" * 24
OTHER_TOKEN = "other-token-" + "y" * 24


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def pki(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pki")
    server = ca.issue_cert("127.0.0.1")
    client = ca.issue_cert("edge-client.example")
    files = {
        "ca": d / "ca.pem",
        "cert": d / "server.pem",
        "key": d / "server.key",
        "client_cert": d / "client.pem",
        "client_key": d / "client.key",
    }
    ca.cert_pem.write_to_path(files["ca"])
    server.private_key_pem.write_to_path(files["key"])
    client.private_key_pem.write_to_path(files["client_key"])
    files["cert"].write_bytes(b"".join(b.bytes() for b in server.cert_chain_pems))
    files["client_cert"].write_bytes(b"".join(b.bytes() for b in client.cert_chain_pems))
    return files


def secure_env(broker, pki: dict[str, Path], tmp: Path, tokens: bool = True, **extra: str) -> dict[str, str]:
    """TLS with the CA's server certificate; tokens from the env variable and from a file (unless `tokens` is False)."""
    env = service_env(
        broker.kafka_settings(),
        DEMO_CONFIG,
        SWITCHBOARD_IVR_GRPC_INSECURE="false",
        SWITCHBOARD_IVR_GRPC_TLS_CERT_FILE=str(pki["cert"]),
        SWITCHBOARD_IVR_GRPC_TLS_KEY_FILE=str(pki["key"]),
        SWITCHBOARD_IVR_GRPC_TOKENS="{}",
        SWITCHBOARD_IVR_GRPC_TOKENS_FILE="",
        **extra,
    )
    if tokens:
        tokens_file = tmp / "tokens.yaml"
        tokens_file.write_text(f"twilio-edge: {OTHER_TOKEN}\n")
        env.update(SWITCHBOARD_IVR_GRPC_TOKENS=json.dumps({"sip-edge": TOKEN}), SWITCHBOARD_IVR_GRPC_TOKENS_FILE=str(tokens_file))
    return env


@pytest.fixture(scope="module")
def ivr(broker, pki, tmp_path_factory) -> Iterator[ServiceProcess]:
    tmp = tmp_path_factory.mktemp("ivr-tls")
    with running_service("ivr", secure_env(broker, pki, tmp), tmp) as service:
        yield service


def tls(pki: dict[str, Path], token: str | None = None, client_cert: bool = False) -> grpc.ChannelCredentials:
    creds = grpc.ssl_channel_credentials(
        root_certificates=pki["ca"].read_bytes(),
        private_key=pki["client_key"].read_bytes() if client_cert else None,
        certificate_chain=pki["client_cert"].read_bytes() if client_cert else None,
    )
    if token is None:
        return creds
    return grpc.composite_channel_credentials(creds, grpc.access_token_call_credentials(token))  # authorization: Bearer


def start(call_id: str) -> cc.StartCallRequest:
    return cc.StartCallRequest(caller_number="+13105551234", dialed_number=AUTO, call_id=call_id)


async def test_unauthenticated_calls_are_refused_and_start_nothing(ivr, pki, kafka):
    target = f"127.0.0.1:{ivr.info['grpc_port']}"
    assert ivr.info["grpc_tls"] is True
    refused = {"missing": new_call_id(), "wrong": new_call_id(), "garbled": new_call_id()}
    async with grpc.aio.secure_channel(target, tls(pki)) as channel:
        stub = cc_grpc.CallControlStub(channel)
        attempts = {
            "missing": [],
            "wrong": [("authorization", "Bearer " + TOKEN[:-1] + "z")],
            "garbled": [("authorization", TOKEN)],  # no "Bearer "
        }
        for kind, metadata in attempts.items():
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.StartCall(start(refused[kind]), metadata=metadata)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, kind
        with pytest.raises(grpc.aio.AioRpcError) as err:  # every method, not only StartCall
            await stub.ReportOutcome(cc.ReportOutcomeRequest(call_id=refused["missing"], outcome=1))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # Health needs no credential (the ops contract); without the service registered it is UNIMPLEMENTED.
        check = channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=bytes, response_deserializer=bytes)
        code = grpc.StatusCode.OK
        try:
            await check(b"")
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
        assert code != grpc.StatusCode.UNAUTHENTICATED
    # A valid call after the refused ones: once its call.started is in, the refused ones would be too.
    ok = new_call_id()
    async with grpc.aio.secure_channel(target, tls(pki, TOKEN)) as channel:
        assert (await cc_grpc.CallControlStub(channel).StartCall(start(ok))).accepted
    await wait_event(kafka, CALL_STARTED, lambda e: e.call_id == ok)
    assert await read_all(kafka, CALL_STARTED, lambda e: e.call_id in refused.values()) == []


async def test_each_configured_token_works_over_tls(ivr, pki, kafka):
    target = f"127.0.0.1:{ivr.info['grpc_port']}"
    for token in (TOKEN, OTHER_TOKEN):  # from SWITCHBOARD_IVR_GRPC_TOKENS and from the tokens file
        cid = new_call_id()
        async with grpc.aio.secure_channel(target, tls(pki, token)) as channel:
            resp = await cc_grpc.CallControlStub(channel).StartCall(start(cid))
        assert resp.accepted
        await wait_event(kafka, CALL_STARTED, lambda e, cid=cid: e.call_id == cid)


async def test_plaintext_client_cannot_talk_to_the_tls_port(ivr):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{ivr.info['grpc_port']}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await cc_grpc.CallControlStub(channel).StartCall(
                start(new_call_id()), metadata=[("authorization", f"Bearer {TOKEN}")], timeout=5
            )
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_mtls_requires_a_client_certificate_of_the_ca(broker, pki, tmp_path, kafka):
    # mTLS alone is the credential here.
    env = secure_env(broker, pki, tmp_path, tokens=False, SWITCHBOARD_IVR_GRPC_TLS_CLIENT_CA_FILE=str(pki["ca"]))
    with running_service("ivr", env, tmp_path) as service:
        target = f"127.0.0.1:{service.info['grpc_port']}"
        refused = new_call_id()
        async with grpc.aio.secure_channel(target, tls(pki)) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await cc_grpc.CallControlStub(channel).StartCall(start(refused), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE  # the handshake fails: no certificate
        ok = new_call_id()
        async with grpc.aio.secure_channel(target, tls(pki, client_cert=True)) as channel:
            assert (await cc_grpc.CallControlStub(channel).StartCall(start(ok))).accepted
        await wait_event(kafka, CALL_STARTED, lambda e: e.call_id == ok)
        assert await read_all(kafka, CALL_STARTED, lambda e: e.call_id == refused) == []


def test_refuses_to_start_open_to_strangers(broker, tmp_path):
    env = service_env(broker.kafka_settings(), DEMO_CONFIG, SWITCHBOARD_IVR_GRPC_INSECURE="false")
    proc = ServiceProcess("ivr", env, tmp_path / "ready", tmp_path / f"ivr-{uuid.uuid4().hex[:6]}.log")
    assert proc.wait(30) == 2
    log = proc.logs()
    assert "SWITCHBOARD_IVR_GRPC_INSECURE=true" in log and "SWITCHBOARD_IVR_GRPC_TLS_CERT_FILE" in log
