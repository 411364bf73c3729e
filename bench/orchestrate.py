"""``bench/run``'s engine: for each configuration, a fresh database, seed, server, scenarios.

A configuration is ``SERVER/LAYER/DB``: ``uvicorn`` or ``daphne`` (both via
``bin/server``), ``memory``, ``redis`` (the pubsub layer) or ``redis-core``
(``CHAT_CHANNEL_LAYER=core``: RedisChannelLayer), both on ``REDIS_URL`` database 15, and
``sqlite`` or ``postgres`` (a fresh database created and dropped here);
or ``reference``: ``bench/reference.py``, a bare ``websockets`` broadcast
server speaking the same frames, which stores and checks nothing. Runs on a
shared machine are comparable only as ratios, so the report quotes every
figure against the reference's, measured in the same invocation.

Every configuration is prepared first (database, seed); then the runs go
round: run 1 of every configuration (the reference first), then run 2, ...,
so that whatever else the machine does falls on all of them alike. Each run
starts a new server process pinned to core 0 and runs every chosen scenario
from this process, pinned to core 1; the summary quotes medians over the runs.

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
from collections.abc import Callable, Sequence
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
REFERENCE = "reference"
DEFAULT_CONFIGS = [
    REFERENCE,
    "uvicorn/memory/sqlite",
    "daphne/memory/sqlite",
    "uvicorn/redis/sqlite",
    "uvicorn/memory/postgres",
    "uvicorn/redis/postgres",
]
QUICK_CONFIGS = [REFERENCE, "uvicorn/memory/sqlite"]
ALL_SCENARIOS = ["idle", "connect", "fanout", "rooms", "rest"]
# What the reference does not serve: it has no REST API.
NOT_ON_REFERENCE = {"rest"}


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
    history_messages: int = 10000  # seeded before the runs (--history), spread over the lobby and channels


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
    """``SERVER/LAYER/DB``, or the reference (whose database only holds the seed it reads members from)."""

    server: str
    layer: str
    db: str

    @classmethod
    def parse(cls, text: str) -> Config:
        if text.strip() == REFERENCE:
            return cls(REFERENCE, "memory", "sqlite")
        parts = text.strip().split("/")
        if (
            len(parts) != 3
            or parts[0] not in {"uvicorn", "daphne"}
            or parts[1] not in {"memory", "redis", "redis-core"}
            or parts[2] not in {"sqlite", "postgres"}
        ):
            raise ValueError(
                f"bad configuration {text!r}: {REFERENCE} or SERVER/LAYER/DB, e.g. uvicorn/memory/sqlite"
            )
        return cls(*parts)

    @property
    def is_reference(self) -> bool:
        return self.server == REFERENCE

    @property
    def name(self) -> str:
        return REFERENCE if self.is_reference else f"{self.server}/{self.layer}/{self.db}"

    def scenarios(self, names: list[str]) -> list[str]:
        """The chosen scenarios this configuration runs: the reference serves no REST."""
        return [name for name in names if not (self.is_reference and name in NOT_ON_REFERENCE)]


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
    # The three prefixes share the history exactly; 0 seeds none.
    share = [sizes.history_messages // 3 + (i < sizes.history_messages % 3) for i in range(3)]
    plan = [
        ("fan", fan_users, 1, fan_users, share[0]),
        ("room", room_users, room_users // sizes.room_members, sizes.room_members, share[1]),
        ("idle", idle_users, 0, 1, share[2]),
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


def dump_members(env: dict[str, str], path: Path) -> None:
    """Write ``{username: [channel names]}`` from the seeded database, for the reference server."""
    manage(env, "shell", "-c", f"from bench.reference import write_members; write_members({str(path)!r})")


def reference_command(port: int, members: Path) -> list[str]:
    return [sys.executable, "-m", "bench.reference", "--port", str(port), "--members", str(members)]


class Server:
    """``bin/server`` of ``root`` (or ``command``) pinned to the server core, in its own process group."""

    def __init__(
        self,
        env: dict[str, str],
        port: int,
        log_path: Path,
        root: Path = ROOT,
        command: list[str] | None = None,
    ) -> None:
        self.env, self.port, self.log_path, self.root = env, port, log_path, root
        self.command = command or [str(root / "bin" / "server")]
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            ["taskset", "-c", str(SERVER_CORE), *self.command],
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
        return self.process.pid  # taskset, bin/server (and python) exec, so this is the server itself

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
    members: Path | None = None  # the reference's {username: [channels]}, dumped from its seed


def schedule(items: Sequence[T], runs: int) -> list[tuple[int, T]]:
    """(run, tree) in the order measured: every tree's run 1, then every tree's run 2, ...

    Alternating, rather than all of one tree's runs and then the other's, so
    that a noisy stretch on the machine lands on both trees and not on one.
    """
    return [(run, item) for run in range(1, runs + 1) for item in items]


def prepare(plan: Plan, config: Config, tree: Tree, stack: ExitStack) -> Prepared:
    """Fresh database, migrate, seed; what it made is undone when ``stack`` closes.

    The reference gets the same seed without history (it stores nothing, and
    reads only who is in which channel, once, from the file dumped here).
    """
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
    sizes = replace(plan.sizes, history_messages=0) if config.is_reference else plan.sizes
    tokens, info["seed_seconds"] = seed(env, sizes, data_dir, tree.root)
    members = None
    if config.is_reference:
        members = data_dir / "members.json"
        dump_members(env, members)
    return Prepared(tree, env, tokens, info, members)


def measure(plan: Plan, config: Config, prepared: Prepared, run: int, log_dir: Path) -> list[dict]:
    """One run: a new server on the tree's database, every scenario, the server stopped."""
    tree = prepared.tree
    print(f"{config.name}: run {run} of {plan.runs}" + (f", {tree.name}" if tree.name else ""), flush=True)
    stem = "-".join(filter(None, ["server", tree.kind, config.name.replace("/", "-"), str(run)]))
    port = free_port()
    if config.layer in {"redis", "redis-core"}:
        flush_redis()  # its database is shared by every Redis configuration of the invocation
    if config.is_reference:
        server = Server(
            prepared.env, port, log_dir / f"{stem}.log", tree.root, reference_command(port, prepared.members)
        )
    else:
        server = Server(prepared.env, port, log_dir / f"{stem}.log", tree.root)
    server.start()
    try:
        ctx = scenarios.Context(
            http_base=f"http://127.0.0.1:{server.port}", tokens=prepared.tokens, server_pid=server.pid
        )
        found = uvloop.run(run_scenarios(ctx, config.scenarios(plan.scenarios), plan.sizes))
    finally:
        server.stop()
    for row in found:
        row.update(({"tree": tree.name} if tree.name else {}) | {"config": config.name, "run": run})
    return found


