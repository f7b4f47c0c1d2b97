"""The ivr's ops surface on a real process: gRPC health following readiness, reflection, /metrics counting calls."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from switchboard.platform.settings import DEMO_CONFIG
from switchboard.v1 import call_control_pb2 as cc
from switchboard.v1 import call_control_pb2_grpc as cc_grpc
from tests.support import new_call_id, service_env, start_service

AUTO = "+18885550188"  # campaign auto-insurance of the demo config
CALL_CONTROL = "switchboard.v1.CallControl"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def calls_started(port: int, campaign: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    prefix = f'switchboard_calls_started_total{{campaign="{campaign}"}} '
    return next((float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix)), 0.0)


async def test_health_follows_readiness_until_shutdown_reflection_lists_services(broker, tmp_path: Path):
    ivr = start_service("ivr", service_env(broker.kafka_settings(), DEMO_CONFIG), tmp_path)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{ivr.info['grpc_port']}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for service in ("", CALL_CONTROL):  # ready: SERVING (within a readiness round)
                watch = health.Watch(health_pb2.HealthCheckRequest(service=service))
                async for answer in watch:
                    if answer.status == SERVING:
                        break
                watch.cancel()
            assert (await health.Check(health_pb2.HealthCheckRequest(service=CALL_CONTROL))).status == SERVING

            reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
            answers = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
            names = {s.name async for a in answers for s in a.list_services_response.service}
            assert {CALL_CONTROL, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names

            before = calls_started(ivr.info["ops_port"], "auto-insurance")
            stub = cc_grpc.CallControlStub(channel)
            start = cc.StartCallRequest(caller_number="+13105551234", dialed_number=AUTO, call_id=new_call_id())
            assert (await stub.StartCall(start)).campaign_id == "auto-insurance"
            assert calls_started(ivr.info["ops_port"], "auto-insurance") == before + 1

            # SIGTERM: NOT_SERVING while the server drains (in-flight RPCs get shutdown_grace_s).
            watch = health.Watch(health_pb2.HealthCheckRequest(service=CALL_CONTROL))
            assert (await watch.read()).status == SERVING
            ivr.terminate()
            assert (await asyncio.wait_for(watch.read(), 10)).status == NOT_SERVING
            watch.cancel()
    finally:
        assert ivr.stop() == 0, ivr.logs()
