"""KafkaSettings security: env variables, clear errors for unusable combinations, and the same
TLS/SASL arguments for every client (aiokafka via client_kwargs, the router's Faust app via
faust_credentials). TLS against a broker: tests/integration/test_kafka_tls.py."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import ValidationError

from switchboard.platform.configfile import load_config
from switchboard.platform.settings import KafkaSettings
from switchboard.services.router.app import create_app
from switchboard.services.router.settings import RouterSettings

SECRET = "hunter2-not-in-errors"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a client certificate and key of that CA, and a key of another certificate (PEM files)."""
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    client, other = ca.issue_cert("client"), ca.issue_cert("other")
    files = {"ca": d / "ca.pem", "cert": d / "client.pem", "key": d / "client.key", "other_key": d / "other.key"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    client.cert_chain_pems[0].write_to_path(str(files["cert"]))
    client.private_key_pem.write_to_path(str(files["key"]))
    other.private_key_pem.write_to_path(str(files["other_key"]))
    return files


def problem(**fields: object) -> str:
    with pytest.raises(ValidationError) as caught:
        KafkaSettings(**fields)
    return str(caught.value)


def test_plaintext_by_default():
    kafka = KafkaSettings()
    assert kafka.client_kwargs() == {"bootstrap_servers": "127.0.0.1:9092", "security_protocol": "PLAINTEXT"}
    assert kafka.ssl_context is None
    assert kafka.faust_credentials() is None


def test_read_from_switchboard_kafka_env(monkeypatch: pytest.MonkeyPatch, pki: dict[str, Path]):
    monkeypatch.setenv("SWITCHBOARD_KAFKA_SECURITY_PROTOCOL", "sasl_ssl")
    monkeypatch.setenv("SWITCHBOARD_KAFKA_SSL_CAFILE", str(pki["ca"]))
    monkeypatch.setenv("SWITCHBOARD_KAFKA_SSL_CERTFILE", str(pki["cert"]))
    monkeypatch.setenv("SWITCHBOARD_KAFKA_SSL_KEYFILE", str(pki["key"]))
    monkeypatch.setenv("SWITCHBOARD_KAFKA_SSL_CHECK_HOSTNAME", "false")
    monkeypatch.setenv("SWITCHBOARD_KAFKA_SASL_MECHANISM", "scram-sha-256")
    monkeypatch.setenv("SWITCHBOARD_KAFKA_SASL_USERNAME", "switchboard")
    monkeypatch.setenv("SWITCHBOARD_KAFKA_SASL_PASSWORD", SECRET)
    kafka = RouterSettings().kafka  # as a service gets it
    assert (kafka.security_protocol, kafka.sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-256")
    assert (kafka.ssl_cafile, kafka.ssl_certfile, kafka.ssl_keyfile) == (pki["ca"], pki["cert"], pki["key"])
    assert kafka.ssl_check_hostname is False
    assert SECRET not in repr(kafka)


def test_an_empty_variable_is_unset(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SWITCHBOARD_KAFKA_SSL_CAFILE", "")
    monkeypatch.setenv("SWITCHBOARD_KAFKA_SASL_MECHANISM", "")
    assert KafkaSettings().client_kwargs()["security_protocol"] == "PLAINTEXT"


def test_tls_context_checks_the_broker_against_the_ca(pki: dict[str, Path]):
    kafka = KafkaSettings(security_protocol="SSL", ssl_cafile=pki["ca"])
    context = kafka.client_kwargs()["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context is kafka.ssl_context is kafka.client_kwargs()["ssl_context"]  # one context for every client
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    # Only the given CA, not the system's.
    assert context.get_ca_certs(binary_form=True) == [ssl.PEM_cert_to_DER_cert(pki["ca"].read_text())]
    assert "sasl_mechanism" not in kafka.client_kwargs()


def test_host_name_check_can_be_turned_off_but_not_the_chain(pki: dict[str, Path]):
    context = KafkaSettings(security_protocol="SSL", ssl_cafile=pki["ca"], ssl_check_hostname=False).ssl_context
    assert context is not None
    assert not context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED


def test_tls_without_a_ca_file_uses_the_system_cas():
    context = KafkaSettings(security_protocol="SSL").ssl_context
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_client_certificate_loads(pki: dict[str, Path]):
    kafka = KafkaSettings(security_protocol="SSL", ssl_cafile=pki["ca"], ssl_certfile=pki["cert"], ssl_keyfile=pki["key"])
    assert kafka.client_kwargs()["security_protocol"] == "SSL"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"security_protocol": "TLS"}, ["SWITCHBOARD_KAFKA_SECURITY_PROTOCOL='TLS'", "PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"]),
        (
            {"ssl_cafile": "CA"},
            [
                "SWITCHBOARD_KAFKA_SSL_CAFILE set but SWITCHBOARD_KAFKA_SECURITY_PROTOCOL=PLAINTEXT",
                "SWITCHBOARD_KAFKA_SECURITY_PROTOCOL=SSL",
            ],
        ),
        (
            {
                "security_protocol": "SASL_PLAINTEXT",
                "ssl_cafile": "CA",
                "sasl_mechanism": "PLAIN",
                "sasl_username": "u",
                "sasl_password": SECRET,
            },
            ["does not use TLS", "SWITCHBOARD_KAFKA_SECURITY_PROTOCOL=SASL_SSL"],
        ),
        (
            {"security_protocol": "SSL", "ssl_cafile": "/nowhere/ca.pem"},
            ["SWITCHBOARD_KAFKA_SSL_CAFILE=/nowhere/ca.pem: no such file"],
        ),
        (
            {"security_protocol": "SSL", "ssl_certfile": "CERT"},
            ["SWITCHBOARD_KAFKA_SSL_CERTFILE set without SWITCHBOARD_KAFKA_SSL_KEYFILE"],
        ),
        (
            {"security_protocol": "SSL", "ssl_keyfile": "KEY"},
            ["SWITCHBOARD_KAFKA_SSL_KEYFILE set without SWITCHBOARD_KAFKA_SSL_CERTFILE"],
        ),
        (
            {"security_protocol": "SSL", "ssl_cafile": "KEY"},
            ["cannot build the TLS context", "SWITCHBOARD_KAFKA_SSL_CAFILE=", "PEM"],
        ),
        (
            {"security_protocol": "SSL", "ssl_certfile": "CERT", "ssl_keyfile": "OTHER_KEY"},
            ["cannot build the TLS context", "SWITCHBOARD_KAFKA_SSL_KEYFILE=", "KEY_VALUES_MISMATCH"],
        ),
        (
            {"security_protocol": "SASL_SSL", "sasl_username": "u", "sasl_password": SECRET},
            ["SASL_SSL needs SWITCHBOARD_KAFKA_SASL_MECHANISM", "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"],
        ),
        (
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI", "sasl_username": "u", "sasl_password": SECRET},
            ["SWITCHBOARD_KAFKA_SASL_MECHANISM='GSSAPI' is not supported", "SCRAM-SHA-512"],
        ),
        (
            {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_password": SECRET},
            ["needs SWITCHBOARD_KAFKA_SASL_USERNAME (the SASL login)"],
        ),
        (
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN"},
            ["needs SWITCHBOARD_KAFKA_SASL_USERNAME and SWITCHBOARD_KAFKA_SASL_PASSWORD"],
        ),
        (
            {"sasl_mechanism": "PLAIN", "sasl_username": "u", "sasl_password": SECRET},
            [
                "SWITCHBOARD_KAFKA_SASL_MECHANISM, SWITCHBOARD_KAFKA_SASL_USERNAME, SWITCHBOARD_KAFKA_SASL_PASSWORD set",
                "does not log in",
            ],
        ),
        (
            {"security_protocol": "SSL", "sasl_username": "u", "sasl_password": SECRET},
            ["SWITCHBOARD_KAFKA_SECURITY_PROTOCOL=SSL does not log in", "set SWITCHBOARD_KAFKA_SECURITY_PROTOCOL=SASL_SSL"],
        ),
    ],
)
def test_unusable_combinations_name_the_variable_and_the_fix(pki: dict[str, Path], fields: dict, expected: list[str]):
    files = {"CA": pki["ca"], "CERT": pki["cert"], "KEY": pki["key"], "OTHER_KEY": pki["other_key"]}
    text = problem(**{k: files.get(v, v) if isinstance(v, str) else v for k, v in fields.items()})
    for part in expected:
        assert part in text, text
    assert SECRET not in text  # pydantic would print the input, password included


def test_every_problem_is_reported_at_once():
    text = problem(security_protocol="SASL_SSL", sasl_mechanism="OAUTHBEARER", ssl_certfile="/nowhere/cert.pem")
    assert "SWITCHBOARD_KAFKA_SSL_KEYFILE" in text and "/nowhere/cert.pem: no such file" in text
    assert "'OAUTHBEARER' is not supported" in text and "SWITCHBOARD_KAFKA_SASL_PASSWORD" in text


def security_of(kwargs: dict) -> dict:
    """The security part of aiokafka arguments (what a client without it would get: nothing)."""
    return {k: v for k, v in kwargs.items() if k != "bootstrap_servers" and v is not None}


SECURED = {
    "ssl": {"security_protocol": "SSL", "ssl_cafile": "CA", "ssl_certfile": "CERT", "ssl_keyfile": "KEY"},
    "sasl_ssl": {
        "security_protocol": "SASL_SSL",
        "ssl_cafile": "CA",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": "u",
        "sasl_password": SECRET,
    },
    "sasl_plaintext": {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_username": "u",
        "sasl_password": SECRET,
    },
}


def secured(name: str, pki: dict[str, Path]) -> KafkaSettings:
    files = {"CA": pki["ca"], "CERT": pki["cert"], "KEY": pki["key"]}
    return KafkaSettings(**{k: files.get(v, v) for k, v in SECURED[name].items()})


def test_sasl_arguments(pki: dict[str, Path]):
    kw = secured("sasl_ssl", pki).client_kwargs()
    assert kw["security_protocol"] == "SASL_SSL" and isinstance(kw["ssl_context"], ssl.SSLContext)
    assert (kw["sasl_mechanism"], kw["sasl_plain_username"], kw["sasl_plain_password"]) == ("SCRAM-SHA-512", "u", SECRET)
    kw = secured("sasl_plaintext", pki).client_kwargs()
    assert "ssl_context" not in kw and kw["security_protocol"] == "SASL_PLAINTEXT" and kw["sasl_mechanism"] == "PLAIN"


@pytest.mark.parametrize("name", sorted(SECURED))
def test_faust_credentials_give_faust_the_same_arguments(pki: dict[str, Path], name: str):
    kafka = secured(name, pki)
    assert security_of(credentials_to_aiokafka_auth(kafka.faust_credentials())) == security_of(kafka.client_kwargs())


@pytest.mark.parametrize("name", sorted(SECURED))
async def test_every_client_the_router_faust_app_builds_is_secured(pki: dict[str, Path], name: str, tmp_path: Path):
    """The producer (it also creates the topics), the worker consumer and the client consumer (end offsets probes)."""
    kafka = secured(name, pki)
    settings = RouterSettings(kafka=kafka, data_dir=tmp_path)
    app, _router = create_app(settings, load_config(settings.config))
    producer = app.producer._new_producer()
    thread = app.consumer._thread
    consumers = [thread._create_worker_consumer(app.transport), thread._create_client_consumer(app.transport)]
    try:
        expected = security_of(kafka.client_kwargs())
        for client in [producer.client, *(c._client for c in consumers)]:
            seen = {
                "security_protocol": client._security_protocol,
                "ssl_context": client._ssl_context,
                "sasl_mechanism": client._sasl_mechanism if kafka.uses_sasl else None,
                "sasl_plain_username": client._sasl_plain_username,
                "sasl_plain_password": client._sasl_plain_password,
            }
            assert security_of(seen) == expected
    finally:
        await producer.stop()
        for c in consumers:
            await c.stop()


def test_a_service_with_unusable_kafka_settings_stops_with_the_message_and_exit_2(tmp_path: Path) -> None:
    """No traceback, no connection attempt: every problem with its variable and fix, exit code 2."""
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "SWITCHBOARD_KAFKA_SECURITY_PROTOCOL": "SSL",
        "SWITCHBOARD_KAFKA_SSL_CAFILE": str(tmp_path / "missing-ca.pem"),
        "SWITCHBOARD_KAFKA_SASL_PASSWORD": SECRET,
        "SWITCHBOARD_READY_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "switchboard.services.bidder"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and SECRET not in done.stderr
    assert "bidder: invalid settings" in done.stderr
    assert f"SWITCHBOARD_KAFKA_SSL_CAFILE={tmp_path / 'missing-ca.pem'}: no such file" in done.stderr
    assert "SWITCHBOARD_KAFKA_SASL_PASSWORD set but SWITCHBOARD_KAFKA_SECURITY_PROTOCOL=SSL does not log in" in done.stderr
