"""The WebSocket fan-out benchmark: one gateway process, thousands of dashboard sockets, RabbitMQ.

Run ``uv run --frozen python bench/ws.py`` (``--quick`` for a smoke run, ``--help`` for the
knobs). A benchmark, not a test: it prints numbers and judges them against the target, it never
fails on them.

What runs, each in a process of its own as in production:

* the **gateway**, built as ``novitrac run gateway`` builds it (the kit's ``create_app`` on a
  :class:`~novitrac_kit.bus.rabbitmq.RabbitBus`, uvicorn with its defaults, tracing sampled with
  no exporter), on exchanges of the benchmark's own (``bench_<hex>.*``, removed at the end);
* **clients**: ``--sockets`` WebSockets opened with the ``websockets`` library, spread over
  ``--client-processes`` processes, socket ``i`` authenticated for organisation ``i % --orgs``;
* the **publisher** (this process): live signals shaped like ``live.transcript.line`` at
  ``--rate`` per second, organisation after organisation, through ``RabbitBus.publish_live``.

Each signal carries the time it was published; a client takes the time it received it (one
machine, one clock), so a latency is broker, gateway fan-out and client together. An event
published for an organisation is expected once on every socket of that organisation. The
gateway's CPU comes from ``/proc``, as does RabbitMQ's and how busy the machine was.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import gc
import multiprocessing
import os
import platform
import resource
import secrets
import signal
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event as EventType
from typing import Any

import aio_pika
import httpx
from websockets.asyncio.client import ClientConnection, connect

from measure import DiscardingExporter, cpu_seconds, percentile
from novitrac_contracts.envelope import Envelope
from novitrac_kit.bus.rabbitmq import RabbitBus
from novitrac_kit.testing.servers import free_port
from novitrac_kit.testing.tokens import JwksServer, TokenIssuer

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
P99_TARGET_MS = 100.0
"""Milliseconds from publish to a client's receipt, at the 99th percentile."""

_SENT_AT = '"sent_at":'
_PING = '{"type":"ping"}'
_PONG = '{"type":"pong"}'


@dataclass(frozen=True)
class Setup:
    """What every process of one run needs to know."""

    name: str
    amqp_url: str
    port: int
    jwks_url: str

    @property
    def exchanges(self) -> tuple[str, str, str]:
        """The domain events, live signals and dead-letter exchanges."""
        return f"{self.name}.events", f"{self.name}.live", f"{self.name}.dlx"

    def bus(self, role: str) -> RabbitBus:
        """A bus on the benchmark's exchanges."""
        events, live, dlx = self.exchanges
        return RabbitBus(
            self.amqp_url,
            connection_name=f"{self.name}.{role}",
            exchange=events,
            live_exchange=live,
            dead_letter_exchange=dlx,
        )


def _raise_file_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --- the gateway process -----------------------------------------------------------------------


def serve_gateway(setup: Setup) -> None:
    """Run the gateway as ``novitrac run gateway`` does, on the benchmark's exchanges."""
    import uvicorn

    from novitrac_gateway.config import Settings
    from novitrac_gateway.main import service
    from novitrac_kit.config import load_settings
    from novitrac_kit.runtime import create_app
    from novitrac_kit.telemetry import configure_logging, configure_tracing, instrument_httpx

    _raise_file_limit()
    settings = load_settings(
        Settings,
        database_url="postgresql://bench@127.0.0.1:5432/unused",
        amqp_url=setup.amqp_url,
        auth_jwks_url=setup.jwks_url,
        environment="development",
        internal_token=secrets.token_urlsafe(32),
        # Every socket comes from 127.0.0.1: the per-address limit would refuse most of them.
        address_rate_limit=1e6,
        address_rate_burst=1_000_000,
    )
    configure_logging(service.name, level="ERROR", fmt="json")
    configure_tracing(
        service.name, otlp_endpoint=None, sample_ratio=1.0, exporter=DiscardingExporter()
    )
    instrument_httpx()
    app = create_app(service, settings=settings, bus=setup.bus("gateway"), owns_bus=True)
    serve = functools.partial(
        uvicorn.run,
        app,
        host="127.0.0.1",
        port=setup.port,
        log_config=None,
        access_log=False,
        ws_per_message_deflate=False,
    )
    gc.collect()
    gc.freeze()
    profile = os.environ.get("BENCH_WS_PROFILE")
    if not profile:
        serve()
        return
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        serve()
    finally:
        profiler.disable()
        profiler.dump_stats(profile)