def trees_of(plan: Plan, config: Config) -> list[Tree]:
    """The trees a configuration is measured on: the reference is the work tree's, once."""
    return [Tree("")] if config.is_reference else plan.trees


def run_configs(
    plan: Plan,
    configs: list[Config],
    log_dir: Path,
    after_run: Callable[[list[dict], list[dict]], None] | None = None,
) -> tuple[list[dict], list[dict]]:
    """Every configuration's and tree's database and seed, then the runs going round all of them.

    ``after_run(rows, infos)`` is called after every run, so that a long
    invocation interrupted keeps what it measured.
    """
    with ExitStack() as stack:
        prepared = [
            (config, prepare(plan, config, tree, stack))
            for config in configs
            for tree in trees_of(plan, config)
        ]
        infos = [each.info for _, each in prepared]
        rows: list[dict] = []
        for run, (config, each) in schedule(prepared, plan.runs):
            rows.extend(measure(plan, config, each, run, log_dir))
            if after_run is not None:
                after_run(rows, infos)
        return rows, infos


def run_config(plan: Plan, config: Config, log_dir: Path) -> tuple[list[dict], list[dict]]:
    """One configuration: every tree's database and seed, then the runs alternating between the trees."""
    return run_configs(plan, [config], log_dir)


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
    """BENCH_FANOUT=200,1000 BENCH_ROOMS=50x10 BENCH_IDLE=2000 BENCH_CONNECTS=1000 BENCH_REST_CLIENTS=32
    BENCH_HISTORY=10000."""
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
        ("BENCH_HISTORY", "history_messages"),
    ):
        if value := os.environ.get(env):
            changes[key] = int(value)
    return replace(sizes, **changes)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help=f"tiny sizes, one run, {' and '.join(QUICK_CONFIGS)} only"
    )
    parser.add_argument(
        "--configs",
        default=os.environ.get("BENCH_CONFIGS", ""),
        help=f"comma-separated {REFERENCE} or SERVER/LAYER/DB (default: {','.join(DEFAULT_CONFIGS)})",
    )
    parser.add_argument(
        "--scenarios", default=os.environ.get("BENCH_SCENARIOS", ""), help=", ".join(ALL_SCENARIOS)
    )
    parser.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", "0")) or None)
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", "0")) or None)
    parser.add_argument(
        "--history",
        type=int,
        metavar="N",
        default=None,
        help="messages stored before the runs (BENCH_HISTORY; default 10,000, --quick 500), e.g. 1000000",
    )
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
    if args.history is not None:
        if args.history < 0:
            parser.error("--history must not be negative")
        sizes = replace(sizes, history_messages=args.history)
    try:
        configs = [Config.parse(c) for c in args.configs.split(",") if c.strip()] or [
            Config.parse(c) for c in (QUICK_CONFIGS if args.quick else DEFAULT_CONFIGS)
        ]
    except ValueError as exc:
        parser.error(str(exc))
    configs.sort(key=lambda config: not config.is_reference)  # each round of runs starts with it
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
        "notes": plan_notes(plan),
    }
    # Every figure against the reference's median of the same invocation, and the targets.
    result |= report.reference_results(result["summary"])
    if plan.baseline_sha:
        baseline, current = (tree.name for tree in plan.trees)
        result["baseline"] = {"ref": plan.baseline_ref, "commit": plan.baseline_sha, "tree": baseline}
        result["trees"] = [baseline, current]
    return result


