"""The `switchboard` command line: run the local stack, the broker, validate config, query analytics."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from switchboard.platform.settings import DEMO_CONFIG

app = typer.Typer(help="Switchboard: call distributor and ping-tree marketplace for pay-per-call.", no_args_is_help=True)
config_app = typer.Typer(help="Routing configuration (docs/ROUTING.md).", no_args_is_help=True)
analytics_app = typer.Typer(help="Query the analytics store (ClickHouse / chDB).", no_args_is_help=True)
app.add_typer(config_app, name="config")
deadletter_app = typer.Typer(help="Dead letters: list them, replay their records (docs/DEAD_LETTERS.md).", no_args_is_help=True)
app.add_typer(analytics_app, name="analytics")
app.add_typer(deadletter_app, name="deadletter")
console = Console()


@config_app.command("validate")
def config_validate(path: Path = typer.Argument(..., help="YAML file or directory of *.yaml/*.yml files")) -> None:
    """Check a configuration; print every problem as `file:line: path.to.field: message (fix)` (docs/CONFIG.md)."""
    from switchboard.platform.configfile import check_config

    cfg, problems = check_config(path)
    if problems or cfg is None:
        for p in problems:
            typer.echo(str(p))
        typer.echo(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in {path}", err=True)
        raise typer.Exit(1)
    typer.echo(
        f"{path}: OK: {len(cfg.campaigns)} campaigns, {len(cfg.buyers)} buyers, "
        f"{len(cfg.publishers)} publishers, {len(cfg.queues)} queues, {len(cfg.agents)} agents, {len(cfg.ivr_flows)} IVR flows"
    )


topics_app = typer.Typer(help="The Kafka topics Switchboard uses (docs/TOPICS.md).")
app.add_typer(topics_app, name="topics")


@topics_app.callback(invoke_without_command=True)
def topics(ctx: typer.Context) -> None:
    """List the Kafka topics Switchboard uses (docs/TOPICS.md); `create` and `manifest` below."""
    if ctx.invoked_subcommand is not None:
        return
    from google.protobuf.message import Message

    from switchboard.topicset import project_topics

    table = Table("topic", "message", "kept", "meaning")
    for t in project_topics():
        message = "JSON" if t.message is Message else t.message.DESCRIPTOR.full_name  # the router's own topics
        kept = "compacted" if t.compacted else f"{int(t.configs['retention.ms']) // 86_400_000} days"
        table.add_row(t.name, message, kept, t.description)
    console.print(table)


def _partitions_default() -> int:
    from switchboard.platform.settings import KafkaSettings

    return KafkaSettings().partitions  # SWITCHBOARD_KAFKA_PARTITIONS, else the services' default


@topics_app.command("create")
def topics_create(
    bootstrap: str = typer.Option(..., "--bootstrap", help="HOST:PORT[,HOST:PORT] of the cluster"),
    replication_factor: int = typer.Option(..., "--replication-factor", min=1, help="replicas per partition"),
    partitions: int = typer.Option(
        None,
        "--partitions",
        min=1,
        help="partitions per topic; must equal the services' SWITCHBOARD_KAFKA_PARTITIONS (default: that variable, else 4)",
        show_default=False,
    ),
    timeout: float = typer.Option(30.0, "--timeout", min=0.1, help="seconds to wait for the cluster to answer"),
) -> None:
    """Create every topic (events, dead letters, state, the router's own) with its partitions, replication,
    cleanup policy and retention; existing topics are checked, not changed. TLS/SASL from SWITCHBOARD_KAFKA_*;
    the router's topic names from SWITCHBOARD_ROUTER_* (app id). Exit 1: existing topics differ; 2: no answer."""
    from switchboard.platform.settings import KafkaSettings
    from switchboard.services.router.settings import RouterSettings
    from switchboard.topicset import create_topics, project_topics

    kafka = KafkaSettings().model_copy(
        update={
            "bootstrap_servers": bootstrap,
            "replication_factor": replication_factor,
            "partitions": partitions or _partitions_default(),
        }
    )
    topics = project_topics(RouterSettings())
    try:
        statuses = asyncio.run(create_topics(kafka, topics, timeout))
    except TimeoutError as exc:
        typer.echo(f"error: {exc} (check --bootstrap and that the cluster is up; TLS/SASL: SWITCHBOARD_KAFKA_*)", err=True)
        raise typer.Exit(2) from None
    differing = [s for s in statuses if s.problems]
    for s in statuses:
        state = "created" if s.created else "exists" if not s.problems else "exists, differs: " + "; ".join(s.problems)
        typer.echo(f"{s.name}: {state}")
    created = sum(s.created for s in statuses)
    typer.echo(
        f"{created} created, {len(statuses) - created} existing ({len(differing)} differing) on {bootstrap}: "
        f"{kafka.partitions} partitions, replication factor {replication_factor}"
    )
    if differing:
        typer.echo(
            "error: existing topics differ from their declaration; alter them (kafka-configs.sh / kafka-topics.sh) "
            "or recreate them: the services rely on these settings",
            err=True,
        )
        raise typer.Exit(1)


@topics_app.command("manifest")
def topics_manifest(
    partitions: int = typer.Option(..., "--partitions", min=1, help="partitions per topic (SWITCHBOARD_KAFKA_PARTITIONS)"),
    replication_factor: int = typer.Option(..., "--replication-factor", min=1, help="replicas per partition"),
    cluster: str = typer.Option("switchboard", "--cluster", help="name of the Strimzi Kafka resource"),
) -> None:
    """Print one Strimzi KafkaTopic per topic (the source of deploy/kafka/topics.yaml)."""
    from switchboard.services.router.settings import RouterSettings
    from switchboard.topicset import kafka_topic_manifests, project_topics

    typer.echo(kafka_topic_manifests(project_topics(RouterSettings()), partitions, replication_factor, cluster), nl=False)


@app.command()
def broker(
    port: int = typer.Option(9092, help="loopback port to listen on (0: pick a free one)"),
    partitions: int = typer.Option(4, help="partitions per topic"),
) -> None:
    """Run the embedded Kafka-protocol broker (Tansu, in memory) with every topic created."""
    from switchboard.platform.broker import EmbeddedBroker, serve_forever

    b = EmbeddedBroker(port=port, partitions=partitions)

    def ready() -> None:  # only once every topic exists: a client may connect as soon as it reads this
        console.print(f"broker on [b]{b.bootstrap_servers}[/b] (in memory, {partitions} partitions per topic); Ctrl-C to stop")

    asyncio.run(serve_forever(b, ready))


@app.command()
def run(
    config: Path = typer.Option(DEMO_CONFIG, help="routing configuration"),
    rate: float = typer.Option(10.0, help="demo calls started per second"),
    duration: float = typer.Option(0.0, help="seconds of demo traffic; 0 runs until Ctrl-C"),
    calls: int = typer.Option(0, help="stop after this many calls (0: no limit)"),
    workdir: Path = typer.Option(Path("var/run"), help="logs, state and the embedded ClickHouse data"),
    dsn: str = typer.Option("", help="analytics DSN (default: embedded chDB under workdir)"),
    seed: int = typer.Option(1, help="traffic seed"),
    answer_rate: float = typer.Option(
        0.9, min=0.0, max=1.0, help="share of offers the demo buyers answer; the rest are re-routed"
    ),
    buyers: Path | None = typer.Option(
        None,
        help="buyer simulator YAML for the RTB buyers (default: the demo's examples/buyers.yaml when the config has RTB buyers)",
    ),
    simulate_buyers: bool = typer.Option(
        True, help="start the buyer simulator for the RTB buyers (--no-simulate-buyers: they must be reachable)"
    ),
    callback_accept_rate: float = typer.Option(
        0.5, min=0.0, max=1.0, help="share of waiting callers offered a callback who accept it"
    ),
    callback_answer_rate: float = typer.Option(
        0.8, min=0.0, max=1.0, help="share of callbacks the demo callers answer (the rest are retried by the queue)"
    ),
    agent_talk_scale: float = typer.Option(
        0.25,
        min=0.0,
        help="demo talk time with an in-house agent, as a share of the call's talk time (buyers: 0.01); "
        "longer agent calls fill the queue, so waits, callbacks and overflow show",
    ),
) -> None:
    """Bring the whole stack up locally, drive demo calls through the gRPC edge, show it live.

    Agents configured `login: desk` log in through AgentDesk and wrap up their calls (demo/desk.py);
    callers waiting in a queue hear their place and projected wait and may accept a callback, which
    the demo's callback edge places (demo/callbacks.py)."""
    from switchboard.core.config import ConfigError
    from switchboard.demo.callbacks import DemoCallbacks
    from switchboard.demo.desk import DemoAgents
    from switchboard.demo.driver import DriveStats, drive
    from switchboard.demo.live import CrmView, RtbView, acd_table, render
    from switchboard.demo.traffic import TrafficModel
    from switchboard.platform.configfile import load_config
    from switchboard.platform.kafka import wait_until_drained
    from switchboard.platform.logging import configure_logging
    from switchboard.stack import Stack, StackError

    configure_logging(service="switchboard-run")
    try:
        load_config(config)  # fail fast, before anything starts; reloaded below with the stack's variables
    except ConfigError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(1) from None
    if workdir.exists():
        shutil.rmtree(workdir)  # each run starts from an empty broker, so its analytics start empty too
    stack = Stack(workdir=workdir, config=config, dsn=dsn or None, buyers=buyers if simulate_buyers else False)

    async def main() -> DriveStats:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        with console.status("starting broker…") as status:
            await stack.start(progress=lambda name: status.update(f"starting {name}…"))
        sim = f", buyer simulator http {stack.buyersim_http} grpc {stack.buyersim_grpc}" if stack.buyersim_http else ""
        sim += f", demo CRM http {stack.crm_http}" if stack.crm_http else ""
        console.print(f"stack up: broker {stack.bootstrap_servers}, gRPC edge {stack.ivr_target}{sim}, logs in {stack.log_dir}")
        console.print("ops endpoints (docs/OPERATIONS.md):")
        for name, url in stack.ops_urls().items():
            console.print(f"  {name:<10} {url}/metrics  {url}/livez  {url}/readyz", highlight=False, soft_wrap=True)
        # The same config the services loaded, with the simulator's addresses filled in.
        run_cfg = load_config(config, env=stack.config_env())
        rtb = RtbView(run_cfg, stack.buyersim_http)
        crm = CrmView(stack.crm_http)
        stats = DriveStats()
        desk_agents = any(a.login == "desk" for a in run_cfg.agents)
        agents = DemoAgents(stack.desk_target, run_cfg, seed=seed) if desk_agents else None
        callbacks = DemoCallbacks(stack.ivr_target, stats, answer_rate=callback_answer_rate, seed=seed)
        acd_stop = asyncio.Event()
        acd = [asyncio.create_task(callbacks.run(acd_stop))]
        if agents is not None:
            acd.append(asyncio.create_task(agents.run(acd_stop)))
        driver = asyncio.create_task(
            drive(
                stack.ivr_target,
                TrafficModel(run_cfg, seed),
                rate,
                count=calls or None,
                duration_s=duration or None,
                stop=stop,
                stats=stats,
                answer_rate=answer_rate,
                seed=seed,
                callback_accept_rate=callback_accept_rate,
                agent_talk_scale=agent_talk_scale,
            )
        )
        with Live(render(stats, rate, rtb=rtb, agents=agents, crm=crm), console=console, refresh_per_second=4) as live:
            while not driver.done():
                await asyncio.wait({driver}, timeout=0.25)
                await rtb.refresh()
                await crm.refresh()
                dead = stack.dead_services()
                live.update(render(stats, rate, dead, rtb=rtb, agents=agents, crm=crm))
                if dead:
                    stop.set()
        await driver
        acd_stop.set()
        await asyncio.gather(*acd)
        if stats.waited or stats.callbacks:
            console.print(acd_table(stats, agents))
        with console.status("waiting for analytics to catch up…"):
            await wait_until_drained(stack.kafka_settings(), "analytics", timeout_s=30)
        if crm.url is not None:
            crm.every_s = 0.0  # the numbers as they are now, after the last calls ended
            await crm.refresh()
            console.print(f"CRM webhooks: {crm.line()}", highlight=False, soft_wrap=True)
        return stats

    try:
        asyncio.run(main())
    except StackError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(1) from None
    finally:
        codes = stack.stop()
        bad = {n: c for n, c in codes.items() if c not in (0, None)}
        if bad:
            console.print(f"[yellow]services exited with errors: {bad}")
    _print_summary(stack.analytics_dsn)


@app.command()
def simulate(
    config: Path = typer.Option(
        DEMO_CONFIG, "--config", help="routing configuration with its `simulation:` model (docs/SIMULATION.md)"
    ),
    calls: int = typer.Option(10_000, "--calls", min=1, help="simulated calls (per run)"),
    seed: int = typer.Option(1, "--seed", help="same seed, same result (byte for byte)"),
    as_json: bool = typer.Option(False, "--json", help="print the result as one JSON object"),
    out: Path | None = typer.Option(None, "--out", help="write one JSON line per call: attributes, outcome, decision trace"),
    compare: tuple[Path, Path] | None = typer.Option(
        None, "--compare", help="compare two plans A B on the same traffic (instead of --config)", metavar="A.yaml B.yaml"
    ),
    runs: int = typer.Option(10, "--runs", min=2, help="paired runs for --compare (seeds seed..seed+runs-1)"),
) -> None:
    """Simulate calls through the routing core offline: revenue, fill rate, buyers, rejects, queues (docs/SIMULATION.md)."""
    import sys

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from switchboard.core.config import ConfigError, RoutingConfig
    from switchboard.platform.configfile import load_config
    from switchboard.simulation import CallRecord, Simulator
    from switchboard.simulation.compare import compare as compare_plans
    from switchboard.simulation.render import comparison_table, result_tables

    def load(path: Path) -> RoutingConfig:
        try:
            return load_config(path)
        except ConfigError as exc:
            for p in exc.problems:
                typer.echo(p, err=True)
            typer.echo(f"{len(exc.problems)} problem{'s' if len(exc.problems) != 1 else ''} in {path}", err=True)
            raise typer.Exit(1) from None

    err = Console(stderr=True)
    show_progress = not as_json and sys.stderr.isatty()

    def bar() -> Progress:
        columns = (TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        return Progress(*columns, console=err, disable=not show_progress, transient=True)

    if compare is not None:
        if out is not None:
            raise typer.BadParameter("--out writes the calls of one run; leave it out with --compare", param_hint="--out")
        plan_a, plan_b = compare
        cfg_a, cfg_b = load(plan_a), load(plan_b)
        with bar() as progress:
            task = progress.add_task("runs", total=2 * runs)
            try:
                result = compare_plans(cfg_a, cfg_b, calls, runs, seed, progress=lambda k: progress.update(task, completed=k))
            except ValueError as exc:
                raise typer.BadParameter(str(exc)) from None
        doc = result.to_dict(str(plan_a), str(plan_b))
        if as_json:
            typer.echo(json.dumps(doc))
            return
        console.print(comparison_table(doc))
        if result.traffic_differs:
            console.print(
                "[yellow]note: the two plans have different simulation.traffic (or start): they did not get the same calls"
            )
        return

    cfg = load(config)
    sink = None
    handle = None
    if out is not None:
        handle = out.open("w", encoding="utf-8")
        pending: dict[int, str] = {}  # calls end out of order: write them in call order
        next_call = [1]

        def sink(record: CallRecord) -> None:
            pending[record.call.index] = json.dumps(record.to_dict())
            while next_call[0] in pending:
                handle.write(pending.pop(next_call[0]) + "\n")
                next_call[0] += 1

    try:
        simulator = Simulator(cfg, seed, on_call=sink)
        with bar() as progress:
            task = progress.add_task("calls", total=calls)
            tally = simulator.run(calls, lambda n: progress.update(task, completed=n))
    except ValueError as exc:  # nothing to simulate (e.g. no campaigns)
        typer.echo(f"{config}: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        if handle is not None:
            handle.close()
    doc = tally.to_dict()
    if as_json:
        typer.echo(json.dumps(doc))
        return
    console.print(result_tables(doc, f"Simulation of {config}: {calls:,} calls, seed {seed}"))
    if out is not None:
        console.print(f"{calls:,} calls written to {out} (one JSON object per line)")


def _print_summary(dsn: str) -> None:
    from switchboard.analytics import reports

    client = reports.open_client(dsn)
    try:
        console.rule(f"Summary from ClickHouse ({reports.redact(dsn)})")
        for title, section in reports.summary(client).items():
            rows = section if isinstance(section, list) else [section]
            console.print(_rich_table(title.replace("_", " "), rows))
    finally:
        client.close()


def _rich_table(title: str, rows: list[dict]) -> Table:
    table = Table(title=title)
    if not rows:
        table.add_column("(none)")
        return table
    for col in rows[0]:
        table.add_column(col, justify="right" if isinstance(rows[0][col], (int, float)) else "left")
    for row in rows:
        table.add_row(*[str(v) for v in row.values()])
    return table


@analytics_app.command("query")
def analytics_query(
    sql: str = typer.Argument(..., help='SQL, e.g. "SELECT buyer_id, sum(price) FROM calls_routed GROUP BY buyer_id"'),
    dsn: str = typer.Option("", envvar="SWITCHBOARD_ANALYTICS_DSN", help="chdb:///path or http(s)://user:pass@host:8123/db"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per row"),
) -> None:
    """Run one SQL query against the analytics store (stop the sink first when it is embedded chDB)."""
    from switchboard.analytics import reports

    client = reports.open_client(dsn or reports.default_dsn())
    try:
        columns, result = reports.run_sql(client, sql)
        rows = [dict(zip(columns, r, strict=True)) for r in result]
    finally:
        client.close()
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row, default=str))
    else:
        console.print(_rich_table(sql, rows))


@analytics_app.command("report")
def analytics_report(dsn: str = typer.Option("", envvar="SWITCHBOARD_ANALYTICS_DSN")) -> None:
    """Print the standard summary: outcomes, rejects by reason, revenue by buyer, latency, dispositions."""
    from switchboard.analytics import reports

    _print_summary(dsn or reports.default_dsn())


# ------------------------------------------------------------------ dead letters

_BOOTSTRAP = typer.Option(
    None, "--bootstrap", help="Kafka host:port[,host:port] (default: SWITCHBOARD_KAFKA_BOOTSTRAP_SERVERS, else 127.0.0.1:9092)"
)
_TOPIC = typer.Option(None, "--topic", help="only letters of records from this source topic")
_REASON = typer.Option(None, "--reason", help="only letters whose reason contains this text (case-insensitive)")
_SERVICE = typer.Option(None, "--service", help="only letters written by this service (router, queue, cti, analytics...)")
_SINCE = typer.Option(
    None, "--since", help="only letters written since: an age (30s, 15m, 2h, 7d) or an ISO time (2026-01-31T08:00Z)"
)


def _since(value: str | None) -> datetime | None:
    """An age such as 15m (before now) or an ISO 8601 time (UTC when it names no zone)."""
    if value is None:
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd])", value.strip())
    if m:
        seconds = float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
        return datetime.now(UTC) - timedelta(seconds=seconds)
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{value!r} is neither an age (30s, 15m, 2h, 7d) nor an ISO time (2026-01-31T08:00Z)") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _kafka(bootstrap: str | None) -> Any:
    from switchboard.platform.settings import KafkaSettings

    return KafkaSettings(bootstrap_servers=bootstrap) if bootstrap else KafkaSettings()