# --- the client processes ----------------------------------------------------------------------


@dataclass
class Received:
    """What one client process saw."""

    sockets: int
    messages: int
    latencies: list[float]
    cpu: float
    closed: int


def clients(
    setup: Setup,
    tokens: list[str],
    report: Queue[Any],
    go: EventType,
    stop: EventType,
    measure_from: Synchronized[float],
) -> None:
    """A client process: open its sockets, report, read until told to stop, report again."""
    _raise_file_limit()
    try:
        received = asyncio.run(_clients(setup, tokens, report, go, stop, measure_from))
        report.put(("done", received))
    except BaseException as error:
        report.put(("failed", repr(error)))
        raise


async def _clients(
    setup: Setup,
    tokens: list[str],
    report: Queue[Any],
    go: EventType,
    stop: EventType,
    start: Synchronized[float],
) -> Received:
    url = f"ws://127.0.0.1:{setup.port}/v1/ws?access_token="
    gate = asyncio.Semaphore(64)
    compression = None  # the gateway, as novitrac run serves it, does not compress frames

    async def open_one(token: str) -> ClientConnection:
        async with gate:
            return await connect(
                url + token, max_size=None, ping_interval=None, compression=compression
            )

    sockets = await asyncio.gather(*(open_one(token) for token in tokens))
    report.put(("ready", len(sockets)))
    await asyncio.to_thread(go.wait)
    latencies: list[float] = []
    counted = [0, 0]
    measure_from = start.value

    async def read(socket: ClientConnection) -> None:
        try:
            async for message in socket:
                now = time.time()
                assert isinstance(message, str)
                start = message.find(_SENT_AT)
                if start < 0:
                    if message == _PING:
                        await socket.send(_PONG)
                    continue
                start += len(_SENT_AT)
                sent_at = float(message[start : message.index(",", start)])
                if sent_at >= measure_from:
                    counted[0] += 1
                    latencies.append(now - sent_at)
        except Exception:
            counted[1] += 1

    cpu = time.process_time()
    readers = [asyncio.create_task(read(socket)) for socket in sockets]
    await asyncio.to_thread(stop.wait)
    cpu = time.process_time() - cpu
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    await asyncio.gather(*(socket.close() for socket in sockets), return_exceptions=True)
    return Received(len(sockets), counted[0], latencies, cpu, counted[1])


# --- the publisher -----------------------------------------------------------------------------


async def publish(
    setup: Setup, orgs: list[uuid.UUID], rate: float, measure_from: float, seconds: float
) -> dict[uuid.UUID, int]:
    """Publish live signals at ``rate`` from now until ``seconds`` after ``measure_from``.

    Returns:
        Signals per organisation published from ``measure_from`` on.
    """
    counts = dict.fromkeys(orgs, 0)
    call_ids = {org: uuid.uuid4() for org in orgs}
    text = "Thanks for calling, how can I help you with your booking today? " * 2
    async with setup.bus("publisher") as bus:
        start = time.time()
        total = int((measure_from + seconds - start) * rate)
        n = 0
        while n < total:
            due = min(total, int((time.time() - start) * rate) + 1)
            while n < due:
                org = orgs[n % len(orgs)]
                now = time.time()
                await bus.publish_live(
                    Envelope(
                        type="live.transcript.line",
                        producer="bench",
                        org_id=org,
                        data={
                            "sent_at": now,
                            "call_id": str(call_ids[org]),
                            "org_id": str(org),
                            "index": n,
                            "speaker": "agent",
                            "text": text,
                        },
                    )
                )
                if now >= measure_from:
                    counts[org] += 1
                n += 1
            await asyncio.sleep(0.001)
        return counts


