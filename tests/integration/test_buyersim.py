"""The buyer simulator as a real process: HTTP and gRPC answers, seeded reproducibility, signatures, faults, clean exit."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import grpc
import httpx
import pytest
import yaml

from switchboard.buyersim.config import SimConfig
from switchboard.platform import signing
from switchboard.v1 import bidding_pb2 as bpb
from switchboard.v1 import bidding_pb2_grpc
from tests.support import BuyerSimProcess

pytestmark = pytest.mark.integration

CONFIG = {
    "seed": 3,
    "buyers": [
        {
            "id": "uni",
            "bid": {"type": "uniform", "min": 10, "max": 50},
            "latency_ms": {"type": "lognormal", "median": 2, "sigma": 0.3},
        },
        {"id": "norm", "bid": {"type": "normal", "mean": 30, "sd": 20, "min": 5, "max": 40}},
        {"id": "mixed", "decline_rate": 0.3, "available_rate": 0.5, "faults": {"http_500": 0.2, "garbage": 0.1}},
        {"id": "signed", "secret": "topsecret", "bid": {"type": "fixed", "value": 19.99}},
    ],
}


def body(buyer: str = "uni") -> bytes:
    return json.dumps({"buyer_id": buyer, "call_id": "c", "auction_id": "a", "deadline": "", "timeout_ms": 500}).encode()


def start(tmp_path: Path, name: str, config: dict = CONFIG, *args: str) -> BuyerSimProcess:
    d = tmp_path / name
    d.mkdir()
    (d / "buyers.yaml").write_text(yaml.safe_dump(config))
    return BuyerSimProcess(d / "buyers.yaml", d, d / "buyersim.log", *args).wait_ready()


def answers(sim: BuyerSimProcess, buyer: str, n: int) -> list[tuple[int, bytes]]:
    with httpx.Client(timeout=5) as client:
        return [(r.status_code, r.content) for r in (client.post(sim.http_url(buyer), content=body(buyer)) for _ in range(n))]


def test_same_seed_same_answers_and_distributions_hold(tmp_path: Path) -> None:
    a, b = start(tmp_path, "a"), start(tmp_path, "b")
    try:
        first = {buyer: answers(a, buyer, 30) for buyer in ("uni", "norm", "mixed")}
        second = {buyer: answers(b, buyer, 30) for buyer in ("uni", "norm", "mixed")}
        assert first == second
        uni = [float(json.loads(c)["bid"]) for _, c in first["uni"]]
        assert all(10 <= x <= 50 for x in uni) and len(set(uni)) > 1
        assert all(round(x, 2) == x for x in uni)
        norm = [float(json.loads(c)["bid"]) for _, c in first["norm"]]
        assert all(5 <= x <= 40 for x in norm)
        statuses = {s for s, _ in first["mixed"]}
        assert statuses == {200, 500}
        with httpx.Client() as client:
            stats = client.get(f"http://127.0.0.1:{a.http_port}/stats").json()
        assert stats["mixed"]["requests"] == 30 and stats["mixed"]["fault:http_500"] > 0
    finally:
        assert a.stop() == 0 and b.stop() == 0


def test_other_seed_other_answers(tmp_path: Path) -> None:
    a, b = start(tmp_path, "a"), start(tmp_path, "b", CONFIG, "--seed", "4")
    try:
        assert answers(a, "uni", 10) != answers(b, "uni", 10)
    finally:
        assert a.stop() == 0 and b.stop() == 0


def test_signature_is_checked_with_the_documented_algorithm(tmp_path: Path) -> None:
    sim = start(tmp_path, "s")
    try:
        raw = body("signed")
        t = int(time.time())
        with httpx.Client(timeout=5) as client:
            good = client.post(sim.http_url("signed"), content=raw, headers={signing.HEADER: signing.sign("topsecret", raw, t)})
            assert good.status_code == 200 and good.json() == {"bid": "19.99", "accept": True, "available": True}
            tampered = client.post(
                sim.http_url("signed"), content=raw + b" ", headers={signing.HEADER: signing.sign("topsecret", raw, t)}
            )
            old = client.post(
                sim.http_url("signed"), content=raw, headers={signing.HEADER: signing.sign("topsecret", raw, t - 3600)}
            )
            missing = client.post(sim.http_url("signed"), content=raw)
            assert (tampered.status_code, old.status_code, missing.status_code) == (401, 401, 401)
            assert client.post(sim.http_url("nobody"), content=raw).status_code == 404
    finally:
        assert sim.stop() == 0


async def test_grpc_bidding_service(tmp_path: Path) -> None:
    sim = start(tmp_path, "g")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{sim.grpc_port}") as channel:
            stub = bidding_pb2_grpc.BiddingStub(channel)
            r = await stub.Ping(bpb.PingRequest(buyer_id="uni", call_id="c", auction_id="a", zip="90001"), timeout=5)
            assert r.accept and 10 <= float(r.bid) <= 50 and r.HasField("available")
            req = bpb.PingRequest(buyer_id="signed", call_id="c", auction_id="a")
            header = signing.sign("topsecret", req.SerializeToString(deterministic=True))
            r = await stub.Ping(req, timeout=5, metadata=[(signing.GRPC_METADATA_KEY, header)])
            assert r.bid == "19.99"
            with pytest.raises(grpc.aio.AioRpcError) as unsigned:
                await stub.Ping(req, timeout=5)
            assert unsigned.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.aio.AioRpcError) as unknown:
                await stub.Ping(bpb.PingRequest(buyer_id="nobody"), timeout=5)
            assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        assert sim.stop() == 0


def test_bad_config_exits_2_with_the_problem(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump({"buyers": [{"id": "x", "faults": {"timeout": 0.7, "reset": 0.7}}]}))
    proc = subprocess.run(
        [sys.executable, "-m", "switchboard.buyersim", "--config", str(cfg)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "more than 1" in proc.stderr


def test_count_expands_buyers() -> None:
    c = SimConfig.model_validate({"buyers": [{"id": "bulk-{n}", "count": 3}, {"id": "solo"}]})
    assert [b.id for b in c.buyers] == ["bulk-1", "bulk-2", "bulk-3", "solo"]
    with pytest.raises(ValueError):
        SimConfig.model_validate({"buyers": [{"id": "a"}, {"id": "a"}]})


def test_demo_description_loads() -> None:
    from switchboard.buyersim.config import load_sim_config

    demo = Path(__file__).resolve().parents[2] / "tools" / "buyersim" / "src" / "switchboard" / "buyersim" / "demo.yaml"
    assert {b.id for b in load_sim_config(demo).buyers} == {"sunrise-rtb", "brightpath-rtb"}
