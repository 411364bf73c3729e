"""The Markdown table and the PNG plots of one ``bench/run`` result.

A result measured with ``--baseline`` has a ``tree`` on every summary row and
``result["trees"]`` (baseline, current); its report adds a column for the tree
and a table of each figure's baseline median, current median and their ratio.
"""

from __future__ import annotations

from pathlib import Path

MAIN_FIGURE = {
    "fanout": ("deliveries_per_s", "deliveries/s"),
    "fanout-latency": (None, "p99 ms"),
    "rooms": ("deliveries_per_s", "deliveries/s"),
    "idle": ("rss_per_connection_kib", "KiB RSS/conn"),
    "connect": ("connects_per_s", "connects/s"),
    "rest": ("requests_per_s", "requests/s"),
}

# The figures the comparison quotes: (key, with "a.b" for a key inside a dict, and its unit).
COMPARED = (
    ("deliveries_per_s", "deliveries/s"),
    ("connects_per_s", "connects/s"),
    ("requests_per_s", "requests/s"),
    ("rss_per_connection_kib", "KiB RSS/conn"),
    ("latency_ms.p50", "p50 ms"),
    ("latency_ms.p99", "p99 ms"),
    ("server_cpu", "server CPU"),
)


def _fmt(value, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def main_figure(row: dict) -> str:
    key, unit = MAIN_FIGURE.get(row["scenario"], (None, ""))
    if row.get("failed_runs") and row.get("failed_runs") == row.get("runs"):
        return "failed"
    if row["scenario"] == "fanout-latency":
        return f"{_fmt((row.get('latency_ms') or {}).get('p99'))} {unit}"
    return f"{_fmt(row.get(key))} {unit}"


def flags(row: dict) -> str:
    marks = []
    if row.get("flagged"):
        marks.append("**FLAGGED**")
    if row.get("tool_saturated"):
        marks.append("tool saturated")
    if row.get("failed_runs"):
        marks.append(f"{row['failed_runs']} failed run(s)")
    return ", ".join(marks)


def metric(row: dict | None, key: str) -> float | None:
    """``row[key]``, or ``row["a"]["b"]`` for ``"a.b"``; None when missing."""
    value = row
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def ratio(before: float | None, after: float | None) -> float | None:
    if before is None or after is None or before == 0:
        return None
    return round(after / before, 3)


def compare(summary: list[dict], baseline: str, current: str) -> list[dict]:
    """Per configuration, scenario and figure: the two trees' medians and current/baseline."""
    by_tree = {(row.get("tree"), row["config"], row["label"]): row for row in summary}
    cases = dict.fromkeys(
        (row["config"], row["label"]) for row in summary if row.get("tree") in {baseline, current}
    )
    compared = []
    for config, label in cases:
        before, after = by_tree.get((baseline, config, label)), by_tree.get((current, config, label))
        for key, unit in COMPARED:
            old, new = metric(before, key), metric(after, key)
            if old is None and new is None:
                continue
            compared.append(
                {"config": config, "label": label, "metric": unit, "baseline": old, "current": new,
                 "ratio": ratio(old, new)}
            )  # fmt: skip
    return compared


def comparison_lines(result: dict) -> list[str]:
    baseline, current = result["trees"]
    lines = [
        "",
        f"## {current} against {baseline}",
        "",
        f"Medians of {result['runs_per_config']} run(s) each, the two trees' runs alternating. "
        "A ratio above 1 is better for a rate (/s) and worse for latency, CPU or memory.",
        "",
        f"| configuration | scenario | figure | {baseline} | {current} | current / baseline |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in compare(result["summary"], baseline, current):
        lines.append(
            f"| {row['config']} | {row['label']} | {row['metric']} | {_fmt(row['baseline'], 2)} "
            f"| {_fmt(row['current'], 2)} | {_fmt(row['ratio'], 3)} |"
        )
    return lines


def write_markdown(result: dict, path: Path) -> Path:
    trees = "trees" in result
    against = f" against {result['baseline']['tree']} = {result['baseline']['ref']}" if trees else ""
    lines = [
        f"# Benchmark {result['date']} (commit {result['commit']}{against})",
        "",
        f"Medians of {result['runs_per_config']} run(s) per configuration"
        + (" and tree" if trees else "")
        + f"; server pinned to core {result['machine']['server_core']}, load tool to core "
        f"{result['machine']['tool_core']}. "
        "Counts (lost/dup/order) are the worst run's. CPU is the share of one core.",
        "",
        ("| tree " if trees else "")
        + "| configuration | scenario | figure | latency p50 / p95 / p99 / max (ms) "
        "| lost / dup / order | server CPU | tool CPU | flags |",
        ("| --- " if trees else "") + "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in result["summary"]:
        latency = row.get("latency_ms") or {}
        latency_text = (
            " / ".join(_fmt(latency.get(k)) for k in ("p50", "p95", "p99", "max")) if latency else "–"
        )
        counts = " / ".join(_fmt(row.get(k, 0)) for k in ("lost", "duplicated", "out_of_order"))
        lines.append(
            (f"| {row.get('tree', '')} " if trees else "")
            + f"| {row['config']} | {row['label']} | {main_figure(row)} | {latency_text} | {counts} "
            f"| {_fmt(row.get('server_cpu'), 2)} | {_fmt(row.get('tool_cpu'), 2)} | {flags(row)} |"
        )
    seeds = [c for c in result.get("configs", []) if "seed_seconds" in c]
    if seeds:
        lines += ["", "Seeding (seed_chat, three prefixes): " + ", ".join(
            f"{series(c)} {c['seed_seconds']:.1f} s" for c in seeds
        )]  # fmt: skip
    if trees:
        lines += comparison_lines(result)
    path.write_text("\n".join(lines) + "\n")
    return path


def series(row: dict) -> str:
    """A row's configuration, after its tree when there is one: a plot's series or a seed's name."""
    return f"{row['tree']} {row['config']}" if row.get("tree") else row["config"]


def write_plots(result: dict, out: Path, stamp: str) -> list[Path]:
    """deliveries/s per configuration (fanout and rooms), and the latency CDF at a fixed rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    summary = result["summary"]
    throughput = [r for r in summary if r["scenario"] in {"fanout", "rooms"} and r.get("deliveries_per_s")]
    if throughput:
        labels = sorted({r["label"] for r in throughput})
        configs = sorted({series(r) for r in throughput})
        fig, ax = plt.subplots(figsize=(max(6, 2 + 1.6 * len(labels)), 4.5))
        width = 0.8 / len(configs)
        for i, config in enumerate(configs):
            values = [
                next(
                    (
                        r["deliveries_per_s"]
                        for r in throughput
                        if series(r) == config and r["label"] == label
                    ),
                    0,
                )
                for label in labels
            ]
            ax.bar([x + i * width for x in range(len(labels))], values, width, label=config)
        ax.set_xticks([x + width * (len(configs) - 1) / 2 for x in range(len(labels))], labels)
        ax.set_ylabel("deliveries/s (median)")
        ax.set_title(f"Deliveries per second, commit {result['commit']}")
        ax.legend(fontsize="small")
        fig.tight_layout()
        path = out / f"{stamp}-deliveries.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    curves = [r for r in summary if r["scenario"] == "fanout-latency" and r.get("latency_cdf_ms")]
    if curves:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for row in curves:
            points = row["latency_cdf_ms"]
            ax.plot(
                points, [i / len(points) for i in range(len(points))], label=f"{series(row)} {row['label']}"
            )
        ax.set_xscale("log")
        ax.set_xlabel("latency (ms, send to delivery)")
        ax.set_ylabel("fraction of deliveries")
        ax.set_title(f"Latency CDF at a fixed rate, commit {result['commit']}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="x-small")
        fig.tight_layout()
        path = out / f"{stamp}-latency-cdf.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
