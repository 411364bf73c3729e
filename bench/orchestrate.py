"""``bench/run``'s engine: for each configuration, a fresh database, seed, server, scenarios.

A configuration is ``SERVER/LAYER/DB``: ``uvicorn`` or ``daphne`` (both via
``bin/server``), ``memory``, ``redis`` (the pubsub layer) or ``redis-core``
(``CHAT_CHANNEL_LAYER=core``: RedisChannelLayer), both on ``REDIS_URL`` database 15, and
``sqlite`` or ``postgres`` (a fresh database created and dropped here).
Each run starts a new server process pinned to core 0 and runs every chosen
scenario from this process, pinned to core 1; the summary quotes medians
over the runs.

With ``--baseline REF`` every configuration is measured on two trees, REF's
files (``bench.trees``) and the work tree, each with its own database and
seed, their runs alternating (baseline 1, current 1, baseline 2, ...) so that
whatever else the machine does falls on both alike; the report then adds
each figure's baseline and current medians and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit
from urllib.request import urlopen

import uvloop

from bench import report, scenarios, trees
from bench.trees import ROOT, Tree, git_commit

T = TypeVar("T")
SERVER_CORE, TOOL_CORE = 0, 1
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
DEFAULT_CONFIGS = [
    "uvicorn/memory/sqlite",
    "daphne/memory/sqlite",
    "uvicorn/redis/sqlite",
    "uvicorn/memory/postgres",
]
ALL_SCENARIOS = ["idle", "connect", "fanout", "rooms", "rest"]


@dataclass(frozen=True)
class Sizes:
    fanout: tuple[int, ...] = (200, 1000)
    window: int = 32
    seconds: float = 10.0
    rate: float = 5.0
    rate_seconds: float = 10.0
    room_channels: int = 50
    room_members: int = 10
    idle: int = 2000
    connect_total: int = 1000
    rest_clients: int = 32
    history_messages: int = 10000  # seeded before the runs, spread over the lobby and channels


FULL = Sizes()
QUICK = Sizes(
    fanout=(20, 50),
    seconds=2.0,
    rate_seconds=2.0,
    room_channels=5,
    room_members=4,
    idle=100,
    connect_total=100,
    rest_clients=4,
    history_messages=500,
)


@dataclass
class Config:
    server: str
    layer: str
    db: str

    @classmethod
    def parse(cls, text: str) -> Config:
        server, layer, db = text.strip().split("/")
        if (
            server not in {"uvicorn", "daphne"}
            or layer not in {"memory", "redis", "redis-core"}
            or db not in {"sqlite", "postgres"}
        ):
            raise ValueError(f"bad configuration {text!r}: SERVER/LAYER/DB, e.g. uvicorn/memory/sqlite")
        return cls(server, layer, db)

    @property
    def name(self) -> str:
        return f"{self.server}/{self.layer}/{self.db}"


@dataclass
class Plan:
    configs: list[Config]
    scenarios: list[str]
    runs: int
    sizes: Sizes
    out: Path
    notes: list[str] = field(default_factory=list)
    baseline_ref: str | None = None  # as given, for the report
    baseline_sha: str | None = None  # resolved once, before anything runs
    trees: list[Tree] = field(default_factory=lambda: [Tree("")])


# --- environment and processes ----------------------------------------------


def pin_to(core: int) -> None:
    if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > core:
        os.sched_setaffinity(0, {core})


def server_env(config: Config, data_dir: Path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_", "CHAT_", "REDIS_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="chatsite.settings.base",
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(48),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        CHAT_DATA_DIR=str(data_dir),
        DATABASE_URL=database_url,
        CHAT_SERVER=config.server,
        CHAT_MESSAGE_BURST="10000000",
        CHAT_MESSAGE_RATE="10000000",
        CHAT_MAX_CONNECTIONS_PER_USER="1000",
        CHAT_LOGIN_RATE="100000/m",
        # The load reconnects, reads and joins far faster than one person would.
        CHAT_CHANNEL_CREATE_RATE="100000/m",
        CHAT_MEMBERSHIP_RATE="100000/m",
        CHAT_READ_RATE="100000/m",
        CHAT_CONNECT_RATE="100000/m",
        CHAT_LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    if config.layer in {"redis", "redis-core"}:
        env["REDIS_URL"] = REDIS_URL
        # "redis" is the default pubsub layer; "redis-core" is RedisChannelLayer.
        env["CHAT_CHANNEL_LAYER"] = "core" if config.layer == "redis-core" else "pubsub"
    return env


def create_postgres_database() -> tuple[str, str]:
    import psycopg

    name = f"chat_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(urlsplit(POSTGRES_URL)._replace(path=f"/{name}")), name


def drop_postgres_database(name: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def flush_redis() -> None:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


def manage(env: dict[str, str], *args: str, root: Path = ROOT) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=root, env=env, check=True)


def seed(
    env: dict[str, str], sizes: Sizes, data_dir: Path, root: Path = ROOT
) -> tuple[dict[str, str], float]:
    """Seed the three populations with invisible users; return every token and the seconds taken."""
    fan_users = max(sizes.fanout)
    room_users = max(sizes.room_channels * sizes.room_members, sizes.rest_clients)
    idle_users = max(sizes.idle, min(sizes.connect_total, 200))
    share = max(1, sizes.history_messages // 3)
    plan = [
        ("fan", fan_users, 1, fan_users, share),
        ("room", room_users, room_users // sizes.room_members, sizes.room_members, share),
        ("idle", idle_users, 0, 1, share),
    ]
    tokens: dict[str, str] = {}
    began = time.perf_counter()
    for prefix, users, channels, members, messages in plan:
        path = data_dir / f"tokens-{prefix}.json"
        manage(
            env, "seed_chat", "--prefix", prefix, "--users", str(users), "--channels", str(channels),
            "--members-per-channel", str(members), "--messages", str(messages), "--status", "offline",
            "--tokens", str(path), "--token-seconds", "86400", "--no-progress", root=root,
        )  # fmt: skip
        tokens.update(json.loads(path.read_text()))
    return tokens, time.perf_counter() - began


class Server:
    """``bin/server`` of ``root`` pinned to the server core, in its own process group."""

    def __init__(self, env: dict[str, str], port: int, log_path: Path, root: Path = ROOT) -> None:
        self.env, self.port, self.log_path, self.root = env, port, log_path, root
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            ["taskset", "-c", str(SERVER_CORE), str(self.root / "bin" / "server")],
            cwd=self.root,
            env={**self.env, "PORT": str(self.port)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early; see {self.log_path}")
            try:
                with urlopen(f"http://127.0.0.1:{self.port}/api/health", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start; see {self.log_path}")

    @property
    def pid(self) -> int:
        return self.process.pid  # taskset and bin/server exec, so this is the server itself

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- scenarios ----------------------------------------------------------------


async def run_scenarios(ctx: scenarios.Context, names: list[str], sizes: Sizes) -> list[dict]:
    steps = {
        "idle": lambda: scenarios.idle(ctx, connections=sizes.idle),
        "connect": lambda: scenarios.connects(ctx, total=sizes.connect_total),
        "fanout": None,
        "rooms": lambda: scenarios.rooms(
            ctx, channels=sizes.room_channels, members=sizes.room_members, seconds=sizes.seconds
        ),
        "rest": lambda: scenarios.rest(ctx, clients=sizes.rest_clients, seconds=sizes.seconds),
    }
    jobs = []
    for name in names:
        if name == "fanout":
            for n in sizes.fanout:
                jobs.append((f"fanout n={n}", lambda n=n: scenarios.fanout(
                    ctx, subscribers=n, seconds=sizes.seconds, window=sizes.window,
                    rate=sizes.rate, rate_seconds=sizes.rate_seconds,
                )))  # fmt: skip
        else:
            jobs.append((name, steps[name]))
    rows = []
    for label, job in jobs:
        print(f"  {label} ...", flush=True)
        try:
            rows.extend(await job())
        except Exception as exc:
            traceback.print_exc()
            rows.append({"scenario": label.split()[0], "label": label, "error": repr(exc), "flagged": True})
    return rows


@dataclass
class Prepared:
    """One tree's fresh database and seed for one configuration, reused by each of its runs."""

    tree: Tree
    env: dict[str, str]
    tokens: dict[str, str]
    info: dict


