"""What every benchmark measures the same way: the machine, percentiles and CPU time."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

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
    return (
        f"Python speed {best / SPEED_STEPS * 1e9:.0f} ns per loop step, "
        f"system call {system_call_ns():.0f} ns, wake-up round trip {wake_up_us():.0f} µs"
    )


def system_call_ns(calls: int = 100_000) -> float:
    """Nanoseconds per trivial system call (``getppid``), Python's own cost included."""
    started = time.perf_counter()
    for _ in range(calls):
        os.getppid()
    return (time.perf_counter() - started) / calls * 1e9


def wake_up_us(trips: int = 2_000) -> float:
    """Microseconds for a byte to go to a sleeping child process through a pipe and back.

    Every message between this platform's processes wakes one up; on a virtual machine a wake-up
    can cost far more than the work it brings, which the Python speed above does not show.
    """
    child_reads, parent_writes = os.pipe()
    parent_reads, child_writes = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child echoes every byte until its pipe closes, and only that
        try:
            os.close(parent_writes)
            os.close(parent_reads)
            while os.read(child_reads, 1):
                os.write(child_writes, b"x")
        finally:
            os._exit(0)
    os.close(child_reads)
    os.close(child_writes)
    try:
        started = time.perf_counter()
        for _ in range(trips):
            os.write(parent_writes, b"x")
            os.read(parent_reads, 1)
        return (time.perf_counter() - started) / trips * 1e6
    finally:
        os.close(parent_writes)
        os.close(parent_reads)
        os.waitpid(pid, 0)


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


class DiscardingExporter(SpanExporter):
    """Takes every finished span and drops it: spans are recorded as a service with a collector
    records them (the kit records nothing while no exporter is attached), minus the export."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS
