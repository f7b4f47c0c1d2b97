"""`python -m switchboard.buyersim --config buyers.yaml [--seed N] [--http-port P] [--grpc-port P] [--record FILE]`.

Binds 127.0.0.1 (ephemeral ports by default), writes the ready file
buyersim.ready with http_port and grpc_port, serves until SIGTERM, exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import structlog
from pydantic import ValidationError

from switchboard.buyersim.config import load_sim_config
from switchboard.buyersim.server import BuyerSim
from switchboard.platform.lifecycle import mark_ready, run_service
from switchboard.platform.logging import configure_logging
from switchboard.platform.settings import LogSettings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m switchboard.buyersim", description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="buyer simulator YAML (see switchboard/buyersim/config.py)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--http-port", type=int, default=0)
    p.add_argument("--grpc-port", type=int, default=0)
    p.add_argument("--seed", type=int, default=None, help="overrides the seed of the YAML")
    p.add_argument("--record", type=Path, default=None, help="append every ping/post body received to FILE (JSON lines)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    configure_logging(LogSettings(), service="buyersim")
    log = structlog.get_logger("buyersim")
    try:
        config = load_sim_config(args.config)
    except (OSError, ValidationError, ValueError) as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
        sys.exit(2)
    if args.seed is not None:
        config.seed = args.seed

    async def serve(stop: asyncio.Event) -> None:
        sim = BuyerSim(config, args.host, args.http_port, args.grpc_port, record=args.record)
        await sim.start()
        try:
            log.info("serving", buyers=len(config.buyers), http_port=sim.http_port, grpc_port=sim.grpc_port, seed=config.seed)
            mark_ready("buyersim", http_port=sim.http_port, grpc_port=sim.grpc_port, host=args.host)
            await stop.wait()
        finally:
            await sim.stop()

    run_service(serve)


if __name__ == "__main__":
    main()
