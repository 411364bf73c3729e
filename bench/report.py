"""The Markdown table and the PNG plots of one ``bench/run`` result.

A result measured with ``--baseline`` has a ``tree`` on every summary row and
``result["trees"]`` (baseline, current); its report adds a column for the tree
and a table of each figure's baseline median, current median and their ratio.

A result with the ``reference`` configuration (``bench/reference.py``) quotes
every other configuration's figures as ratios to the reference's median of
the same figure in the same invocation (ours / reference: above 1 is better
for a rate, worse for latency, memory or CPU, written "2.4x"), in a table
of the headline figures, with the performance targets and whether each is met.
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


# --- against the reference ----------------------------------------------------

REFERENCE = "reference"  # bench.orchestrate.REFERENCE (which imports this module)
# Figures where less is better: their ratios read "2.4x" (times the reference's).
COSTS = {"rss_per_connection_kib", "latency_ms.p50", "latency_ms.p99", "server_cpu"}
# The figure each scenario is known by (the main table's), as a key for ``metric``.
HEADLINE = {
    "fanout": "deliveries_per_s",
    "fanout-latency": "latency_ms.p99",
    "rooms": "deliveries_per_s",
    "idle": "rss_per_connection_kib",
    "connect": "connects_per_s",
    "rest": "requests_per_s",
}
# The headline table's rows: (case, scenario, which fan-out size, figure key, unit).
CASES = (
    ("fanout-small", "fanout", min, "deliveries_per_s", "deliveries/s"),
    ("fanout-large", "fanout", max, "deliveries_per_s", "deliveries/s"),
    ("rooms", "rooms", None, "deliveries_per_s", "deliveries/s"),
    ("p99", "fanout-latency", min, "latency_ms.p99", "ms"),
    ("connects", "connect", None, "connects_per_s", "connects/s"),
    ("rss", "idle", None, "rss_per_connection_kib", "KiB"),
)
# The performance targets, as ratios to the reference (docs/performance.md): (case, comparison, bound).
TARGETS = (
    ("rooms", ">=", 0.12),
    ("fanout-small", ">=", 0.35),
    ("connects", ">=", 0.3),
    ("p99", "<=", 2.0),
    ("rss", "<=", 1.5),
)
# PostgreSQL with the Redis layer against the default configuration, on rooms.
SCALE_OUT, DEFAULT, SCALE_OUT_TARGET = "uvicorn/redis/postgres", "uvicorn/memory/sqlite", 0.7


def is_reference(row: dict) -> bool:
    return row.get("config") == REFERENCE


def format_ratio(value: float | None, key: str) -> str:
    """A rate's ratio as ``0.22``, a cost's as ``2.40x``."""
    if value is None:
        return "–"
    return f"{value:.2f}x" if key in COSTS else f"{value:.2f}"


def meets(value: float | None, comparison: str, bound: float) -> bool | None:
    if value is None:
        return None
    return value >= bound if comparison == ">=" else value <= bound


def reference_ratio(row: dict, references: dict[str, dict], key: str) -> float | None:
    """``row``'s figure over the reference's median of the same figure and scenario."""
    return ratio(metric(references.get(row["label"]), key), metric(row, key))


def references_of(summary: list[dict]) -> dict[str, dict]:
    return {row["label"]: row for row in summary if is_reference(row)}


def against_reference(summary: list[dict]) -> list[dict]:
    """Every figure of every other configuration (and tree), with the reference's and the ratio."""
    references = references_of(summary)
    found = []
    for row in summary:
        if is_reference(row) or row["label"] not in references:
            continue
        for key, unit in COMPARED:
            value, base = metric(row, key), metric(references[row["label"]], key)
            if value is None and base is None:
                continue
            found.append(
                ({"tree": row["tree"]} if row.get("tree") else {})
                | {"config": row["config"], "label": row["label"], "metric": unit, "key": key,
                   "reference": base, "value": value, "ratio": ratio(base, value)}
            )  # fmt: skip
    return found


def _case_rows(summary: list[dict], scenario: str, size) -> list[dict]:
    rows = [row for row in summary if row["scenario"] == scenario]
    if size is not None:
        sizes = {row.get("subscribers") for row in rows if row.get("subscribers") is not None}
        if not sizes:
            return []
        chosen = size(sizes)
        rows = [row for row in rows if row.get("subscribers") == chosen]
    return rows


