"""The standard gRPC services next to CallControl: grpc.health.v1.Health and server reflection.

Health answers what /readyz answers (platform.ops): SERVING for the server ("") and for
CallControl while the process is ready, NOT_SERVING otherwise, and NOT_SERVING for good once
the shutdown began. Reflection lists CallControl, Health and itself (grpcurl, grpc_cli).
"""

from __future__ import annotations

import asyncio
import contextlib

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]  # re-exported _async, untyped there
from grpc_reflection.v1alpha import reflection

from switchboard.platform.ops import Health
from switchboard.v1 import call_control_pb2 as cc

CALL_CONTROL = cc.DESCRIPTOR.services_by_name["CallControl"].full_name
SERVICES = ("", CALL_CONTROL)  # "": the whole server, what a plain health check asks about


def add_ops_services(server: grpc.aio.Server) -> health_aio.HealthServicer:
    """Add Health (starting NOT_SERVING) and reflection to `server` (before it starts); return the Health servicer."""
    servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    names = (CALL_CONTROL, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME)
    reflection.enable_server_reflection(names, server)
    return servicer


async def follow_readiness(
    servicer: health_aio.HealthServicer, process: Health, stop: asyncio.Event, every_s: float = 0.5
) -> None:
    """Set the gRPC health status from `process.ready()` every `every_s` until `stop`, then NOT_SERVING for good."""
    serving = health_pb2.HealthCheckResponse.SERVING
    not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
    shown: int | None = None
    while not stop.is_set():
        status = serving if process.ready().ok else not_serving
        if status != shown:  # Watch streams send each change, not every round
            for name in SERVICES:
                await servicer.set(name, status)
            shown = status
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
    await servicer.enter_graceful_shutdown()
