"""The buyer simulator's YAML: how each simulated buyer bids, how fast, and how it breaks.

```yaml
seed: 42                       # same seed, same answers for the same request sequence
defaults:                      # merged into every buyer (a buyer's own keys win)
  latency_ms: {type: uniform, min: 5, max: 30}
buyers:
  - id: acme-rtb               # HTTP: POST /ping/acme-rtb; gRPC: PingRequest.buyer_id
    secret: "s3cret"           # optional: verify X-Switchboard-Signature (401 / UNAUTHENTICATED when wrong) and sign answers
    bid: {type: fixed, value: 42.00}          # | {type: uniform, min, max} | {type: normal, mean, sd, min?, max?}
    latency_ms: {type: fixed, value: 20}      # | {type: uniform, min, max} | {type: lognormal, median, sigma, max?}
    decline_rate: 0.1          # answer {"accept": false, "reason": decline_reason}
    decline_reason: no capacity
    available_rate: 1.0        # share of bids with "available": true
    slow_ms: 1500              # extra latency of the `slow` fault
    faults:                    # rates in [0, 1], drawn in this order, at most one per ping
      timeout: 0.0             # sleep past the ping's deadline
      http_500: 0.0            # HTTP 500 / gRPC INTERNAL
      garbage: 0.0             # not JSON / an unparseable bid over gRPC
      reset: 0.0               # close the connection without answering / gRPC UNAVAILABLE
      slow: 0.0                # answer normally after slow_ms more
      unsigned: 0.0            # (buyers with a secret) answer without the answer signature
      bad_signature: 0.0       # (buyers with a secret) answer with a signature that does not verify
    post_reject_rate: 0.0      # ping_post: share of posts answered {"accept": false, "reason": post_reject_reason}
    post_reject_reason: post rejected
    post_faults: {timeout: 0.0}   # the same faults, for posts only (drawn from a stream of their own)
  - id: "bulk-{n}"             # `count` makes bulk-1 .. bulk-50 from one entry
    count: 50
    bid: {type: normal, mean: 30, sd: 5, min: 1}
```
Bids are rounded to cents.
"""

from __future__ import annotations

import math
import random
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

CENT = Decimal("0.01")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Fixed(_Model):
    type: Literal["fixed"]
    value: float = Field(ge=0)

    def draw(self, rng: random.Random) -> float:
        return self.value


class Uniform(_Model):
    type: Literal["uniform"]
    min: float = Field(ge=0)
    max: float = Field(ge=0)

    @model_validator(mode="after")
    def _order(self) -> Uniform:
        if self.max < self.min:
            raise ValueError("max must be >= min")
        return self

    def draw(self, rng: random.Random) -> float:
        return rng.uniform(self.min, self.max)


class Normal(_Model):
    type: Literal["normal"]
    mean: float
    sd: float = Field(ge=0)
    min: float = Field(0, ge=0)
    max: float | None = None

    def draw(self, rng: random.Random) -> float:
        x = max(self.min, rng.gauss(self.mean, self.sd))
        return min(x, self.max) if self.max is not None else x


class LogNormal(_Model):
    type: Literal["lognormal"]
    median: float = Field(gt=0)
    sigma: float = Field(0.5, ge=0)
    max: float | None = None

    def draw(self, rng: random.Random) -> float:
        x = self.median * math.exp(rng.gauss(0.0, self.sigma))
        return min(x, self.max) if self.max is not None else x


BidDist = Annotated[Fixed | Uniform | Normal, Field(discriminator="type")]
LatencyDist = Annotated[Fixed | Uniform | LogNormal, Field(discriminator="type")]

Rate = Annotated[float, Field(ge=0, le=1)]


class Faults(_Model):
    timeout: Rate = 0.0
    http_500: Rate = 0.0
    garbage: Rate = 0.0
    reset: Rate = 0.0
    slow: Rate = 0.0
    # Answer-signature faults last: adding them left the draws of existing configs unchanged.
    unsigned: Rate = 0.0
    bad_signature: Rate = 0.0

    @model_validator(mode="after")
    def _sum(self) -> Faults:
        if sum(self.model_dump().values()) > 1.0 + 1e-9:
            raise ValueError("fault rates add up to more than 1")
        return self


class SimBuyer(_Model):
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.{}-]+$")
    count: int | None = Field(None, ge=1, description="expand into count buyers, {n} in id = 1..count")
    secret: str | None = None
    bid: BidDist = Field(default_factory=lambda: Fixed(type="fixed", value=30.0))
    latency_ms: LatencyDist = Field(default_factory=lambda: Fixed(type="fixed", value=0.0))
    decline_rate: Rate = 0.0
    decline_reason: str = "not interested"
    available_rate: Rate = 1.0
    slow_ms: float = Field(1500, ge=0)
    faults: Faults = Field(default_factory=Faults)
    post_reject_rate: Rate = 0.0
    post_reject_reason: str = "post rejected"
    post_faults: Faults = Field(default_factory=Faults)

    def draw_bid(self, rng: random.Random) -> Decimal:
        return Decimal(str(self.bid.draw(rng))).quantize(CENT, rounding=ROUND_HALF_UP)

    def draw_latency_s(self, rng: random.Random) -> float:
        return max(0.0, self.latency_ms.draw(rng)) / 1000

    def draw_fault(self, rng: random.Random, faults: Faults | None = None) -> str | None:
        x = rng.random()
        acc = 0.0
        for name, rate in (faults or self.faults).model_dump().items():
            acc += rate
            if x < acc:
                return name
        return None


class SimConfig(_Model):
    seed: int = 0
    defaults: dict = Field(default_factory=dict)
    buyers: list[SimBuyer]

    @model_validator(mode="before")
    @classmethod
    def _apply_defaults(cls, data: object) -> object:
        if isinstance(data, dict) and isinstance(data.get("buyers"), list):
            defaults = data.get("defaults") or {}
            data = {**data, "buyers": [{**defaults, **b} if isinstance(b, dict) else b for b in data["buyers"]]}
        return data

    @model_validator(mode="after")
    def _expand(self) -> SimConfig:
        out: list[SimBuyer] = []
        for b in self.buyers:
            if b.count is None:
                out.append(b)
            else:
                tpl = b.id if "{n}" in b.id else b.id + "-{n}"
                out.extend(b.model_copy(update={"id": tpl.replace("{n}", str(i)), "count": None}) for i in range(1, b.count + 1))
        ids = [b.id for b in out]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate buyer ids: {dupes}")
        self.buyers = out
        return self

    def by_id(self) -> dict[str, SimBuyer]:
        return {b.id: b for b in self.buyers}


def load_sim_config(path: Path | str) -> SimConfig:
    data = yaml.safe_load(Path(path).read_text())
    return SimConfig.model_validate(data)
