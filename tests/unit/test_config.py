import re
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from switchboard.cli import app
from switchboard.core.config import ConfigError, RoutingConfig
from switchboard.platform.configfile import load_config

MINIMAL = """
version: 1
publishers: [{id: pub, min_price: 10.00}]
buyers:
  - {id: b1, destination: "+18005550100", bid: {type: static, price: 40.00}}
campaigns:
  - id: c1
    numbers: ["+18885550123"]
    publisher: pub
    routing: {tiers: [{strategy: price, buyers: [b1]}]}
"""


def test_demo_config_loads(demo_config_path: Path):
    cfg = load_config(demo_config_path)
    assert cfg.campaign_for_number("+18885550123").id == "solar-ca"
    assert str(cfg.buyer("acme-solar").bid.price) == "40.00"


def test_directory_of_files_is_merged(tmp_path: Path):
    (tmp_path / "a.yaml").write_text(MINIMAL)
    (tmp_path / "b.yaml").write_text('buyers: [{id: b2, destination: "+18005550101", bid: {type: static, price: 1.00}}]\n')
    cfg = load_config(tmp_path)
    assert [b.id for b in cfg.buyers] == ["b1", "b2"]


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        (("strategy: price", "strategy: cheapest"), "campaigns.0.routing.tiers.0.strategy"),
        (("buyers: [b1]}", "buyers: [nobody]}"), "unknown buyer 'nobody'"),
        (("price: 40.00", "price: -5.00"), "buyers.0.bid.price"),
        (("publisher: pub", "publisher: ghost"), "unknown publisher 'ghost'"),
        (('destination: "+18005550100"', 'destination: "call me"'), "E.164"),
    ],
)
def test_invalid_config_names_file_field_and_fix(tmp_path: Path, patch, expected):
    f = tmp_path / "bad.yaml"
    f.write_text(MINIMAL.replace(*patch))
    with pytest.raises(ConfigError) as err:
        load_config(f)
    text = "\n".join(err.value.problems)
    assert str(f) in text and expected in text


def test_cli_validate_exit_codes(tmp_path: Path, demo_config_path: Path):
    runner = CliRunner()
    ok = runner.invoke(app, ["config", "validate", str(demo_config_path)])
    assert ok.exit_code == 0, ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(MINIMAL.replace("weight", "x").replace("buyers: [b1]}", "buyers: [nobody]}"))
    res = runner.invoke(app, ["config", "validate", str(bad)])
    assert res.exit_code == 1
    assert "unknown buyer 'nobody'" in res.output


# ---------------------------------------------------------------- every refusal: file, line, field path and a fix

# Block style, one field per line, so every field has its own line number.
FULL = """\
version: 1
publishers:
  - id: pub
    min_price: 10.00
    blocked_buyers: [b2]
buyers:
  - id: b1
    destination: "+18005550100"
    bid:
      type: static
      price: 40.00
    priority: 1
    weight: 50
    filters:
      states: [CA]
      answers:
        homeowner: {eq: "yes"}
    schedule:
      timezone: America/Los_Angeles
      hours:
        mon-fri: "08:00-20:00"
        sat: "09:00-13:00"
        sun: "20:00-02:00"
  - id: b2
    destination: "sip:sales@example.com"
    bid:
      type: rtb
      url: "http://127.0.0.1:9100/ping"
      timeout_ms: 800
campaigns:
  - id: c1
    numbers: ["+18885550123"]
    publisher: pub
    ivr: qualify
    duplicate_window: 24h
    routing:
      timeout_ms: 2000
      tiers:
        - strategy: price
          buyers: [b1, b2]
        - strategy: parallel_first
          pick: priority
          buyers: [b1, b2]
        - strategy: queue
          queue: sales
queues:
  - id: sales
    strategy: longest_idle
agents:
  - id: ana
    queues: [sales]
    performance: 0.92
ivr_flows:
  - id: qualify
crm_endpoints:
  - id: crm
    url: "https://crm.example.com/hooks"
    events: [call.routed]
    buyers: [b1]
    campaigns: [c1]
    queues: [sales]
    secret_env: CRM_SECRET
    max_attempts: 8
"""


