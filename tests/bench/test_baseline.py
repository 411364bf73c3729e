"""``bench/run --baseline REF``: parsing, the baseline's copy, alternating runs, grouping, ratios.

Nothing here starts a server: the steps that would are replaced by fakes that
record what they were asked to do.
"""

from __future__ import annotations

import subprocess
from contextlib import ExitStack

import pytest

from bench import orchestrate, report, trees
from bench.trees import ROOT, Tree

HEAD = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
BASELINE, CURRENT = "baseline aaaaaaa", "current bbbbbbb+dirty"
SQLITE = orchestrate.Config.parse("uvicorn/memory/sqlite")


def row(tree, run, rate, config="uvicorn/memory/sqlite", label="fanout n=2", **extra):
    base = {"tree": tree} if tree else {}
    return base | {
        "config": config, "run": run, "scenario": "fanout", "label": label, "deliveries_per_s": rate,
        "lost": 0, "latency_ms": {"p50": rate / 100, "p99": rate / 10}, "server_cpu": 0.5,
        "tool_cpu": 0.1, "tool_saturated": False, "flagged": False, **extra,
    }  # fmt: skip


# --- arguments -------------------------------------------------------------------


def test_baseline_option_resolves_the_commit_once():
    plan = orchestrate.parse_plan(["--quick", "--baseline", "HEAD"])
    assert plan.baseline_ref == "HEAD"
    assert plan.baseline_sha == HEAD and len(HEAD) == 40


def test_baseline_from_the_environment(monkeypatch):
    monkeypatch.setenv("BENCH_BASELINE", "HEAD")
    assert orchestrate.parse_plan(["--quick"]).baseline_sha == HEAD


def test_no_baseline_measures_the_work_tree_alone(monkeypatch):
    monkeypatch.delenv("BENCH_BASELINE", raising=False)
    plan = orchestrate.parse_plan(["--quick"])
    assert plan.baseline_ref is None and plan.baseline_sha is None
    assert plan.trees == [Tree("", ROOT)]


def test_unknown_baseline_is_an_argument_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        orchestrate.parse_plan(["--baseline", "no-such-revision-4f1c"])
    assert exit_info.value.code == 2
    assert "--baseline" in capsys.readouterr().err


# --- the baseline's tree ---------------------------------------------------------


def test_baseline_is_a_copy_with_the_work_trees_venv_removed_afterwards():
    with trees.baseline(HEAD) as tree:
        assert tree.name.startswith("baseline ") and HEAD.startswith(tree.name.split()[1])
        assert tree.root != ROOT
        assert (tree.root / "manage.py").is_file()
        assert (tree.root / "bin" / "server").stat().st_mode & 0o111  # still executable
        assert (tree.root / ".venv").resolve() == (ROOT / ".venv").resolve()
        assert not (tree.root / "data").exists()  # its own data, not the work tree's
    assert not tree.root.exists()
    assert (ROOT / ".venv" / "bin" / "python").exists()  # the symlink was removed, not followed


def test_baseline_is_removed_on_failure():
    with pytest.raises(RuntimeError), trees.baseline(HEAD) as tree:
        raise RuntimeError("a run failed")
    assert not tree.root.exists()


def test_measured_trees_baseline_first():
    with trees.measured(HEAD) as measured:
        assert [tree.kind for tree in measured] == ["baseline", "current"]
        assert measured[1].root == ROOT
        assert measured[1].name == f"current {trees.git_commit()}"
    with trees.measured(None) as measured:
        assert measured == [Tree("", ROOT)]


# --- alternation -----------------------------------------------------------------


def test_schedule_alternates_trees_within_each_run():
    assert orchestrate.schedule(["b", "c"], 3) == [(1, "b"), (1, "c"), (2, "b"), (2, "c"), (3, "b"), (3, "c")]
    assert orchestrate.schedule(["only"], 2) == [(1, "only"), (2, "only")]


def fake_plan(tmp_path, names=(BASELINE, CURRENT), runs=3):
    plan = orchestrate.Plan(
        configs=[SQLITE], scenarios=["fanout"], runs=runs, sizes=orchestrate.QUICK, out=tmp_path
    )
    plan.trees = [Tree(name, tmp_path / name.split()[0]) for name in names]
    return plan


