"""The summary across runs: medians of figures, worst counts, any flag; the report's cells."""

from __future__ import annotations

import pytest

from bench import orchestrate, report


def row(run, rate, lost=0, **extra):
    return {
        "config": "uvicorn/memory/sqlite", "run": run, "scenario": "fanout", "label": "fanout n=2",
        "deliveries_per_s": rate, "lost": lost, "duplicated": 0, "out_of_order": 0,
        "latency_ms": {"p50": rate / 10, "p99": rate}, "server_cpu": 0.5, "tool_cpu": 0.2,
        "tool_saturated": False, "flagged": bool(lost), **extra,
    }  # fmt: skip


def test_summary_takes_medians_and_worst_counts():
    [summary] = orchestrate.summarise([row(1, 100.0), row(2, 300.0, lost=2), row(3, 200.0)])
    assert summary["runs"] == 3
    assert summary["deliveries_per_s"] == 200.0
    assert summary["latency_ms"]["p99"] == 200.0
    assert summary["lost"] == 2
    assert summary["flagged"] is True


def test_failed_runs_are_counted_and_flagged():
    failed = {"config": "uvicorn/memory/sqlite", "run": 2, "scenario": "fanout", "label": "fanout n=2",
              "error": "boom", "flagged": True}  # fmt: skip
    [summary] = orchestrate.summarise([row(1, 100.0), failed])
    assert summary["failed_runs"] == 1 and summary["flagged"]
    assert "1 failed run(s)" in report.flags(summary)


def test_saturated_tool_is_reported():
    [summary] = orchestrate.summarise([row(1, 100.0, tool_saturated=True)])
    assert "tool saturated" in report.flags(summary)


@pytest.mark.parametrize("text", ["uvicorn/memory", "hypercorn/memory/sqlite", "uvicorn/kafka/sqlite"])
def test_bad_configuration_names(text):
    with pytest.raises(ValueError):
        orchestrate.Config.parse(text)


def test_configuration_environment():
    config = orchestrate.Config.parse("daphne/redis/postgres")
    env = orchestrate.server_env(config, orchestrate.ROOT / "data", "postgres://x/y")
    assert env["CHAT_SERVER"] == "daphne"
    assert env["REDIS_URL"] == orchestrate.REDIS_URL
    assert env["DEBUG"] == "0" and env["SECRET_KEY"]
    assert "127.0.0.1" in env["ALLOWED_HOSTS"]