# --- /proc -------------------------------------------------------------------------------------


def process_rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def rabbitmq_cpu() -> float:
    """CPU seconds used so far by every RabbitMQ (``beam.smp``) process."""
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                line = stat.read()
        except OSError:
            continue
        if line[line.index("(") + 1 : line.rindex(")")] == "beam.smp":
            total += cpu_seconds(int(pid))
    return total


def machine_busy() -> tuple[float, float]:
    """Busy and total CPU seconds of the whole machine so far."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(fields[:8]) - idle) / tick, sum(fields[:8]) / tick


# --- the run -----------------------------------------------------------------------------------


async def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    """Wait until the gateway answers ``/readyz``."""
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            if process.poll() is not None:
                raise RuntimeError("the gateway process stopped during start-up")
            try:
                if (await client.get(f"{url}/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the gateway did not become ready")


async def gateway_metric(url: str, series: str) -> float:
    """One series of the gateway's ``/metrics`` (0 when absent)."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{url}/metrics")).text
    for line in text.splitlines():
        if line.startswith(series):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def remove_exchanges(setup: Setup) -> None:
    """Delete the benchmark's exchanges."""
    connection = await aio_pika.connect(setup.amqp_url)
    async with connection:
        channel = await connection.channel()
        for exchange in setup.exchanges:
            await channel.exchange_delete(exchange)