def test_run_config_prepares_every_tree_then_alternates_runs(tmp_path, monkeypatch):
    calls, cleaned = [], []

    def prepare(plan, config, tree, stack):
        calls.append(("prepare", tree.name))
        stack.callback(cleaned.append, tree.name)
        return orchestrate.Prepared(tree, {}, {}, {"config": config.name, "tree": tree.name})

    def measure(plan, config, prepared, run, log_dir):
        calls.append(("run", run, prepared.tree.name))
        return [row(prepared.tree.name, run, 100.0)]

    monkeypatch.setattr(orchestrate, "prepare", prepare)
    monkeypatch.setattr(orchestrate, "measure", measure)
    rows, infos = orchestrate.run_config(fake_plan(tmp_path), SQLITE, tmp_path)
    assert calls == [
        ("prepare", BASELINE), ("prepare", CURRENT),
        ("run", 1, BASELINE), ("run", 1, CURRENT),
        ("run", 2, BASELINE), ("run", 2, CURRENT),
        ("run", 3, BASELINE), ("run", 3, CURRENT),
    ]  # fmt: skip
    assert [info["tree"] for info in infos] == [BASELINE, CURRENT]
    assert len(rows) == 6
    assert sorted(cleaned) == sorted([BASELINE, CURRENT])


def test_run_config_cleans_up_both_trees_when_a_run_fails(tmp_path, monkeypatch):
    cleaned = []

    def prepare(plan, config, tree, stack):
        stack.callback(cleaned.append, tree.name)
        return orchestrate.Prepared(tree, {}, {}, {})

    def measure(plan, config, prepared, run, log_dir):
        raise RuntimeError("server exited early")

    monkeypatch.setattr(orchestrate, "prepare", prepare)
    monkeypatch.setattr(orchestrate, "measure", measure)
    with pytest.raises(RuntimeError):
        orchestrate.run_config(fake_plan(tmp_path), SQLITE, tmp_path)
    assert sorted(cleaned) == sorted([BASELINE, CURRENT])


def test_prepare_runs_the_trees_own_manage_py(tmp_path, monkeypatch):
    roots = []
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setattr(orchestrate, "manage", lambda env, *args, root: roots.append(("manage", root)))

    def seed(env, sizes, data_dir, root):
        roots.append(("seed", root))
        assert "PYTHONPATH" not in env  # else the work tree's packages could shadow the baseline's
        return {}, 0.0

    monkeypatch.setattr(orchestrate, "seed", seed)
    tree = Tree(BASELINE, tmp_path)
    with ExitStack() as stack:
        prepared = orchestrate.prepare(fake_plan(tmp_path), SQLITE, tree, stack)
        data_dir = orchestrate.Path(prepared.env["CHAT_DATA_DIR"])
        assert data_dir.is_dir() and ROOT not in data_dir.parents
    assert not data_dir.exists()
    assert roots == [("manage", tmp_path), ("seed", tmp_path)]
    assert prepared.info == {"config": SQLITE.name, "tree": BASELINE, "seed_seconds": 0.0}


class FakeServer:
    started: list = []

    def __init__(self, env, port, log_path, root):
        self.port, self.pid, self.log_path, self.root = port, 1, log_path, root

    def start(self):
        FakeServer.started.append((self.root, self.log_path.name))

    def stop(self):
        pass


@pytest.mark.parametrize("name", [BASELINE, ""])
def test_measure_labels_rows_with_the_tree(tmp_path, monkeypatch, name):
    FakeServer.started = []

    async def run_scenarios(ctx, names, sizes):
        return [{"scenario": "rest", "label": "rest", "requests_per_s": 1.0, "flagged": False}]

    monkeypatch.setattr(orchestrate, "Server", FakeServer)
    monkeypatch.setattr(orchestrate, "run_scenarios", run_scenarios)
    prepared = orchestrate.Prepared(Tree(name, tmp_path), {}, {}, {})
    [found] = orchestrate.measure(fake_plan(tmp_path), SQLITE, prepared, 2, tmp_path)
    assert found["config"] == SQLITE.name and found["run"] == 2
    if name:
        assert found["tree"] == BASELINE
        assert FakeServer.started == [(tmp_path, "server-baseline-uvicorn-memory-sqlite-2.log")]
    else:
        assert "tree" not in found  # a run without --baseline writes the rows it always did
        assert FakeServer.started == [(tmp_path, "server-uvicorn-memory-sqlite-2.log")]


# --- summary and report ----------------------------------------------------------


def test_summary_groups_by_tree():
    rows = [row(BASELINE, 1, 100.0), row(CURRENT, 1, 150.0), row(BASELINE, 2, 120.0), row(CURRENT, 2, 170.0)]
    rows += [row(BASELINE, 3, 110.0), row(CURRENT, 3, 160.0)]
    summary = orchestrate.summarise(rows)
    assert [(s["tree"], s["runs"], s["deliveries_per_s"]) for s in summary] == [
        (BASELINE, 3, 110.0),
        (CURRENT, 3, 160.0),
    ]