def line_of(text: str, fragment: str) -> int:
    """1-based line where `fragment` first starts in `text`."""
    return text[: text.index(fragment)].count("\n") + 1


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_config(path)
    return err.value.problems


def assert_problem(problems: list[str], file: Path, line: int, field: str, *fragments: str) -> str:
    prefix = f"{file}:{line}: {field}: "
    hits = [p for p in problems if p.startswith(prefix)]
    assert hits, f"no problem starting {prefix!r} in:\n" + "\n".join(problems)
    good = [h for h in hits if all(f in h for f in fragments) and re.search(r" \(.+\)$", h)]
    assert good, f"{hits} lack {fragments} or a (fix)"
    return good[0]


def test_full_example_is_valid_and_money_is_exact(tmp_path: Path):
    f = tmp_path / "routing.yaml"
    f.write_text(FULL)
    cfg = load_config(f)
    assert cfg.publisher("pub").min_price == Decimal("10.00")
    price = cfg.buyer("b1").bid.price
    assert isinstance(price, Decimal) and str(price) == "40.00"
    assert cfg.buyer("b1").schedule.hours["sun"] == "20:00-02:00"


# (case id, text replaced, replacement, field path, fragments of the message/fix, marker of the reported line or None)
REFUSALS = [
    (
        # every buyer of the tier is under the publisher's floor or blocked by it: a tier that sells nothing
        "tier-that-can-never-place-a-call",
        "min_price: 10.00",
        "min_price: 45.00",
        "campaigns.0.routing.tiers.0.buyers",
        (
            "this tier can never place a call",
            "b1 bids 40.00, below its min_price 45.00",
            "b2 is in its blocked_buyers",
            "raise the price",
        ),
        "buyers: [b1, b2]",
    ),
    (
        "tier-unknown-buyer",
        "buyers: [b1, b2]",
        "buyers: [b1, bx]",
        "campaigns.0.routing.tiers.0.buyers.1",
        ("unknown buyer 'bx'", "define it under buyers"),
        None,
    ),
    (
        "tier-unknown-queue",
        "queue: sales",
        "queue: support",
        "campaigns.0.routing.tiers.2.queue",
        ("unknown queue 'support'", "define it under queues"),
        None,
    ),
    (
        "blocked-unknown-buyer",
        "blocked_buyers: [b2]",
        "blocked_buyers: [ghost]",
        "publishers.0.blocked_buyers.0",
        ("unknown buyer 'ghost'", "remove it from blocked_buyers"),
        None,
    ),
    (
        "agent-unknown-queue",
        "queues: [sales]",
        "queues: [salez]",
        "agents.0.queues.0",
        ("unknown queue 'salez'", "did you mean sales?", "define it under queues"),
        None,
    ),
    (
        "campaign-unknown-publisher",
        "publisher: pub",
        "publisher: ghost",
        "campaigns.0.publisher",
        ("unknown publisher 'ghost'", "define it under publishers"),
        None,
    ),
    (
        "campaign-unknown-ivr",
        "ivr: qualify",
        "ivr: qualfy",
        "campaigns.0.ivr",
        ("unknown IVR flow 'qualfy'", "did you mean qualify?", "define it under ivr_flows"),
        None,
    ),
    (
        "bad-timezone",
        "America/Los_Angeles",
        "America/Los_Angles",
        "buyers.0.schedule.timezone",
        ("unknown timezone", "did you mean America/Los_Angeles?", "IANA"),
        None,
    ),
    (
        "hours-no-minutes",
        'mon-fri: "08:00-20:00"',
        'mon-fri: "8-20"',
        "buyers.0.schedule.hours.mon-fri",
        ("'8-20' is not a time range", '"08:00-20:00"'),
        None,
    ),
    (
        "hours-out-of-day",
        'sat: "09:00-13:00"',
        'sat: "25:00-26:00"',
        "buyers.0.schedule.hours.sat",
        ("'25:00-26:00' is not a time range", "00:00 to 24:00"),
        None,
    ),
    (
        "hours-same-day-twice",
        'sat: "09:00-13:00"',
        'wed: "09:00-13:00"',
        "buyers.0.schedule.hours.wed",
        ("wed is already covered by 'mon-fri'", "one entry only"),
        None,
    ),
    (
        "hours-unknown-day",
        'sat: "09:00-13:00"',
        'saturday: "09:00-13:00"',
        "buyers.0.schedule.hours.saturday",
        ("unknown day 'saturday'", "days are mon, tue"),
        None,
    ),
    (
        "hours-day-in-a-range-and-alone",
        'sun: "20:00-02:00"',
        'fri: "20:00-10:00"',
        "buyers.0.schedule.hours.fri",
        ("fri is already covered by 'mon-fri'",),
        None,
    ),
    ("negative-money", "price: 40.00", "price: -40.00", "buyers.0.bid.price", ("-40.00 is negative", "0 or more"), None),
    (
        "sub-cent-money",
        "min_price: 10.00",
        "min_price: 10.005",
        "publishers.0.min_price",
        ("fractions of a cent", "round it to cents"),
        None,
    ),
    (
        "float-noise-is-not-rounded-away",
        "min_price: 10.00",
        "min_price: 10.0000000000000001",
        "publishers.0.min_price",
        ("fractions of a cent",),
        None,
    ),
    ("weight-zero", "weight: 50", "weight: 0", "buyers.0.weight", ("greater than 0", "set weight above 0"), None),
    ("weight-negative", "weight: 50", "weight: -3", "buyers.0.weight", ("got -3",), None),
    ("priority-zero", "priority: 1", "priority: 0", "buyers.0.priority", ("at least 1", "set priority to 1 or more"), None),
    (
        "unknown-strategy",
        "strategy: price",
        "strategy: cheapest",
        "campaigns.0.routing.tiers.0.strategy",
        (
            "unknown strategy 'cheapest'",
            "use one of: price, priority, weight, parallel_highest, parallel_first, ping_post, even, availability, direct, queue",
        ),
        None,
    ),
    (
        "strategy-typo",
        "strategy: price",
        "strategy: ping-post",
        "campaigns.0.routing.tiers.0.strategy",
        ("did you mean ping_post?",),
        None,
    ),
    (
        "pick-only-on-parallel-first",
        "strategy: parallel_first",
        "strategy: parallel_highest",
        "campaigns.0.routing.tiers.1.pick",
        ("pick only applies to parallel_first", "remove it"),
        "pick: priority",
    ),
    (
        "queue-tier-without-queue",
        "          queue: sales\n",
        "",
        "campaigns.0.routing.tiers.2.queue",
        ("a queue tier needs a queue", "queue: <queue id>"),
        "- strategy: queue",
    ),
    (
        "buyer-tier-without-buyers",
        "          buyers: [b1, b2]\n",
        "",
        "campaigns.0.routing.tiers.0.buyers",
        ("a price tier needs buyers", "buyers: [<buyer id>"),
        "- strategy: price",
    ),
    (
        "duplicate-id",
        "  - id: b2\n",
        "  - id: b1\n",
        "buyers.1.id",
        ("duplicate buyer id 'b1'", "first defined at", "ids must be unique"),
        '  - id: b1\n    destination: "sip',
    ),
    (
        "tracking-number-not-e164",
        '"+18885550123"',
        '"888-555-0123"',
        "campaigns.0.numbers.0",
        ("not an E.164 number", '"+18885550123"'),
        "numbers:",
    ),
    (
        "tracking-number-unquoted",
        '["+18885550123"]',
        "[+18885550123]",
        "campaigns.0.numbers.0",
        ("read as a number", "quotes"),
        "numbers:",
    ),
    (
        "destination-not-e164",
        '"+18005550100"',
        '"call me"',
        "buyers.0.destination",
        ("neither an E.164 number nor a sip: URI",),
        None,
    ),
    (
        "unknown-field-typo",
        "timeout_ms: 2000",
        "timout_ms: 2000",
        "campaigns.0.routing.timout_ms",
        ("unknown field; did you mean timeout_ms?",),
        None,
    ),
    (
        "unknown-field-deep",
        "      timeout_ms: 800",
        "      timeout: 800",
        "buyers.1.bid.timeout",
        ("unknown field; did you mean timeout_ms?",),
        None,
    ),
    (
        "unknown-field-no-match",
        "    weight: 50",
        "    colour: blue",
        "buyers.0.colour",
        ("unknown field", "remove it", "weight"),
        None,
    ),
    ("unknown-top-level-section", "ivr_flows:", "ivr_flow:", "ivr_flow", ("unknown field; did you mean ivr_flows?",), None),
    ("version-2", "version: 1", "version: 2", "version", ("version 2 is not supported", "version: 1"), None),
    (
        "operator-unknown",
        '{eq: "yes"}',
        '{equals: "yes"}',
        "buyers.0.filters.answers.homeowner.equals",
        ("unknown operator 'equals'", "did you mean eq?", "eq, ne, in, not_in, gte, lte, gt, lt, between, exists"),
        None,
    ),
    (
        "between-shape",
        '{eq: "yes"}',
        "{between: [1]}",
        "buyers.0.filters.answers.homeowner.between",
        ("between needs [low, high]",),
        None,
    ),
    ("in-needs-list", '{eq: "yes"}', "{in: en}", "buyers.0.filters.answers.homeowner.in", ("in needs a non-empty list",), None),
    (
        "not-in-needs-list",
        '{eq: "yes"}',
        "{not_in: en}",
        "buyers.0.filters.answers.homeowner.not_in",
        ("not_in needs a non-empty list",),
        None,
    ),
    (
        "exists-needs-bool",
        '{eq: "yes"}',
        "{exists: maybe}",
        "buyers.0.filters.answers.homeowner.exists",
        ("exists needs true or false",),
        None,
    ),
    ("gte-needs-number", '{eq: "yes"}', "{gte: lots}", "buyers.0.filters.answers.homeowner.gte", ("gte needs a number",), None),
    (
        "one-operator-per-condition",
        '{eq: "yes"}',
        "{gte: 1, lte: 5}",
        "buyers.0.filters.answers.homeowner",
        ("exactly one operator", "between"),
        None,
    ),
    ("state-code", "states: [CA]", "states: [California]", "buyers.0.filters.states.0", ("two-letter state code",), None),
    (
        "queue-strategy",
        "strategy: longest_idle",
        "strategy: random",
        "queues.0.strategy",
        ("unknown strategy 'random'", "longest_idle, round_robin, fewest_calls, best_performer"),
        None,
    ),
    ("performance-above-1", "performance: 0.92", "performance: 1.5", "agents.0.performance", ("at most 1", "got 1.5"), None),
    ("performance-below-0", "performance: 0.92", "performance: -0.1", "agents.0.performance", ("at least 0",), None),
    (
        "rtb-url-scheme",
        '"http://127.0.0.1:9100/ping"',
        '"ftp://127.0.0.1/ping"',
        "buyers.1.bid.url",
        ("http://, https://, grpc:// or grpcs://",),
        None,
    ),
    ("rtb-timeout-zero", "      timeout_ms: 800", "      timeout_ms: 0", "buyers.1.bid.timeout_ms", ("greater than 0",), None),
    (
        "bid-type",
        "type: rtb",
        "type: auction",
        "buyers.1.bid.type",
        ("unknown bid type 'auction'", "type: static or type: rtb"),
        None,
    ),
    (
        "duplicate-window",
        "duplicate_window: 24h",
        "duplicate_window: 1 day",
        "campaigns.0.duplicate_window",
        ("'1 day' is not a duration", "30m, 24h or 7d"),
        None,
    ),
    (
        "duplicate-yaml-key",
        "    priority: 1\n",
        "    priority: 1\n    priority: 2\n",
        "buyers.0.priority",
        ("duplicate key 'priority'", "merge them"),
        "priority: 2",
    ),
    (
        "missing-required",
        '    destination: "+18005550100"\n',
        "",
        "buyers.0.destination",
        ("required field is missing", "destination:"),
        "  - id: b1",
    ),
    (
        "callback-setting-without-offer",
        "    strategy: longest_idle\nagents:",
        "    strategy: longest_idle\n    callback_retries: 3\nagents:",
        "queues.0.callback_retries",
        ("callback_retries is set but callback_offer_after_s is not", "set callback_offer_after_s, or remove callback_retries"),
        "callback_retries: 3",
    ),
    (
        "announcement-language-no-call-has",
        "    strategy: longest_idle\nagents:",
        '    strategy: longest_idle\n    announcements: {fr: {waiting: "Vous êtes le numéro {position}"}}\nagents:',
        "queues.0.announcements.fr",
        ("no call of this queue can be in 'fr'", "calls are in en", "add fr to a campaign's IVR flow"),
        "announcements: {fr",
    ),
    (
        "announcement-unknown-placeholder",
        "    strategy: longest_idle\nagents:",
        '    strategy: longest_idle\n    announcements: {en: {waiting: "You are number {place}"}}\nagents:',
        "queues.0.announcements.en.waiting",
        ("unknown placeholder {place}", "use {position}, {minutes}, {when}"),
        "announcements: {en",
    ),
    (
        "crm-unknown-buyer",
        "    buyers: [b1]\n    campaigns: [c1]",
        "    buyers: [b9]\n    campaigns: [c1]",
        "crm_endpoints.0.buyers.0",
        ("unknown buyer 'b9'", "define it under buyers", "remove it from the endpoint's buyers"),
        "buyers: [b9]",
    ),
    (
        "crm-unknown-campaign",
        "campaigns: [c1]",
        "campaigns: [c2]",
        "crm_endpoints.0.campaigns.0",
        ("unknown campaign 'c2'", "define it under campaigns"),
        None,
    ),
    (
        "crm-unknown-queue",
        "    queues: [sales]\n    secret_env",
        "    queues: [salez]\n    secret_env",
        "crm_endpoints.0.queues.0",
        ("unknown queue 'salez'", "did you mean sales?", "remove it from the endpoint's queues"),
        "queues: [salez]",
    ),
    (
        "crm-unknown-event",
        "events: [call.routed]",
        "events: [call.answered]",
        "crm_endpoints.0.events.0",
        ("unknown event 'call.answered'", "did you mean call.ended?", "call.routed, call.ended"),
        None,
    ),
    ("crm-no-events", "events: [call.routed]", "events: []", "crm_endpoints.0.events", ("must not be empty",), None),
    (
        "crm-event-twice",
        "events: [call.routed]",
        "events: [call.routed, call.routed]",
        "crm_endpoints.0.events",
        ("call.routed listed more than once",),
        None,
    ),
    (
        "crm-url-scheme",
        '"https://crm.example.com/hooks"',
        '"ftp://crm.example.com/hooks"',
        "crm_endpoints.0.url",
        ("must be an http:// or https:// URL",),
        None,
    ),
    (
        "crm-secret-env-missing",
        "    secret_env: CRM_SECRET\n",
        "",
        "crm_endpoints.0.secret_env",
        ("required field is missing", "secret_env: ACME_CRM_WEBHOOK_SECRET"),
        "  - id: crm",
    ),
    (
        "crm-secret-env-not-a-name",
        "secret_env: CRM_SECRET",
        'secret_env: "crm secret"',
        "crm_endpoints.0.secret_env",
        ("is not an environment variable name", "never the secret itself"),
        None,
    ),
    ("crm-max-attempts-zero", "max_attempts: 8", "max_attempts: 0", "crm_endpoints.0.max_attempts", ("at least 1",), None),
]


