"""``bench/run``'s ``reference`` configuration: parsing, scheduling, ``--history``, and the ratios.

Nothing here starts a server: the steps that would are replaced by fakes that
record what they were asked to do.
"""

from __future__ import annotations

import json
from contextlib import ExitStack

import pytest

from bench import orchestrate, report
from bench.trees import ROOT, Tree

REFERENCE = orchestrate.Config.parse("reference")
SQLITE = orchestrate.Config.parse("uvicorn/memory/sqlite")
SCALE_OUT = orchestrate.Config.parse("uvicorn/redis/postgres")


# --- configurations and options ------------------------------------------------


def test_reference_configuration():
    assert REFERENCE.is_reference and REFERENCE.name == "reference"
    assert not SQLITE.is_reference
    assert REFERENCE.scenarios(orchestrate.ALL_SCENARIOS) == ["idle", "connect", "fanout", "rooms"]
    assert SQLITE.scenarios(orchestrate.ALL_SCENARIOS) == orchestrate.ALL_SCENARIOS
    assert SCALE_OUT.name == "uvicorn/redis/postgres"
    env = orchestrate.server_env(SCALE_OUT, ROOT / "data", "postgres://x/y")
    assert env["REDIS_URL"] == orchestrate.REDIS_URL and env["CHAT_CHANNEL_LAYER"] == "pubsub"


@pytest.mark.parametrize("text", ["reference/memory/sqlite", "references", "uvicorn/memory/sqlite/x"])
def test_bad_configuration_names(text):
    with pytest.raises(ValueError):
        orchestrate.Config.parse(text)


def names(plan):
    return [config.name for config in plan.configs]


def test_default_configurations_start_with_the_reference(monkeypatch):
    monkeypatch.delenv("BENCH_CONFIGS", raising=False)
    assert names(orchestrate.parse_plan([])) == orchestrate.DEFAULT_CONFIGS
    assert orchestrate.DEFAULT_CONFIGS[0] == "reference"
    assert "uvicorn/redis/postgres" in orchestrate.DEFAULT_CONFIGS
    assert names(orchestrate.parse_plan(["--quick"])) == ["reference", "uvicorn/memory/sqlite"]


def test_the_reference_runs_first_whatever_the_order_given():
    plan = orchestrate.parse_plan(["--configs", "uvicorn/memory/sqlite,reference,daphne/memory/sqlite"])
    assert names(plan) == ["reference", "uvicorn/memory/sqlite", "daphne/memory/sqlite"]
    # A configuration named again is measured again, each time on its own database (docs/deploy.md).
    plan = orchestrate.parse_plan(
        ["--configs", "uvicorn/redis/sqlite,uvicorn/redis-core/sqlite,uvicorn/redis/sqlite"]
    )
    assert names(plan) == ["uvicorn/redis/sqlite", "uvicorn/redis-core/sqlite", "uvicorn/redis/sqlite"]


@pytest.mark.parametrize(
    "argv", [["--configs", "nginx"], ["--configs", "reference/memory/sqlite"], ["--history", "-1"]]
)
def test_bad_options_are_argument_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        orchestrate.parse_plan(argv)
    assert exit_info.value.code == 2


def test_history_option_and_environment(monkeypatch):
    monkeypatch.delenv("BENCH_HISTORY", raising=False)
    assert orchestrate.parse_plan([]).sizes.history_messages == 10000
    assert orchestrate.parse_plan(["--quick"]).sizes.history_messages == 500
    assert orchestrate.parse_plan(["--history", "1000000"]).sizes.history_messages == 1_000_000
    assert orchestrate.parse_plan(["--quick", "--history", "0"]).sizes.history_messages == 0
    monkeypatch.setenv("BENCH_HISTORY", "250000")
    assert orchestrate.parse_plan([]).sizes.history_messages == 250_000
    assert orchestrate.parse_plan(["--history", "7"]).sizes.history_messages == 7


SHARES = [
    (10000, [3334, 3333, 3333]),
    (1_000_000, [333334, 333333, 333333]),
    (2, [1, 1, 0]),
    (0, [0, 0, 0]),
]