def test_summary_without_trees_has_no_tree():
    [summary] = orchestrate.summarise([row("", 1, 100.0), row("", 2, 200.0)])
    assert "tree" not in summary and summary["deliveries_per_s"] == 150.0


def comparison_result():
    rows = [row(BASELINE, r, 100.0 + r) for r in (1, 2, 3)] + [row(CURRENT, r, 150.0 + r) for r in (1, 2, 3)]
    rows += [row(BASELINE, 1, 40.0, label="rooms 5x4", scenario="rooms", latency_ms=None, server_cpu=0.0)]
    rows += [row(CURRENT, 1, 10.0, label="rooms 5x4", scenario="rooms", latency_ms=None, server_cpu=0.25)]
    return {
        "date": "test", "commit": "bbbbbbb+dirty", "machine": {"server_core": 0, "tool_core": 1},
        "runs_per_config": 3, "configs": [], "summary": orchestrate.summarise(rows),
        "baseline": {"ref": "HEAD", "commit": "a" * 40, "tree": BASELINE}, "trees": [BASELINE, CURRENT],
    }  # fmt: skip


def test_comparison_ratios():
    compared = report.compare(comparison_result()["summary"], BASELINE, CURRENT)
    figures = {(c["label"], c["metric"]): (c["baseline"], c["current"], c["ratio"]) for c in compared}
    assert figures[("fanout n=2", "deliveries/s")] == (102.0, 152.0, round(152 / 102, 3))
    assert figures[("fanout n=2", "p99 ms")] == (10.2, 15.2, round(15.2 / 10.2, 3))
    assert figures[("fanout n=2", "server CPU")] == (0.5, 0.5, 1.0)
    assert figures[("rooms 5x4", "deliveries/s")] == (40.0, 10.0, 0.25)
    assert figures[("rooms 5x4", "server CPU")] == (0.0, 0.25, None)  # no ratio to a zero
    assert ("rooms 5x4", "p99 ms") not in figures  # measured by neither tree
    assert ("fanout n=2", "connects/s") not in figures


def test_comparison_keeps_a_scenario_only_one_tree_measured():
    summary = orchestrate.summarise([row(BASELINE, 1, 100.0), {**row(CURRENT, 1, 0.0), "error": "boom"}])
    compared = report.compare(summary, BASELINE, CURRENT)
    rate = next(c for c in compared if c["metric"] == "deliveries/s")
    assert (rate["baseline"], rate["current"], rate["ratio"]) == (100.0, None, None)


def test_markdown_with_baseline_has_trees_and_the_comparison(tmp_path):
    markdown = report.write_markdown(comparison_result(), tmp_path / "r.md").read_text()
    assert markdown.splitlines()[0] == f"# Benchmark test (commit bbbbbbb+dirty against {BASELINE} = HEAD)"
    assert f"| {BASELINE} | uvicorn/memory/sqlite | fanout n=2 | 102.0 deliveries/s |" in markdown
    assert f"| {CURRENT} | uvicorn/memory/sqlite | fanout n=2 | 152.0 deliveries/s |" in markdown
    assert f"| configuration | scenario | figure | {BASELINE} | {CURRENT} | current / baseline |" in markdown
    assert "| uvicorn/memory/sqlite | fanout n=2 | deliveries/s | 102.00 | 152.00 | 1.490 |" in markdown
    assert "| uvicorn/memory/sqlite | rooms 5x4 | deliveries/s | 40.00 | 10.00 | 0.250 |" in markdown


def test_markdown_without_baseline_is_unchanged(tmp_path):
    result = comparison_result()
    del result["baseline"], result["trees"]
    result["summary"] = orchestrate.summarise([row("", 1, 100.0)])
    markdown = report.write_markdown(result, tmp_path / "r.md").read_text()
    assert markdown.splitlines()[0] == "# Benchmark test (commit bbbbbbb+dirty)"
    assert "| configuration | scenario | figure |" in markdown and "| tree |" not in markdown
    assert "| uvicorn/memory/sqlite | fanout n=2 | 100.0 deliveries/s |" in markdown
    assert "current / baseline" not in markdown


def test_plots_keep_the_trees_apart(tmp_path):
    result = comparison_result()
    assert len(report.write_plots(result, tmp_path, "test")) == 1  # no latency CDF in these rows
    assert {report.series(r) for r in result["summary"]} == {
        f"{BASELINE} uvicorn/memory/sqlite",
        f"{CURRENT} uvicorn/memory/sqlite",
    }