@pytest.mark.parametrize(("old", "new", "field", "fragments", "marker"), [c[1:] for c in REFUSALS], ids=[c[0] for c in REFUSALS])
def test_each_refusal_names_file_line_field_and_fix(tmp_path: Path, old, new, field, fragments, marker):
    assert old in FULL
    text = FULL.replace(old, new, 1)
    f = tmp_path / "routing.yaml"
    f.write_text(text)
    line = line_of(text, marker or new)
    assert_problem(problems_of(f), f, line, field, *fragments)


def test_crm_endpoint_defaults_and_a_secret_written_in_secret_env_is_never_repeated(tmp_path: Path):
    f = tmp_path / "routing.yaml"
    f.write_text(FULL.replace("    events: [call.routed]\n", "").replace("    max_attempts: 8\n", ""))
    (crm,) = load_config(f).crm_endpoints
    assert (crm.events, crm.max_attempts, crm.max_age_s, crm.timeout_ms) == (["call.routed", "call.ended"], 8, 3600, 5000)
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    f.write_text(FULL.replace("secret_env: CRM_SECRET", f"secret_env: {secret}"))
    problems = problems_of(f)
    assert_problem(
        problems, f, line_of(f.read_text(), "secret_env:"), "crm_endpoints.0.secret_env", "not an environment variable"
    )
    assert not any(secret in p or "MfKQ9r8" in p for p in problems)


