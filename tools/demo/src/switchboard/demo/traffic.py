"""A generator of realistic demo calls for a routing configuration (seeded, reproducible)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from switchboard.core.config import RoutingConfig

# Real NANP area codes by state, with a ZIP prefix from the same area, so that
# state, area-code and ZIP filters in the config see consistent callers.
AREAS: tuple[tuple[str, str, str], ...] = (
    ("CA", "213", "900"),
    ("CA", "310", "902"),
    ("CA", "415", "941"),
    ("CA", "619", "921"),
    ("AZ", "602", "850"),
    ("NV", "702", "891"),
    ("TX", "214", "752"),
    ("TX", "512", "787"),
    ("FL", "305", "331"),
    ("NY", "212", "100"),
    ("IL", "312", "606"),
    ("WA", "206", "981"),
)


@dataclass(frozen=True)
class DemoCall:
    caller_number: str
    dialed_number: str
    answers: dict[str, str] = field(default_factory=dict)
    talk_seconds: int = 0  # how long the caller stays on once bridged
    hangs_up_in_ivr: bool = False  # leaves before qualifying (after the first prompt of a flow): rejected "abandoned"


class TrafficModel:
    """Calls spread over the config's tracking numbers; some repeat callers, blocked callers, bad numbers,
    and callers who hang up in the IVR."""

    def __init__(
        self,
        config: RoutingConfig,
        seed: int = 1,
        invalid_rate: float = 0.02,
        unknown_number_rate: float = 0.02,
        repeat_rate: float = 0.02,
        blocked_rate: float = 0.01,
        ivr_hangup_rate: float = 0.02,
    ) -> None:
        self.rng = random.Random(seed)
        self.numbers = [n for c in config.campaigns for n in c.numbers]
        if not self.numbers:
            raise ValueError("the configuration has no campaign numbers to call")
        self.invalid_rate = invalid_rate
        self.unknown_number_rate = unknown_number_rate
        self.repeat_rate = repeat_rate
        self.blocked_rate = blocked_rate
        self.ivr_hangup_rate = ivr_hangup_rate
        self.blocked = list(config.blocklist.numbers)  # callers the config refuses everywhere
        self.recent: list[tuple[str, str]] = []  # (caller, dialed) of recent calls, for repeat callers

    def next_call(self) -> DemoCall:
        rng = self.rng
        _state, area, zip3 = rng.choice(AREAS)
        # Exchange 2xx-9xx, line 0000-9999; 555-01xx numbers are fictional but valid-looking.
        caller = f"+1{area}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
        if rng.random() < self.invalid_rate:
            caller = f"+1{rng.randint(100, 199)}555{rng.randint(0, 9999):04d}"  # area codes 1xx do not exist
        answers = {
            "zip": f"{zip3}{rng.randint(0, 99):02d}",
            "homeowner": rng.choice(["yes", "yes", "no"]),
            "insured": rng.choice(["yes", "no"]),
            "credit_score": str(rng.randint(520, 820)),
            "monthly_bill": str(rng.randint(30, 600)),  # under 50 ends the solar flow disqualified (low_bill)
            "language": rng.choice(["en", "en", "en", "es"]),
        }
        dialed = rng.choice(self.numbers)
        if rng.random() < self.unknown_number_rate:
            dialed = "+18885550000"  # a tracking number nobody configured (misdialed / retired)
        roll = rng.random()
        if roll < self.repeat_rate and self.recent:
            caller, dialed = rng.choice(self.recent)  # calls again (a duplicate where the campaign has a window)
        elif roll < self.repeat_rate + self.blocked_rate and self.blocked:
            caller = rng.choice(self.blocked)
        self.recent.append((caller, dialed))
        del self.recent[:-200]
        talk_seconds = rng.choice([15, 45, 95, 120, 240])
        # Drawn last, and only when asked for: without hang-ups the calls are the draws they always were.
        hangs_up = self.ivr_hangup_rate > 0 and rng.random() < self.ivr_hangup_rate
        return DemoCall(caller, dialed, answers, talk_seconds=talk_seconds, hangs_up_in_ivr=hangs_up)
