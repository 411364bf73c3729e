"""The Markdown table and the PNG plots of one ``bench/run`` result."""

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


def write_markdown(result: dict, path: Path) -> Path:
    lines = [
        f"# Benchmark {result['date']} (commit {result['commit']})",
        "",
        f"Medians of {result['runs_per_config']} run(s) per configuration; server pinned to core "
        f"{result['machine']['server_core']}, load tool to core {result['machine']['tool_core']}. "
        "Counts (lost/dup/order) are the worst run's. CPU is the share of one core.",
        "",
        "| configuration | scenario | figure | latency p50 / p95 / p99 / max (ms) "
        "| lost / dup / order | server CPU | tool CPU | flags |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in result["summary"]:
        latency = row.get("latency_ms") or {}
        latency_text = (
            " / ".join(_fmt(latency.get(k)) for k in ("p50", "p95", "p99", "max")) if latency else "–"
        )
        counts = " / ".join(_fmt(row.get(k, 0)) for k in ("lost", "duplicated", "out_of_order"))
        lines.append(
            f"| {row['config']} | {row['label']} | {main_figure(row)} | {latency_text} | {counts} "
            f"| {_fmt(row.get('server_cpu'), 2)} | {_fmt(row.get('tool_cpu'), 2)} | {flags(row)} |"
        )
    seeds = [c for c in result.get("configs", []) if "seed_seconds" in c]
    if seeds:
        lines += ["", "Seeding (seed_chat, three prefixes): " + ", ".join(
            f"{c['config']} {c['seed_seconds']:.1f} s" for c in seeds
        )]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


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
        configs = sorted({r["config"] for r in throughput})
        fig, ax = plt.subplots(figsize=(max(6, 2 + 1.6 * len(labels)), 4.5))
        width = 0.8 / len(configs)
        for i, config in enumerate(configs):
            values = [
                next(
                    (
                        r["deliveries_per_s"]
                        for r in throughput
                        if r["config"] == config and r["label"] == label
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
                points, [i / len(points) for i in range(len(points))], label=f"{row['config']} {row['label']}"
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