def plan_notes(plan: Plan) -> list[str]:
    notes = [f"{plan.sizes.history_messages:,} messages stored before the runs (--history)."]
    skipped = [n for c in plan.configs if c.is_reference for n in plan.scenarios if n in NOT_ON_REFERENCE]
    if skipped:
        notes.append(f"{', '.join(skipped)}: not run on the {REFERENCE}, which serves no REST API.")
    return notes


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
    commit = git_commit()
    json_path, md_path = plan.out / f"{stamp}.json", plan.out / f"{stamp}.md"
    written: dict = {}

    def write(rows: list[dict], infos: list[dict]) -> None:
        # After every run, so a long invocation interrupted keeps what it measured.
        result = result_of(plan, stamp, commit, infos, rows, log_dir)
        json_path.write_text(json.dumps(result, indent=1))
        report.write_markdown(result, md_path)
        written.update(result=result, plots=report.write_plots(result, plan.out, stamp))

    with trees.measured(plan.baseline_sha) as measured:
        plan.trees = measured
        run_configs(plan, plan.configs, log_dir, after_run=write)
    result, plots = written["result"], written["plots"]
    print(md_path.read_text())
    print(f"wrote {json_path}, {md_path}" + "".join(f", {p}" for p in plots))
    return 1 if any(row["flagged"] for row in result["summary"]) else 0


if __name__ == "__main__":
    sys.exit(main())