def _count(value) -> str:
    return f"{value:,g}" if isinstance(value, int | float) else "?"


def case_name(case: str, rows: list[dict]) -> str:
    first = rows[0] if rows else {}
    n = _count(first.get("subscribers"))
    if case in {"fanout-small", "fanout-large"}:
        return f"fan-out to {n} subscribers"
    if case == "p99":
        return f"p99 at {_count(first.get('rate'))} msg/s into {n} subscribers"
    if case == "rooms":
        rooms, members = _count(first.get("channels")), _count(first.get("members"))
        return f"rooms: {rooms} rooms of {members}, everyone sending"
    if case == "connects":
        return "connects/s (handshake to the connect history)"
    return "RSS per idle connection"


def headline_table(summary: list[dict]) -> list[dict]:
    """The headline table: per case, the reference's median and each configuration's with its ratio."""
    table = []
    for case, scenario, size, key, unit in CASES:
        rows = _case_rows(summary, scenario, size)
        reference = next((row for row in rows if is_reference(row)), None)
        if reference is None or (
            case == "fanout-large"
            and len({r.get("subscribers") for r in _case_rows(summary, scenario, None)}) < 2
        ):
            continue
        base = metric(reference, key)
        table.append({
            "case": case, "scenario": case_name(case, rows), "key": key, "unit": unit, "reference": base,
            "series": {series(row): {"value": metric(row, key), "ratio": ratio(base, metric(row, key))}
                       for row in rows if not is_reference(row)},
        })  # fmt: skip
    return table


def targets(table: list[dict]) -> list[dict]:
    """The targets, each with every configuration's ratio and whether it is met."""
    by_case = {row["case"]: row for row in table}
    found = []
    for case, comparison, bound in TARGETS:
        row = by_case.get(case)
        if row is None:
            continue
        found.append({
            "case": case, "scenario": row["scenario"], "key": row["key"], "target": f"{comparison} {bound:g}",
            "series": {name: {"ratio": cell["ratio"], "met": meets(cell["ratio"], comparison, bound)}
                       for name, cell in row["series"].items()},
        })  # fmt: skip
    return found


def scale_out_rooms(summary: list[dict]) -> list[dict]:
    """PostgreSQL with the Redis layer against the default configuration on rooms, per tree."""
    rooms = {(row.get("tree", ""), row["config"]): row for row in summary if row["scenario"] == "rooms"}
    found = []
    for tree in dict.fromkeys(row.get("tree", "") for row in summary):
        scale_out, default = rooms.get((tree, SCALE_OUT)), rooms.get((tree, DEFAULT))
        if scale_out is None or default is None:
            continue
        value = ratio(metric(default, "deliveries_per_s"), metric(scale_out, "deliveries_per_s"))
        found.append(
            ({"tree": tree} if tree else {})
            | {"config": SCALE_OUT, "against": DEFAULT, "ratio": value, "target": f">= {SCALE_OUT_TARGET:g}",
               "met": meets(value, ">=", SCALE_OUT_TARGET)}
        )  # fmt: skip
    return found


def reference_results(summary: list[dict]) -> dict:
    """What the JSON result keeps about the reference: nothing when it was not measured."""
    table = headline_table(summary)
    found: dict = {}
    if references_of(summary):
        found = {
            "against_reference": against_reference(summary),
            "reference_table": table,
            "targets": targets(table),
        }
    if scale := scale_out_rooms(summary):
        found["scale_out_rooms"] = scale
    return found


