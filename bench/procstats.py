"""CPU and memory of the server process (from /proc) and of the load tool itself (getrusage)."""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SATURATED = 0.9  # the load tool's share of its core above which a figure measures the tool


def server_cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (fields 14 and 15 of /proc/PID/stat), in seconds."""
    with open(f"/proc/{pid}/stat") as handle:
        stat = handle.read()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def server_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuWindow:
    """CPU shares of the server and the load tool over one measured interval."""

    server_pid: int | None
    wall: float = 0.0
    server_cpu: float | None = None  # fraction of one core
    tool_cpu: float = 0.0

    def __enter__(self) -> CpuWindow:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self._wall = time.perf_counter()
        self._tool = own_cpu_seconds()
        self._server = server_cpu_seconds(self.server_pid) if self.server_pid else None

    def stop(self) -> None:
        self.wall = time.perf_counter() - self._wall
        self.tool_cpu = (own_cpu_seconds() - self._tool) / self.wall if self.wall else 0.0
        if self._server is not None:
            self.server_cpu = (server_cpu_seconds(self.server_pid) - self._server) / self.wall

    @property
    def tool_saturated(self) -> bool:
        return self.tool_cpu >= SATURATED

    def as_dict(self) -> dict:
        return {
            "server_cpu": None if self.server_cpu is None else round(self.server_cpu, 3),
            "tool_cpu": round(self.tool_cpu, 3),
            "tool_saturated": self.tool_saturated,
        }