def test_crm_endpoint_ids_are_unique(tmp_path: Path):
    f = tmp_path / "routing.yaml"
    second = '  - {id: crm, url: "http://127.0.0.1:9/h", secret_env: OTHER}\n'
    f.write_text(FULL + second)
    assert_problem(problems_of(f), f, line_of(FULL + second, second), "crm_endpoints.1.id", "duplicate CRM endpoint id 'crm'")


def test_overnight_range_is_allowed_but_not_into_the_next_days_hours(tmp_path: Path):
    f = tmp_path / "routing.yaml"
    f.write_text(
        FULL.replace('sun: "20:00-02:00"', 'fri: "22:00-10:00"').replace('mon-fri: "08:00-20:00"', 'mon-thu: "08:00-20:00"')
    )
    problems = problems_of(f)
    assert_problem(
        problems,
        f,
        line_of(f.read_text(), 'fri: "22:00-10:00"'),
        "buyers.0.schedule.hours.fri",
        "runs past midnight until 10:00 on sat",
        "overlapping sat from 09:00",
    )
    f.write_text(FULL.replace('sun: "20:00-02:00"', 'sun: "20:00-08:00"'))
    assert load_config(f).buyer("b1").schedule.hours["sun"] == "20:00-08:00"


def test_tracking_number_in_two_campaigns(tmp_path: Path):
    text = FULL.replace("queues:\n  - id: sales", "campaigns_2_placeholder\nqueues:\n  - id: sales", 1)
    second = (
        '  - id: c2\n    numbers: ["+18885550123"]\n    publisher: pub\n    routing: {tiers: [{strategy: price, buyers: [b1]}]}'
    )
    text = text.replace("campaigns_2_placeholder", second)
    f = tmp_path / "routing.yaml"
    f.write_text(text)
    line = line_of(text, '    numbers: ["+18885550123"]\n    publisher: pub\n    routing: {')
    assert_problem(
        problems_of(f),
        f,
        line,
        "campaigns.1.numbers.0",
        "+18885550123 already belongs to campaign 'c1'",
        f"{f}:{line_of(text, 'numbers:')}",
        "remove it from one",
    )