def schedule(items: Sequence[T], runs: int) -> list[tuple[int, T]]:
    """(run, tree) in the order measured: every tree's run 1, then every tree's run 2, ...

    Alternating, rather than all of one tree's runs and then the other's, so
    that a noisy stretch on the machine lands on both trees and not on one.
    """
    return [(run, item) for run in range(1, runs + 1) for item in items]


def prepare(plan: Plan, config: Config, tree: Tree, stack: ExitStack) -> Prepared:
    """Fresh database, migrate, seed; what it made is undone when ``stack`` closes."""
    data_dir = Path(tempfile.mkdtemp(prefix="chat-bench-"))
    stack.callback(subprocess.run, ["rm", "-rf", str(data_dir)], check=False)
    if config.db == "postgres":
        database_url, name = create_postgres_database()
        stack.callback(drop_postgres_database, name)
    else:
        database_url = f"sqlite:///{data_dir / 'db.sqlite3'}"
    if config.layer in {"redis", "redis-core"}:
        flush_redis()
    env = server_env(config, data_dir, database_url)
    if tree.root != ROOT:
        env.pop("PYTHONPATH", None)  # it could put the work tree's packages before the baseline's
    info: dict = {"config": config.name} | ({"tree": tree.name} if tree.name else {})
    if tree.name:
        print(f"{config.name}: preparing {tree.name}", flush=True)
    manage(env, "migrate", "--noinput", "-v", "0", root=tree.root)
    tokens, info["seed_seconds"] = seed(env, plan.sizes, data_dir, tree.root)
    return Prepared(tree, env, tokens, info)


