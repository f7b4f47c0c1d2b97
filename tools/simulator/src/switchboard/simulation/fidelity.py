"""The simulator's queue model against Erlang C (docs/SIMULATION.md, "Queue model fidelity").

    python -m switchboard.simulation.fidelity [--calls 200000] [--seed 1]
    python -m switchboard.simulation.fidelity --calls 50000 --seeds 8
    python -m switchboard.simulation.fidelity --case 480,60,10 --calls 100000 --seed 100 --seeds 10

prints the tables of the docs: for several M/M/c queues (Poisson arrivals, exponential handle
times, c agents, nobody abandons) the P(wait) and ASA the simulator measures through the routing
core next to Erlang C, with one standard error by batch means; with --seeds, the mean relative
error over several seeds (a check for bias rather than noise).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from switchboard.core.config import RoutingConfig
from switchboard.simulation.erlang import ErlangA, ErlangC, erlang_a, erlang_c
from switchboard.simulation.simulator import CallRecord, Simulator


def mmc_config(arrivals_per_hour: float, handle_time_s: float, agents: int, patience_s: float | None = None) -> RoutingConfig:
    """An M/M/c call center as a routing configuration: one campaign whose only tier is a queue of
    `agents` agents, Poisson arrivals, exponential handle times, nobody abandons (max_wait_s huge);
    with `patience_s`, M/M/c+M: every waiting caller hangs up after an exponential patience of that mean."""
    config = RoutingConfig.model_validate(
        {
            "publishers": [{"id": "pub"}],
            "campaigns": [
                {
                    "id": "calls",
                    "numbers": ["+18885550123"],
                    "publisher": "pub",
                    "routing": {"tiers": [{"strategy": "queue", "queue": "q"}]},
                }
            ],
            "queues": [{"id": "q", "max_wait_s": 10**9}],
            "agents": [{"id": f"agent-{i}", "queues": ["q"]} for i in range(1, agents + 1)],
            "simulation": {
                "traffic": {"calls_per_hour": arrivals_per_hour},
                "agents": {"defaults": {"handle_time_s": {"type": "exponential", "mean": handle_time_s}}},
                **({"queues": {"q": {"patience_s": {"type": "exponential", "mean": patience_s}}}} if patience_s else {}),
            },
        }
    )
    return config


@dataclass(frozen=True)
class AbandonFidelity:
    """An M/M/c+M queue simulated through the core next to Erlang A."""

    arrivals_per_hour: float
    handle_time_s: float
    agents: int
    patience_s: float
    theory: ErlangA
    abandon_probability: float
    wait_probability: float
    avg_wait_s: float  # over all calls, the abandoned ones' waits included (Erlang A's mean wait)
    abandon_probability_se: float  # batch means (20 batches of consecutive calls)

    @property
    def offered_load(self) -> float:
        return self.arrivals_per_hour / 3600 * self.handle_time_s / self.agents


def abandon_fidelity(
    arrivals_per_hour: float, handle_time_s: float, agents: int, patience_s: float, calls: int, seed: int = 1
) -> AbandonFidelity:
    """Simulate the M/M/c+M queue through the core and measure P(abandon), P(wait) and the mean wait next to Erlang A."""
    gave_up: dict[int, bool] = {}

    def keep(record: CallRecord) -> None:
        gave_up[record.call.index] = record.outcome.why == "caller_hangup"

    config = mmc_config(arrivals_per_hour, handle_time_s, agents, patience_s)
    q = Simulator(config, seed, on_call=keep).run(calls).to_dict()["queues"]["q"]
    ordered = [gave_up[i] for i in sorted(gave_up)]
    size = len(ordered) // 20
    shares = [sum(ordered[i * size : (i + 1) * size]) / size for i in range(20)]
    reached, abandoned = q["answered"], q["abandoned"]
    wait_all = (q["avg_wait_s"] or 0.0) * reached + (q["avg_wait_abandoned_s"] or 0.0) * abandoned
    return AbandonFidelity(
        arrivals_per_hour,
        handle_time_s,
        agents,
        patience_s,
        erlang_a(arrivals_per_hour / 3600, handle_time_s, agents, patience_s),
        q["abandon_rate"],
        q["wait_probability"],
        wait_all / q["calls"],
        statistics.stdev(shares) / math.sqrt(20),
    )


@dataclass(frozen=True)
class Fidelity:
    arrivals_per_hour: float
    handle_time_s: float
    agents: int
    theory: ErlangC
    wait_probability: float
    avg_wait_s: float
    wait_probability_se: float  # standard error by batch means (20 batches of consecutive calls)
    avg_wait_se: float

    @property
    def utilisation(self) -> float:
        return self.arrivals_per_hour / 3600 * self.handle_time_s / self.agents


def fidelity(arrivals_per_hour: float, handle_time_s: float, agents: int, calls: int, seed: int = 1) -> Fidelity:
    """Simulate the M/M/c queue through the core and measure P(wait) and ASA next to Erlang C."""
    waits: dict[int, float] = {}

    def keep(record: CallRecord) -> None:
        waits[record.call.index] = record.outcome.wait_s or 0.0

    result = (
        Simulator(mmc_config(arrivals_per_hour, handle_time_s, agents), seed, on_call=keep).run(calls).to_dict()["queues"]["q"]
    )
    ordered = [waits[i] for i in sorted(waits)]
    size = len(ordered) // 20
    batches = [ordered[i * size : (i + 1) * size] for i in range(20)]
    waited = [sum(1 for w in b if w > 0) / size for b in batches]
    mean_wait = [sum(b) / size for b in batches]
    return Fidelity(
        arrivals_per_hour,
        handle_time_s,
        agents,
        erlang_c(arrivals_per_hour / 3600, handle_time_s, agents),
        result["wait_probability"],
        result["avg_wait_s"],
        statistics.stdev(waited) / math.sqrt(20),
        statistics.stdev(mean_wait) / math.sqrt(20),
    )


CASES = (
    (12.0, 60.0, 1),
    (30.0, 60.0, 1),
    (60.0, 60.0, 2),
    (90.0, 60.0, 3),
    (210.0, 60.0, 5),
    (480.0, 60.0, 10),
    (1020.0, 60.0, 20),
)

# M/M/c+M cases: (calls per hour, handle seconds, agents, mean patience seconds); loads at and over 1
# (Erlang A has a steady state at any load: impatience empties the queue).
ABANDON_CASES = (
    (60.0, 60.0, 1, 60.0),
    (100.0, 60.0, 2, 60.0),
    (150.0, 60.0, 2, 60.0),
    (540.0, 60.0, 10, 120.0),
)


def main(argv: list[str] | None = None) -> None:
    """Print the docs/SIMULATION.md tables: `python -m switchboard.simulation.fidelity [--calls N] [--seed S] [--seeds K]`."""
    import argparse

    parser = argparse.ArgumentParser(description="The simulator's M/M/c queue against Erlang C")
    parser.add_argument("--calls", type=int, default=200_000, help="calls per run")
    parser.add_argument("--seed", type=int, default=1, help="the (first) seed")
    parser.add_argument("--seeds", type=int, default=1, help="more than 1: the mean error over that many seeds (a bias check)")
    parser.add_argument("--case", help="only this case: calls per hour, handle seconds, agents (e.g. 480,60,10)")
    parser.add_argument(
        "--abandon",
        action="store_true",
        help="Erlang A: M/M/c+M cases (ABANDON_CASES, or --case λ,h,c,patience) next to the simulator",
    )
    args = parser.parse_args(argv)
    if args.abandon:
        abandon_cases: tuple[tuple[float, float, int, float], ...] = ABANDON_CASES
        if args.case:
            lam, handle, agents, patience = args.case.split(",")
            abandon_cases = ((float(lam), float(handle), int(agents), float(patience)),)
        print(f"{args.calls:,} calls per run, seeds {args.seed}..{args.seed + args.seeds - 1}; ± is one standard error\n")
        print(
            "| λ (calls/h) | handle (s) | agents | patience (s) | load | P(abandon) Erlang A | simulated | error | P(wait) error | mean wait error |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for lam, handle, agents, patience in abandon_cases:
            a_runs = [
                abandon_fidelity(lam, handle, agents, patience, args.calls, s) for s in range(args.seed, args.seed + args.seeds)
            ]
            t = a_runs[0].theory
            ab = statistics.fmean(f.abandon_probability for f in a_runs)
            se = statistics.fmean(f.abandon_probability_se for f in a_runs) / math.sqrt(len(a_runs))
            pw = statistics.fmean(f.wait_probability for f in a_runs)
            wait = statistics.fmean(f.avg_wait_s for f in a_runs)
            print(
                f"| {lam:g} | {handle:g} | {agents} | {patience:g} | {a_runs[0].offered_load:.2f} | {t.abandon_probability:.4f} "
                f"| {ab:.4f} ± {se:.4f} | {ab / t.abandon_probability - 1:+.2%} | {pw / t.wait_probability - 1:+.2%} "
                f"| {wait / t.avg_wait_s - 1:+.2%} |",
                flush=True,
            )
        return
    cases: tuple[tuple[float, float, int], ...] = CASES
    if args.case:
        lam, handle, agents = args.case.split(",")
        cases = ((float(lam), float(handle), int(agents)),)
    if args.seeds > 1:
        print(
            f"{args.calls:,} calls per run, seeds {args.seed}..{args.seed + args.seeds - 1}; relative error: mean ± its standard error (sd over the seeds)\n"
        )
        print("| λ (calls/h) | handle (s) | agents | ρ | P(wait) error | ASA error |")
        print("|---:|---:|---:|---:|---:|---:|")
        for lam, handle, agents in cases:
            runs = [fidelity(lam, handle, agents, args.calls, s) for s in range(args.seed, args.seed + args.seeds)]
            cells = []
            for errors in (
                [f.wait_probability / f.theory.wait_probability - 1 for f in runs],
                [f.avg_wait_s / f.theory.avg_wait_s - 1 for f in runs],
            ):
                sd = statistics.stdev(errors)
                cells.append(f"{statistics.fmean(errors):+.2%} ± {sd / math.sqrt(len(errors)):.2%} ({sd:.2%})")
            print(f"| {lam:g} | {handle:g} | {agents} | {runs[0].utilisation:.2f} | {cells[0]} | {cells[1]} |", flush=True)
        return
    print(f"{args.calls:,} calls per case, seed {args.seed}; ± is one standard error (batch means)\n")
    print(
        "| λ (calls/h) | handle (s) | agents | ρ | P(wait) Erlang C | P(wait) simulated | error | ASA Erlang C (s) | ASA simulated (s) | error |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for lam, handle, agents in cases:
        f = fidelity(lam, handle, agents, args.calls, args.seed)
        pw, asa = f.theory.wait_probability, f.theory.avg_wait_s
        print(
            f"| {lam:g} | {handle:g} | {agents} | {f.utilisation:.2f} | {pw:.4f} | {f.wait_probability:.4f} ± {f.wait_probability_se:.4f} "
            f"| {f.wait_probability / pw - 1:+.2%} | {asa:.2f} | {f.avg_wait_s:.2f} ± {f.avg_wait_se:.2f} | {f.avg_wait_s / asa - 1:+.2%} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