def _letter_dict(stored: Any) -> dict[str, Any]:
    from switchboard.platform import codec

    letter, replay = stored.letter, stored.replay
    return {
        "id": letter.event_id,
        "time": codec.ts_to_datetime(letter.occurred_at).isoformat(),
        "service": letter.service,
        "source_topic": letter.source_topic,
        "source_partition": letter.source_partition,
        "source_offset": letter.source_offset,
        "reason": letter.reason,
        "key": letter.key.decode(errors="replace"),
        "value_bytes": len(letter.value) or letter.value_omitted_bytes,
        "value_in_letter": not letter.value_omitted_bytes,
        "deadletter_partition": stored.partition,
        "deadletter_offset": stored.offset,
        "replayed_to": f"{replay.to_topic}/{replay.to_partition}/{replay.to_offset}" if replay else None,
    }


@deadletter_app.command("list")
def deadletter_list(
    bootstrap: str | None = _BOOTSTRAP,
    topic: str | None = _TOPIC,
    reason: str | None = _REASON,
    service: str | None = _SERVICE,
    since: str | None = _SINCE,
    as_json: bool = typer.Option(False, "--json", help="one JSON object per letter"),
) -> None:
    """List the dead letters in the deadletter topic: where each record came from, why, who, when, replayed or not."""
    from switchboard.platform.replay import Selection, read_letters

    selection = Selection(topic=topic, reason=reason, service=service, since=_since(since))
    letters = asyncio.run(read_letters(_kafka(bootstrap), selection))
    rows = [_letter_dict(s) for s in letters]
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row))
        return
    table = Table("time", "service", "source", "reason", "replayed", title=f"{len(rows)} dead letters")
    for row in rows:
        source = f"{row['source_topic']}/{row['source_partition']}/{row['source_offset']}"
        table.add_row(row["time"][:23], row["service"], source, row["reason"][:120], row["replayed_to"] or "")
    console.print(table)


