"""What every benchmark measures the same way: the machine, percentiles and CPU time."""

from __future__ import annotations

import os
import platform


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
        f"Python {platform.python_version()} ({platform.system()} {platform.release()})"
    )


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