@pytest.mark.parametrize("history, shares", SHARES)
def test_seed_shares_the_history_exactly(tmp_path, monkeypatch, history, shares):
    asked = []

    def manage(env, *args, root):
        asked.append(int(args[args.index("--messages") + 1]))
        path = args[args.index("--tokens") + 1]
        (tmp_path / path.rsplit("/", 1)[-1]).write_text("{}")

    monkeypatch.setattr(orchestrate, "manage", manage)
    sizes = orchestrate.QUICK.__class__(**{**orchestrate.QUICK.__dict__, "history_messages": history})
    orchestrate.seed({}, sizes, tmp_path)
    assert asked == shares and sum(asked) == history


# --- preparing and running -----------------------------------------------------


def plan_of(tmp_path, configs, trees=("",), runs=2):
    plan = orchestrate.Plan(
        configs=configs, scenarios=list(orchestrate.ALL_SCENARIOS), runs=runs, sizes=orchestrate.QUICK,
        out=tmp_path,
    )  # fmt: skip
    plan.trees = [Tree(name, tmp_path / (name.split()[0] if name else "work")) for name in trees]
    return plan


def test_runs_go_round_every_configuration_reference_first(tmp_path, monkeypatch):
    calls, written = [], []

    def prepare(plan, config, tree, stack):
        calls.append(("prepare", config.name, tree.name))
        return orchestrate.Prepared(tree, {}, {}, {"config": config.name})

    def measure(plan, config, prepared, run, log_dir):
        calls.append(("run", run, config.name, prepared.tree.name))
        return [{"config": config.name, "run": run}]

    monkeypatch.setattr(orchestrate, "prepare", prepare)
    monkeypatch.setattr(orchestrate, "measure", measure)
    plan = plan_of(tmp_path, [REFERENCE, SQLITE], trees=("baseline a", "current b"))
    rows, infos = orchestrate.run_configs(
        plan, plan.configs, tmp_path, after_run=lambda rows, infos: written.append(len(rows))
    )
    assert calls == [
        ("prepare", "reference", ""),  # once, from the work tree, whatever the trees compared
        ("prepare", SQLITE.name, "baseline a"), ("prepare", SQLITE.name, "current b"),
        ("run", 1, "reference", ""),
        ("run", 1, SQLITE.name, "baseline a"), ("run", 1, SQLITE.name, "current b"),
        ("run", 2, "reference", ""),
        ("run", 2, SQLITE.name, "baseline a"), ("run", 2, SQLITE.name, "current b"),
    ]  # fmt: skip
    assert written == [1, 2, 3, 4, 5, 6]  # the result is rewritten after every run
    assert len(rows) == 6 and len(infos) == 3