def run(args: argparse.Namespace) -> None:
    """One run: start everything, publish, collect, print."""
    issuer = TokenIssuer()
    orgs = [uuid.uuid4() for _ in range(args.orgs)]
    tokens = [
        issuer.issue(org_id=orgs[i % len(orgs)], user_id=uuid.uuid4(), ttl=3600)
        for i in range(args.sockets)
    ]
    with JwksServer(issuer) as jwks:
        setup = Setup(
            name=f"bench_{uuid.uuid4().hex[:10]}",
            amqp_url=args.amqp_url,
            port=free_port(),
            jwks_url=jwks.url,
        )
        url = f"http://127.0.0.1:{setup.port}"
        gateway = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve-gateway",
                setup.name,
                str(setup.port),
                jwks.url,
                "--amqp-url",
                args.amqp_url,
            ]
        )
        context = multiprocessing.get_context("spawn")
        report: Queue[Any] = context.Queue()
        go, stop = context.Event(), context.Event()
        started: list[multiprocessing.process.BaseProcess] = []
        try:
            asyncio.run(wait_ready(url, gateway))
            share = -(-args.sockets // args.client_processes)
            start = context.Value("d", 0.0)
            for index in range(args.client_processes):
                part = tokens[index * share : (index + 1) * share]
                started.append(
                    context.Process(target=clients, args=(setup, part, report, go, stop, start))
                )
            connecting = time.time()
            for client in started:
                client.start()
            for _ in started:
                kind, value = report.get(timeout=300)
                if kind != "ready":
                    raise RuntimeError(f"a client process failed: {value}")
            print(
                f"{args.sockets} sockets open in {time.time() - connecting:.1f} s over "
                f"{args.client_processes} client processes, {args.orgs} organisations"
            )
            measure_from = time.time() + args.warmup
            start.value = measure_from
            go.set()
            gateway_cpu, rabbit_cpu, busy = (
                cpu_seconds(gateway.pid),
                rabbitmq_cpu(),
                machine_busy(),
            )
            publisher_cpu = time.process_time()
            wall = time.time()
            counts = asyncio.run(publish(setup, orgs, args.rate, measure_from, args.duration))
            wall = time.time() - wall
            gateway_cpu = cpu_seconds(gateway.pid) - gateway_cpu
            rabbit_cpu = rabbitmq_cpu() - rabbit_cpu
            busy_after = machine_busy()
            publisher_cpu = time.process_time() - publisher_cpu
            time.sleep(args.settle)
            slow = asyncio.run(
                gateway_metric(url, 'novitrac_gateway_websocket_closed_total{reason="slow"}')
            )
            rss = process_rss_mib(gateway.pid)
            stop.set()
            results: list[Received] = []
            for _ in started:
                kind, value = report.get(timeout=300)
                if kind != "done":
                    raise RuntimeError(f"a client process failed: {value}")
                results.append(value)
        finally:
            stop.set()
            for client in started:
                client.join(timeout=30)
                if client.is_alive():
                    client.terminate()
            gateway.send_signal(signal.SIGINT)
            try:
                gateway.wait(timeout=30)
            except subprocess.TimeoutExpired:
                print("the gateway did not stop within 30 s; killed")
                gateway.kill()
            asyncio.run(remove_exchanges(setup))

    per_org = [0] * len(orgs)
    for i in range(args.sockets):
        per_org[i % len(orgs)] += 1
    expected = sum(counts[org] * per_org[i] for i, org in enumerate(orgs))
    published = sum(counts.values())
    delivered = sum(r.messages for r in results)
    latencies = sorted(latency for r in results for latency in r.latencies)
    client_cpu = sum(r.cpu for r in results)
    machine = (busy_after[0] - busy[0]) / (busy_after[1] - busy[1])
    ours = (gateway_cpu + client_cpu + publisher_cpu + rabbit_cpu) / (busy_after[1] - busy[1])
    print(
        f"published {published} signals in the measured {args.duration:.0f} s "
        f"({published / args.duration:,.0f}/s), expected {expected:,} deliveries "
        f"({expected / args.duration:,.0f}/s)"
    )
    print(
        f"delivered {delivered:,} ({100 * delivered / max(1, expected):.2f} %), "
        f"sockets dropped as slow {slow:.0f}, client read errors {sum(r.closed for r in results)}"
    )
    if latencies:
        p50, p95, p99 = (1000 * percentile(latencies, q) for q in (0.50, 0.95, 0.99))
        worst = 1000 * latencies[-1]
        print(
            f"latency publish -> client (ms): p50 {p50:.1f}  p95 {p95:.1f}  p99 {p99:.1f}  "
            f"max {worst:.1f}  mean {1000 * statistics.fmean(latencies):.1f}"
        )
        met = p99 < P99_TARGET_MS
        print(f"target p99 < {P99_TARGET_MS:.0f} ms: {'met' if met else 'MISSED'} ({p99:.1f} ms)")
    print(
        f"CPU (share of one core): gateway {100 * gateway_cpu / wall:.0f} %, "
        f"clients {100 * client_cpu / wall:.0f} %, publisher {100 * publisher_cpu / wall:.0f} %, "
        f"RabbitMQ {100 * rabbit_cpu / wall:.0f} %; machine {100 * machine:.0f} % busy over "
        f"{os.cpu_count()} cores, {100 * max(0.0, machine - ours):.0f} % of it others; "
        f"gateway RSS {rss:.0f} MiB; "
        f"gateway CPU per delivery {1e6 * gateway_cpu / max(1, delivered):.0f} µs"
    )


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments and run the benchmark (or, internally, its gateway process)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    parser.add_argument("--sockets", type=int, default=2000, help="WebSockets in all")
    parser.add_argument("--rate", type=float, default=500.0, help="live signals per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds published first")
    parser.add_argument("--orgs", type=int, default=100, help="organisations sharing the sockets")
    parser.add_argument("--client-processes", type=int, default=2, help="processes of sockets")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds to wait at the end")
    parser.add_argument("--quick", action="store_true", help="200 sockets for 5 s")
    parser.add_argument("--amqp-url", default=DEFAULT_AMQP_URL)
    parser.add_argument("--serve-gateway", nargs=3, metavar=("NAME", "PORT", "JWKS_URL"))
    args = parser.parse_args(argv)
    if args.serve_gateway:
        name, port, jwks_url = args.serve_gateway
        serve_gateway(Setup(name, args.amqp_url, int(port), jwks_url))
        return
    if args.quick:
        args.sockets, args.duration, args.warmup = 200, 5.0, 1.0
    print(
        f"bench/ws.py {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; {args.sockets} sockets, {args.rate:.0f} signals/s, "
        f"{args.orgs} organisations"
    )
    run(args)


if __name__ == "__main__":
    main()