def test_empty_file(tmp_path: Path):
    f = tmp_path / "empty.yaml"
    f.write_text("# nothing here yet\n")
    assert_problem(problems_of(f), f, 1, "(file)", "empty file", "version: 1")


def test_yaml_syntax_error_has_its_line(tmp_path: Path):
    f = tmp_path / "broken.yaml"
    f.write_text(FULL.replace("    priority: 1\n", "    priority: [1\n"))
    (problem,) = problems_of(f)
    assert re.match(rf"{re.escape(str(f))}:\d+: \(yaml\): not valid YAML: .+ \(check the indentation", problem), problem
    assert int(problem.split(":")[1]) in range(line_of(FULL, "priority: 1"), line_of(FULL, "filters:") + 2)


def test_top_level_must_be_a_mapping(tmp_path: Path):
    f = tmp_path / "list.yaml"
    f.write_text("- id: x\n")
    assert_problem(problems_of(f), f, 1, "(top level)", "must be a mapping")


def test_directory_error_points_at_the_second_file_and_its_line(tmp_path: Path):
    first = 'version: 1\npublishers:\n  - id: pub\nbuyers:\n  - id: b1\n    destination: "+18005550100"\n    bid: {type: static, price: 40.00}\n'
    second = (
        "# campaigns live in their own file\n"
        "buyers:\n"
        "  - id: b2\n"
        '    destination: "+18005550101"\n'
        "    bid: {type: static, price: 30.00}\n"
        "campaigns:\n"
        "  - id: c1\n"
        '    numbers: ["+18885550123"]\n'
        "    publisher: pub\n"
        "    routing:\n"
        "      tiers:\n"
        "        - strategy: price\n"
        "          buyers: [b1, b2]\n"
        "        - strategy: pricey\n"
        "          buyers: [b3]\n"
    )
    (tmp_path / "10-buyers.yaml").write_text(first)
    (tmp_path / "20-campaigns.yml").write_text(second)
    b = tmp_path / "20-campaigns.yml"
    problems = problems_of(tmp_path)
    assert_problem(problems, b, 14, "campaigns.0.routing.tiers.1.strategy", "unknown strategy 'pricey'")
    assert_problem(problems, b, 15, "campaigns.0.routing.tiers.1.buyers.0", "unknown buyer 'b3'")
    # b2 (second file) is merged after b1: it is buyers.1 and a bad field in it points into the second file
    (tmp_path / "20-campaigns.yml").write_text(second.replace("price: 30.00", "price: 30.001"))
    assert_problem(problems_of(tmp_path), b, 5, "buyers.1.bid.price", "fractions of a cent")
    # a duplicate id across files names both places
    (tmp_path / "20-campaigns.yml").write_text(second.replace("id: b2", "id: b1"))
    assert_problem(problems_of(tmp_path), b, 3, "buyers.1.id", "duplicate buyer id 'b1'", f"{tmp_path / '10-buyers.yaml'}:5")