@deadletter_app.command("replay")
def deadletter_replay(
    bootstrap: str | None = _BOOTSTRAP,
    topic: str | None = _TOPIC,
    reason: str | None = _REASON,
    service: str | None = _SERVICE,
    since: str | None = _SINCE,
    ids: list[str] = typer.Option([], "--id", help="only the letter with this id (repeatable; ids from `deadletter list`)"),
    to: str | None = typer.Option(None, "--to", help="publish to this topic instead of each record's source topic"),
    dry_run: bool = typer.Option(False, "--dry-run", help="show what would be replayed, publish nothing"),
    all_letters: bool = typer.Option(False, "--all", help="replay every letter (without any other selection)"),
) -> None:
    """Re-publish the original records of the selected dead letters; each is replayed once (recorded in deadletter.replays)."""
    from switchboard.platform.replay import Selection, read_letters, replay

    selection = Selection(topic=topic, reason=reason, service=service, since=_since(since), ids=frozenset(ids))
    if selection == Selection() and not all_letters:
        typer.echo("select the letters to replay (--topic, --reason, --service, --since, --id), or pass --all", err=True)
        raise typer.Exit(2)
    kafka = _kafka(bootstrap)

    async def main() -> list[Any]:
        return await replay(kafka, await read_letters(kafka, selection), to, dry_run=dry_run)

    results = asyncio.run(main())
    for r in results:
        letter = r.stored.letter
        source = f"{letter.source_topic}/{letter.source_partition}/{letter.source_offset}"
        typer.echo(f"{r.status}: {letter.event_id} {source} -> {r.to_topic} {r.detail}".rstrip())
    counts = {st: sum(r.status == st for r in results) for st in ("replayed", "would_replay", "already_replayed", "skipped")}
    typer.echo(", ".join(f"{n} {st.replace('_', ' ')}" for st, n in counts.items() if n) or "no dead letters selected", err=True)


if __name__ == "__main__":
    app()