def _value_text(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if unit in {"ms", "KiB"}:
        return f"{value:,.1f} {unit}"
    return f"{value:,.0f}"


def _met_text(met: bool | None) -> str:
    return {True: "met", False: "**not met**", None: "–"}[met]


def reference_lines(result: dict) -> list[str]:
    summary = result["summary"]
    table = result.get("reference_table") or headline_table(summary)
    names = list(dict.fromkeys(name for row in table for name in row["series"]))
    lines = [
        "",
        "## Against the reference",
        "",
        f"Medians of {result['runs_per_config']} run(s); `{REFERENCE}` is `bench/reference.py`, a bare "
        "`websockets` broadcast server speaking the same frames that stores and checks nothing, measured "
        "in the same invocation. Ratios are ours / reference: deliveries and connects per second "
        "(higher is better), p99 and RSS as times the reference's (lower is better).",
        "",
        "| scenario | reference | " + " | ".join(f"{name} | ratio" for name in names) + " |",
        "| --- | --- | " + " | ".join("--- | ---" for _ in names) + " |",
    ]
    for row in table:
        cells = [
            f"{_value_text(row['series'][name]['value'], row['unit'])} "
            f"| {format_ratio(row['series'][name]['ratio'], row['key'])}"
            if name in row["series"]
            else "– | –"
            for name in names
        ]
        lines.append(
            f"| {row['scenario']} | {_value_text(row['reference'], row['unit'])} | "
            + " | ".join(cells)
            + " |"
        )
    saturated = [row["label"] for row in summary if is_reference(row) and row.get("tool_saturated")]
    if saturated:
        lines += [
            "",
            f"The load tool was saturated on the reference in {', '.join(saturated)}: there the reference's "
            "figure is what the tool could follow, not what the reference could serve, so the ratio "
            "flatters ours.",
        ]
    goals = result.get("targets") or targets(table)
    if goals:
        lines += [
            "",
            "Targets (ratios to the reference):",
            "",
            "| target | required | " + " | ".join(names) + " |",
            "| --- | --- | " + " | ".join("---" for _ in names) + " |",
        ]
        for goal in goals:
            cells = [
                " ".join((format_ratio(cell["ratio"], goal["key"]), _met_text(cell["met"])))
                if (cell := goal["series"].get(name))
                else "–"
                for name in names
            ]
            lines.append(f"| {goal['scenario']} | {goal['target']} | " + " | ".join(cells) + " |")
    for scale in result.get("scale_out_rooms") or scale_out_rooms(summary):
        tree = f" ({scale['tree']})" if scale.get("tree") else ""
        lines += [
            "",
            f"Rooms, {scale['config']} / {scale['against']}{tree}: {format_ratio(scale['ratio'], '')} "
            f"(target {scale['target']}: {_met_text(scale['met'])}).",
        ]
    detail = result.get("against_reference") or against_reference(summary)
    if detail:
        lines += [
            "",
            "Every figure against the reference's:",
            "",
            "| configuration | scenario | figure | reference | this | this / reference |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for row in detail:
            lines.append(
                f"| {series(row)} | {row['label']} | {row['metric']} | {_fmt(row['reference'], 2)} "
                f"| {_fmt(row['value'], 2)} | {format_ratio(row['ratio'], row['key'])} |"
            )
    return lines


def write_markdown(result: dict, path: Path) -> Path:
    trees = "trees" in result
    references = references_of(result["summary"])
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
        + "| configuration | scenario | figure "
        + ("| / reference " if references else "")
        + "| latency p50 / p95 / p99 / max (ms) | lost / dup / order | server CPU | tool CPU | flags |",
        ("| --- " if trees else "")
        + ("| --- " if references else "")
        + "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in result["summary"]:
        latency = row.get("latency_ms") or {}
        latency_text = (
            " / ".join(_fmt(latency.get(k)) for k in ("p50", "p95", "p99", "max")) if latency else "–"
        )
        counts = " / ".join(_fmt(row.get(k, 0)) for k in ("lost", "duplicated", "out_of_order"))
        relative = ""
        if references:
            key = HEADLINE.get(row["scenario"], "")
            relative = (
                "| – "
                if is_reference(row)
                else f"| {format_ratio(reference_ratio(row, references, key), key)} "
            )
        lines.append(
            (f"| {row.get('tree', '')} " if trees else "")
            + f"| {row['config']} | {row['label']} | {main_figure(row)} {relative}"
            f"| {latency_text} | {counts} "
            f"| {_fmt(row.get('server_cpu'), 2)} | {_fmt(row.get('tool_cpu'), 2)} | {flags(row)} |"
        )
    seeds = [c for c in result.get("configs", []) if "seed_seconds" in c]
    if seeds:
        lines += ["", "Seeding (seed_chat, three prefixes): " + ", ".join(
            f"{series(c)} {c['seed_seconds']:.1f} s" for c in seeds
        )]  # fmt: skip
    if result.get("notes"):
        lines += [""] + [f"- {note}" for note in result["notes"]]
    if references:
        lines += reference_lines(result)
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