def test_shape_and_reference_problems_are_reported_together(tmp_path: Path):
    text = (
        FULL.replace("weight: 50", "weight: 0")
        .replace("buyers: [b1, b2]", "buyers: [b1, bx]", 1)
        .replace("timeout_ms: 2000", "timout_ms: 2000")
    )
    f = tmp_path / "routing.yaml"
    f.write_text(text)
    problems = problems_of(f)
    fields = [p.split(": ")[1] for p in problems]
    assert fields == ["buyers.0.weight", "campaigns.0.routing.timout_ms", "campaigns.0.routing.tiers.0.buyers.1"]
    lines = [int(p.split(":")[1]) for p in problems]
    assert lines == sorted(lines)


def test_config_error_lines_are_the_cli_lines(tmp_path: Path):
    f = tmp_path / "routing.yaml"
    f.write_text(FULL.replace("weight: 50", "weight: 0").replace("publisher: pub", "publisher: ghost"))
    problems = problems_of(f)
    res = CliRunner().invoke(app, ["config", "validate", str(f)])
    assert res.exit_code == 1
    for p in problems:
        assert p in res.output.splitlines()
    assert "2 problems" in res.output


def test_cli_ok_for_a_directory_and_missing_path(tmp_path: Path):
    (tmp_path / "routing.yaml").write_text(FULL)
    runner = CliRunner()
    ok = runner.invoke(app, ["config", "validate", str(tmp_path)])
    assert ok.exit_code == 0 and "OK" in ok.output, ok.output
    missing = runner.invoke(app, ["config", "validate", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 1 and "no such file or directory" in missing.output


def test_demo_and_deploy_configs_validate_ok(demo_config_path: Path):
    runner = CliRunner()
    deploy = Path(__file__).resolve().parents[2] / "deploy" / "base" / "routing.yaml"
    for path in (demo_config_path, deploy):
        res = runner.invoke(app, ["config", "validate", str(path)])
        assert res.exit_code == 0 and "OK" in res.output, res.output


def test_model_validate_still_refuses_bad_references():
    data = {
        "publishers": [{"id": "pub"}],
        "buyers": [{"id": "b1", "destination": "+18005550100", "bid": {"type": "static", "price": "1.00"}}],
        "campaigns": [
            {
                "id": "c",
                "numbers": ["+18885550123"],
                "publisher": "pub",
                "routing": {"tiers": [{"strategy": "price", "buyers": ["nobody"]}]},
            }
        ],
    }
    with pytest.raises(ValidationError, match="unknown buyer 'nobody'"):
        RoutingConfig.model_validate(data)