def measure(plan: Plan, config: Config, prepared: Prepared, run: int, log_dir: Path) -> list[dict]:
    """One run: a new server on the tree's database, every scenario, the server stopped."""
    tree = prepared.tree
    print(f"{config.name}: run {run} of {plan.runs}" + (f", {tree.name}" if tree.name else ""), flush=True)
    stem = "-".join(filter(None, ["server", tree.kind, config.name.replace("/", "-"), str(run)]))
    server = Server(prepared.env, free_port(), log_dir / f"{stem}.log", tree.root)
    server.start()
    try:
        ctx = scenarios.Context(
            http_base=f"http://127.0.0.1:{server.port}", tokens=prepared.tokens, server_pid=server.pid
        )
        found = uvloop.run(run_scenarios(ctx, plan.scenarios, plan.sizes))
    finally:
        server.stop()
    for row in found:
        row.update(({"tree": tree.name} if tree.name else {}) | {"config": config.name, "run": run})
    return found


def run_config(plan: Plan, config: Config, log_dir: Path) -> tuple[list[dict], list[dict]]:
    """Every tree's database and seed, then the runs alternating between the trees."""
    with ExitStack() as stack:
        prepared = [prepare(plan, config, tree, stack) for tree in plan.trees]
        rows = []
        for run, each in schedule(prepared, plan.runs):
            rows.extend(measure(plan, config, each, run, log_dir))
        return rows, [each.info for each in prepared]


# --- summary ------------------------------------------------------------------

COUNTS = (
    "expected",
    "delivered",
    "lost",
    "duplicated",
    "out_of_order",
    "unacknowledged",
    "errors",
    "pending",
)


def summarise(rows: list[dict]) -> list[dict]:
    """One row per tree, configuration and label: medians of the figures, worst counts, any flag.

    Rows without a ``tree`` (a run without ``--baseline``) make summary rows without one.
    """
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row.get("tree", ""), row.get("config", ""), row["label"]), []).append(row)
    summary = []
    for (tree, config, label), group in groups.items():
        good = [row for row in group if "error" not in row]
        merged = {"tree": tree} if tree else {}
        merged |= {"config": config, "label": label, "scenario": group[0]["scenario"], "runs": len(group)}
        merged["failed_runs"] = len(group) - len(good)
        if good:
            for key, value in good[0].items():
                if key in {
                    "tree",
                    "config",
                    "run",
                    "label",
                    "scenario",
                    "flagged",
                    "tool_saturated",
                    "latency_cdf_ms",
                }:
                    continue
                values = [row.get(key) for row in good]
                if key in COUNTS:
                    merged[key] = max(v or 0 for v in values)
                elif isinstance(value, dict):
                    merged[key] = {
                        k: _median([row[key].get(k) for row in good if row.get(key)]) for k in value
                    }
                elif isinstance(value, bool) or not isinstance(value, int | float):
                    merged[key] = value
                else:
                    merged[key] = _median(values)
            if any("latency_cdf_ms" in row for row in good):
                ranked = sorted(good, key=lambda row: (row.get("latency_ms") or {}).get("p99") or 0)
                merged["latency_cdf_ms"] = ranked[len(ranked) // 2].get("latency_cdf_ms", [])
        merged["tool_saturated"] = any(row.get("tool_saturated") for row in group)
        merged["flagged"] = any(row.get("flagged") for row in group)
        summary.append(merged)
    return summary


def _median(values: list) -> float | None:
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    return round(statistics.median(numbers), 3) if numbers else None


def sized_from_env(sizes: Sizes) -> Sizes:
    """BENCH_FANOUT=200,1000 BENCH_ROOMS=50x10 BENCH_IDLE=2000 BENCH_CONNECTS=1000 BENCH_REST_CLIENTS=32."""
    changes: dict = {}
    if fanout := os.environ.get("BENCH_FANOUT"):
        changes["fanout"] = tuple(int(n) for n in fanout.split(","))
    if rooms := os.environ.get("BENCH_ROOMS"):
        channels, members = rooms.lower().split("x")
        changes.update(room_channels=int(channels), room_members=int(members))
    for env, key in (
        ("BENCH_IDLE", "idle"),
        ("BENCH_CONNECTS", "connect_total"),
        ("BENCH_REST_CLIENTS", "rest_clients"),
    ):
        if value := os.environ.get(env):
            changes[key] = int(value)
    return replace(sizes, **changes)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes, one run, the first configuration only"
    )
    parser.add_argument(
        "--configs", default=os.environ.get("BENCH_CONFIGS", ""), help="comma-separated SERVER/LAYER/DB"
    )
    parser.add_argument(
        "--scenarios", default=os.environ.get("BENCH_SCENARIOS", ""), help=", ".join(ALL_SCENARIOS)
    )
    parser.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", "0")) or None)
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", "0")) or None)
    parser.add_argument(
        "--out", type=Path, default=Path(os.environ.get("BENCH_OUT", ROOT / "bench" / "results"))
    )
    parser.add_argument(
        "--baseline",
        metavar="REF",
        default=os.environ.get("BENCH_BASELINE") or None,
        help="also measure this git revision, runs alternating with the work tree's, and compare",
    )
    return parser