def test_prepare_seeds_the_reference_without_history_and_dumps_its_members(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(orchestrate, "manage", lambda env, *args, root: None)

    def seed(env, sizes, data_dir, root):
        seen["history"] = sizes.history_messages
        return {"fan_000000": "token"}, 0.5

    def dump_members(env, path):
        seen["members"] = path
        path.write_text(json.dumps({"fan_000000": ["fan-room0000"]}))

    monkeypatch.setattr(orchestrate, "seed", seed)
    monkeypatch.setattr(orchestrate, "dump_members", dump_members)
    plan = plan_of(tmp_path, [REFERENCE, SQLITE])
    with ExitStack() as stack:
        prepared = orchestrate.prepare(plan, REFERENCE, Tree(""), stack)
        assert seen["history"] == 0  # it stores nothing
        assert prepared.members == seen["members"] and prepared.members.exists()
        assert prepared.env["DATABASE_URL"].startswith("sqlite:///")
        ours = orchestrate.prepare(plan, SQLITE, Tree(""), stack)
        assert seen["history"] == orchestrate.QUICK.history_messages and ours.members is None
    assert not prepared.members.exists()  # removed with the rest


class FakeServer:
    started: list = []

    def __init__(self, env, port, log_path, root, command=None):
        self.port, self.pid, self.command = port, 1, command

    def start(self):
        FakeServer.started.append(self.command)

    def stop(self):
        pass


@pytest.mark.parametrize("config", [REFERENCE, SQLITE])
def test_measure_starts_the_reference_and_skips_rest_there(tmp_path, monkeypatch, config):
    FakeServer.started, asked = [], []

    async def run_scenarios(ctx, names, sizes):
        asked.extend(names)
        return []

    monkeypatch.setattr(orchestrate, "Server", FakeServer)
    monkeypatch.setattr(orchestrate, "run_scenarios", run_scenarios)
    prepared = orchestrate.Prepared(Tree(""), {}, {}, {}, tmp_path / "members.json")
    orchestrate.measure(plan_of(tmp_path, [config]), config, prepared, 1, tmp_path)
    [command] = FakeServer.started
    if config.is_reference:
        assert command[1:3] == ["-m", "bench.reference"] and str(tmp_path / "members.json") in command
        assert "rest" not in asked
    else:
        assert command is None and "rest" in asked


def test_notes_say_what_the_reference_skips(tmp_path):
    notes = orchestrate.plan_notes(plan_of(tmp_path, [REFERENCE, SQLITE]))
    assert any("rest: not run on the reference" in note for note in notes)
    assert not any("rest" in note for note in orchestrate.plan_notes(plan_of(tmp_path, [SQLITE])))


# --- ratios, the issue's table and its targets ---------------------------------


def rows_for(config, *, tree="", fan200, fan1000, rooms, p99, connects, rss, run=1):
    base = ({"tree": tree} if tree else {}) | {"config": config, "run": run, "flagged": False}
    return [
        base | {"scenario": "fanout", "label": "fanout n=200", "subscribers": 200,
                "deliveries_per_s": fan200},
        base | {"scenario": "fanout", "label": "fanout n=1000", "subscribers": 1000,
                "deliveries_per_s": fan1000},
        base | {"scenario": "fanout-latency", "label": "fanout n=200 at 5 msg/s", "subscribers": 200,
                "rate": 5.0, "latency_ms": {"p50": p99 / 2, "p99": p99}},
        base | {"scenario": "rooms", "label": "rooms 50x10", "channels": 50, "members": 10,
                "deliveries_per_s": rooms},
        base | {"scenario": "connect", "label": "connect x1000", "connects_per_s": connects,
                "latency_ms": {"p50": 1.0, "p99": 2.0}},
        base | {"scenario": "idle", "label": "idle 2000 connections", "rss_per_connection_kib": rss},
    ]  # fmt: skip


def issue_summary():
    """The issue's own figures: the bare websockets server and this server."""
    rows = rows_for("reference", fan200=55871, fan1000=42695, rooms=42344, p99=18.3, connects=817, rss=14.8)
    rows += rows_for(SQLITE.name, fan200=12330, fan1000=21939, rooms=1642, p99=43.6, connects=88, rss=30.6)
    return orchestrate.summarise(rows)


def test_every_figure_against_the_references_median():
    rows = rows_for("reference", fan200=100, fan1000=1, rooms=1, p99=10, connects=1, rss=1, run=1)
    rows += rows_for("reference", fan200=300, fan1000=1, rooms=1, p99=30, connects=1, rss=1, run=2)
    rows += rows_for("reference", fan200=200, fan1000=1, rooms=1, p99=20, connects=1, rss=1, run=3)
    rows += rows_for(SQLITE.name, fan200=50, fan1000=1, rooms=1, p99=40, connects=1, rss=1)
    found = {(r["label"], r["metric"]): r for r in report.against_reference(orchestrate.summarise(rows))}
    assert (
        found["fanout n=200", "deliveries/s"]["reference"],
        found["fanout n=200", "deliveries/s"]["ratio"],
    ) == (
        200,
        0.25,
    )
    assert found["fanout n=200 at 5 msg/s", "p99 ms"]["ratio"] == 2.0  # ours / reference, lower is better
    assert all(r["config"] == SQLITE.name for r in found.values())


def test_the_issues_table_from_the_issues_figures():
    table = {row["case"]: row for row in report.headline_table(issue_summary())}
    ratios = {case: row["series"][SQLITE.name]["ratio"] for case, row in table.items()}
    assert ratios == {
        "fanout-small": 0.221, "fanout-large": 0.514, "rooms": 0.039, "p99": 2.383, "connects": 0.108,
        "rss": 2.068,
    }  # fmt: skip
    assert table["fanout-small"]["scenario"] == "fan-out to 200 subscribers"
    assert table["p99"]["scenario"] == "p99 at 5 msg/s into 200 subscribers"
    assert table["rooms"]["reference"] == 42344


def test_targets_are_met_or_not():
    met = {
        goal["case"]: goal["series"][SQLITE.name]["met"]
        for goal in report.targets(report.headline_table(issue_summary()))
    }
    assert met == {"rooms": False, "fanout-small": False, "connects": False, "p99": False, "rss": False}
    better = rows_for("reference", fan200=100, fan1000=100, rooms=100, p99=10, connects=100, rss=10)
    better += rows_for(
        SQLITE.name, fan200=35, fan1000=1, rooms=12, p99=20, connects=30, rss=15
    )  # on every bound
    goals = report.targets(report.headline_table(orchestrate.summarise(better)))
    assert {goal["case"]: goal["series"][SQLITE.name]["met"] for goal in goals} == dict.fromkeys(met, True)
    assert [goal["target"] for goal in goals] == [">= 0.12", ">= 0.35", ">= 0.3", "<= 2", "<= 1.5"]


def test_scale_out_rooms_against_the_default_configuration():
    rows = rows_for(SQLITE.name, fan200=1, fan1000=1, rooms=1000, p99=1, connects=1, rss=1)
    rows += rows_for(SCALE_OUT.name, fan200=1, fan1000=1, rooms=650, p99=1, connects=1, rss=1)
    [scale] = report.scale_out_rooms(orchestrate.summarise(rows))
    assert (scale["ratio"], scale["target"], scale["met"]) == (0.65, ">= 0.7", False)
    assert report.reference_results(orchestrate.summarise(rows)) == {"scale_out_rooms": [scale]}


def test_ratio_formats():
    assert report.format_ratio(0.2214, "deliveries_per_s") == "0.22"
    assert report.format_ratio(2.383, "latency_ms.p99") == "2.38x"
    assert report.format_ratio(None, "rss_per_connection_kib") == "–"


def result_of(summary):
    return {
        "date": "test", "commit": "abc", "machine": {"server_core": 0, "tool_core": 1}, "runs_per_config": 1,
        "configs": [], "summary": summary,
        "notes": ["rest: not run on the reference, which serves no REST API."],
    } | report.reference_results(summary)  # fmt: skip


def test_markdown_with_the_reference(tmp_path):
    markdown = report.write_markdown(result_of(issue_summary()), tmp_path / "r.md").read_text()
    assert "| configuration | scenario | figure | / reference | latency" in markdown
    assert "| uvicorn/memory/sqlite | rooms 50x10 | 1,642 deliveries/s | 0.04 |" in markdown
    assert "| reference | rooms 50x10 | 42,344 deliveries/s | – |" in markdown
    assert "| scenario | reference | uvicorn/memory/sqlite | ratio |" in markdown
    assert "| fan-out to 200 subscribers | 55,871 | 12,330 | 0.22 |" in markdown
    assert "| p99 at 5 msg/s into 200 subscribers | 18.3 ms | 43.6 ms | 2.38x |" in markdown
    assert "| RSS per idle connection | 14.8 KiB | 30.6 KiB | 2.07x |" in markdown
    assert "| rooms: 50 rooms of 10, everyone sending | >= 0.12 | 0.04 **not met** |" in markdown
    assert "- rest: not run on the reference" in markdown
    assert len(report.write_plots(result_of(issue_summary()), tmp_path, "test")) == 1  # no CDF here


def test_markdown_without_the_reference_has_no_ratios(tmp_path):
    summary = orchestrate.summarise(
        rows_for(SQLITE.name, fan200=1, fan1000=1, rooms=1, p99=1, connects=1, rss=1)
    )
    markdown = report.write_markdown(result_of(summary), tmp_path / "r.md").read_text()
    assert "/ reference" not in markdown and "Against the reference" not in markdown


def test_a_saturated_tool_on_the_reference_is_said(tmp_path):
    rows = rows_for("reference", fan200=9, fan1000=9, rooms=9, p99=1, connects=9, rss=1)
    rows[0]["tool_saturated"] = True
    rows += rows_for(SQLITE.name, fan200=1, fan1000=1, rooms=1, p99=1, connects=1, rss=1)
    markdown = report.write_markdown(result_of(orchestrate.summarise(rows)), tmp_path / "r.md").read_text()
    assert "The load tool was saturated on the reference in fanout n=200:" in markdown
