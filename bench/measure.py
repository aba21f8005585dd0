"""What every benchmark measures the same way: the machine, percentiles and CPU time."""

from __future__ import annotations

import os
import platform
import time

SPEED_STEPS = 200_000


def machine() -> str:
    """Cores, CPU model, memory and Python, on one line."""
    model = "unknown CPU"
    memory = "? GiB"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            models = (line.split(":", 1)[1] for line in cpuinfo if line.startswith("model name"))
            model = next(models, model).strip()
        with open("/proc/meminfo") as meminfo:
            kib = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
            memory = f"{kib / 2**20:.0f} GiB"
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores, {model}, {memory}, "
        f"Python {platform.python_version()} ({platform.system()} {platform.release()}); "
        f"{speed()}"
    )


def speed() -> str:
    """How fast this machine runs Python right now: ns per step of a fixed loop (best of five).

    A shared host can lend a virtual machine's cores at very different speeds from one minute to
    the next (seen: 60 to 170 ns per step on one machine, idle), which no CPU-time figure shows;
    printed with every run so that runs on slow minutes can be told apart.
    """
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        total = 0
        for step in range(SPEED_STEPS):
            total += step
        best = min(best, time.perf_counter() - started)
    return f"Python speed {best / SPEED_STEPS * 1e9:.0f} ns per loop step"


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of ``values`` (``fraction`` from 0 to 1); NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