def parse_plan(argv: list[str] | None = None) -> Plan:
    parser = build_parser()
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    sizes = sized_from_env(sizes)
    if args.seconds:
        sizes = replace(sizes, seconds=args.seconds, rate_seconds=args.seconds)
    configs = [Config.parse(c) for c in args.configs.split(",") if c.strip()] or [
        Config.parse(c) for c in (DEFAULT_CONFIGS[:1] if args.quick else DEFAULT_CONFIGS)
    ]
    names = [s.strip() for s in args.scenarios.split(",") if s.strip()] or ALL_SCENARIOS
    unknown = set(names) - set(ALL_SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    baseline_sha = None
    if args.baseline:
        try:
            baseline_sha = trees.resolve(args.baseline)
        except ValueError as exc:
            parser.error(f"--baseline: {exc}")
    return Plan(
        configs=configs,
        scenarios=names,
        runs=args.runs or (1 if args.quick else 3),
        sizes=sizes,
        out=args.out,
        baseline_ref=args.baseline,
        baseline_sha=baseline_sha,
    )


def result_of(
    plan: Plan, stamp: str, commit: str, infos: list[dict], rows: list[dict], log_dir: Path
) -> dict:
    result = {
        "date": stamp,
        "commit": commit,
        "machine": {"cpus": os.cpu_count(), "server_core": SERVER_CORE, "tool_core": TOOL_CORE},
        "sizes": asdict(plan.sizes),
        "runs_per_config": plan.runs,
        "configs": infos,
        "summary": summarise(rows),
        "rows": rows,
        "server_logs": str(log_dir),
    }
    if plan.baseline_sha:
        baseline, current = (tree.name for tree in plan.trees)
        result["baseline"] = {"ref": plan.baseline_ref, "commit": plan.baseline_sha, "tree": baseline}
        result["trees"] = [baseline, current]
    return result


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C: servers stopped, databases dropped, the baseline copy removed."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    plan = parse_plan(argv)
    pin_to(TOOL_CORE)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if plan.baseline_sha and trees.requirements_differ(plan.baseline_sha):
        print(f"warning: {plan.baseline_ref} pins other requirements; it runs with this tree's .venv")
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%SZ")
    plan.out.mkdir(parents=True, exist_ok=True)
    log_dir = Path(tempfile.mkdtemp(prefix="chat-bench-logs-"))
    rows, infos = [], []
    commit = git_commit()
    with trees.measured(plan.baseline_sha) as measured:
        plan.trees = measured
        for config in plan.configs:
            found, info = run_config(plan, config, log_dir)
            rows.extend(found)
            infos.extend(info)
            # Written after every configuration, so a long run interrupted keeps what it measured.
            result = result_of(plan, stamp, commit, infos, rows, log_dir)
            json_path = plan.out / f"{stamp}.json"
            json_path.write_text(json.dumps(result, indent=1))
            md_path = report.write_markdown(result, plan.out / f"{stamp}.md")
            plots = report.write_plots(result, plan.out, stamp)
    print(md_path.read_text())
    print(f"wrote {json_path}, {md_path}" + "".join(f", {p}" for p in plots))
    return 1 if any(row["flagged"] for row in result["summary"]) else 0


if __name__ == "__main__":
    sys.exit(main())
