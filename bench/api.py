"""The API benchmark: authenticated reads through the gateway, beside a bare route, on this machine.

Run ``uv run python bench/api.py`` (``--quick`` for a smoke run, ``--help`` for the knobs). It
creates a database of its own (``bench_api_<hex>``), migrates auth into it, starts auth and the
gateway as their own processes with ``novitrac run`` (RabbitMQ as the bus, as in production),
signs a user up through the gateway (the one-time code is read from auth's outbox), logs in, and
then measures, side by side in one run:

* ``bare``: ``GET /healthz`` answered by the gateway itself;
* ``authenticated``: ``GET /v1/auth/me`` with the access token: the gateway verifies the token,
  forwards to auth, which verifies it again and reads the user, organisation and memberships from
  PostgreSQL.

Each route is measured twice: *closed loop* (``--connections`` clients sending back to back: the
most the route can serve) and *open loop* (requests started on a fixed schedule at ``--rate`` per
second whether or not earlier ones have finished, latency counted from the scheduled start, so a
stall is not hidden by the clients waiting for it). After each measurement it prints the CPU time
per request of the gateway, of auth and of the PostgreSQL backends serving the benchmark's
database (PostgreSQL on this machine). The load comes from a small HTTP/1.1 client on
raw asyncio streams in this process, cheap enough (tens of microseconds a request) not to be what
is measured. A benchmark, not a test: it prints numbers and judges them against the targets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import asyncpg
import httpx

from measure import cpu_seconds, machine, percentile
from novitrac_kit import migrations
from novitrac_kit.dsn import sqlalchemy_url
from novitrac_kit.service import discover
from novitrac_kit.testing.servers import free_port

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
HOST = "127.0.0.1"
# One internal token per run, shared by auth and the gateway (the API key exchange needs it).
INTERNAL_TOKEN = secrets.token_urlsafe(32)

THROUGHPUT_TARGET = 1000.0
"""Authenticated requests per second through the gateway."""
P99_TARGET_MS = 50.0
"""Milliseconds, at the target rate."""

START_TIMEOUT = 60.0


# --- the load ---------------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection that sends a fixed request and reads whole responses."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def send(self, request: bytes) -> int:
        """Send ``request`` and read its response; returns the status code."""
        self._writer.write(request)
        status_line = await self._reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        chunked = False
        while (line := await self._reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            while size := int((await self._reader.readline()).split(b";")[0], 16):
                await self._reader.readexactly(size + 2)
            await self._reader.readline()
        elif length:
            await self._reader.readexactly(length)
        return status

    def close(self) -> None:
        self._writer.close()


def request_bytes(path: str, token: str | None) -> bytes:
    """A keep-alive GET of ``path``, with the bearer token when given."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {HOST}", "Accept: application/json"]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class Result:
    """What one measurement saw: latencies in ms and counts by outcome."""

    seconds: float
    latencies: list[float]
    failures: int
    statuses: dict[int, int]

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def summary(self) -> str:
        p50, p95, p99 = (percentile(self.latencies, f) for f in (0.50, 0.95, 0.99))
        wrong = {s: n for s, n in self.statuses.items() if s != 200}
        return (
            f"{self.rate:>8,.0f} req/s   p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  p99 {p99:6.1f} ms"
            f"  max {max(self.latencies, default=float('nan')):6.1f} ms"
            + (f"   non-200: {wrong}" if wrong else "")
            + (f"   failed: {self.failures}" if self.failures else "")
        )


async def closed_loop(port: int, request: bytes, connections: int, seconds: float) -> Result:
    """``connections`` clients sending ``request`` back to back for ``seconds``."""
    clients = [await Connection.open(HOST, port) for _ in range(connections)]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    failures = 0
    end = time.perf_counter() + seconds

    async def client(connection: Connection) -> None:
        nonlocal failures
        while (started := time.perf_counter()) < end:
            try:
                status = await connection.send(request)
            except (ConnectionError, asyncio.IncompleteReadError):
                failures += 1
                return
            latencies.append(1000 * (time.perf_counter() - started))
            statuses[status] = statuses.get(status, 0) + 1

    began = time.perf_counter()
    await asyncio.gather(*(client(c) for c in clients))
    elapsed = time.perf_counter() - began
    for connection in clients:
        connection.close()
    return Result(elapsed, latencies, failures, statuses)


async def open_loop(
    port: int, request: bytes, rate: float, seconds: float, connections: int
) -> Result:
    """Requests started every ``1/rate`` s for ``seconds``, each timed from its scheduled start.

    A pool of ``connections`` clients takes the scheduled requests in turn; when every client is
    busy, the next request waits, and that wait is part of its latency.
    """
    clients = [await Connection.open(HOST, port) for _ in range(connections)]
    total = int(rate * seconds)
    interval = 1.0 / rate
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    failures = 0
    next_index = 0
    start = time.perf_counter() + 0.05

    async def client(connection: Connection) -> None:
        nonlocal next_index, failures
        while next_index < total:
            index = next_index
            next_index += 1
            scheduled = start + index * interval
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                status = await connection.send(request)
            except (ConnectionError, asyncio.IncompleteReadError):
                failures += 1
                return
            latencies.append(1000 * (time.perf_counter() - scheduled))
            statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(client(c) for c in clients))
    elapsed = time.perf_counter() - start
    for connection in clients:
        connection.close()
    return Result(elapsed, latencies, failures, statuses)


# --- the platform -----------------------------------------------------------------------------


@dataclass
class Platform:
    """Auth and the gateway, each its own ``novitrac run`` process."""

    auth: subprocess.Popen[bytes]
    gateway: subprocess.Popen[bytes]
    auth_port: int
    gateway_port: int

    @property
    def pids(self) -> dict[str, int]:
        return {"gateway": self.gateway.pid, "auth": self.auth.pid}


def environment(database_url: str, amqp_url: str, auth_port: int) -> dict[str, str]:
    """What both processes share: the infrastructure, quiet logs, auth's key address."""
    return {
        **os.environ,
        "NOVITRAC_DATABASE_URL": database_url,
        "NOVITRAC_AMQP_URL": amqp_url,
        "NOVITRAC_ENVIRONMENT": "development",
        "NOVITRAC_LOG_LEVEL": "WARNING",
        "NOVITRAC_AUTH_JWKS_URL": f"http://{HOST}:{auth_port}/.well-known/jwks.json",
        "AUTH_KEY_ENCRYPTION_KEY": "bench-only-key-encryption-secret",
        # The gateway exchanges API keys on auth's /internal route: both hold this run's token.
        "NOVITRAC_INTERNAL_TOKEN": INTERNAL_TOKEN,
    }


def start(name: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "novitrac_kit.cli", "run", name],
        env={**env, "NOVITRAC_HTTP_PORT": str(port)},
    )


async def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"{url} exited with {process.returncode} during start-up")
            try:
                if (await http.get(f"{url}/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit(f"{url} was not ready within {START_TIMEOUT:.0f} s")


@contextmanager
def platform(database_url: str, amqp_url: str, rate_limit: float) -> Iterator[Platform]:
    auth_port, gateway_port = free_port(), free_port()
    env = environment(database_url, amqp_url, auth_port)
    gateway_env = {
        **env,
        "GATEWAY_AUTH_URL": f"http://{HOST}:{auth_port}",
        "GATEWAY_ORG_RATE_LIMIT": str(rate_limit),
        "GATEWAY_ORG_RATE_BURST": str(rate_limit),
        "GATEWAY_ADDRESS_RATE_LIMIT": str(rate_limit),
        "GATEWAY_ADDRESS_RATE_BURST": str(rate_limit),
    }
    auth = start("auth", auth_port, env)
    gateway = start("gateway", gateway_port, gateway_env)
    try:
        yield Platform(auth, gateway, auth_port, gateway_port)
    finally:
        for process in (gateway, auth):
            process.terminate()
        for process in (gateway, auth):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


async def sign_up(gateway: str, database_url: str) -> str:
    """A verified user's access token, obtained through the gateway as a client would."""
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    password = "correct horse battery staple"
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as http:
        response = await http.post(
            "/v1/auth/signup",
            json={
                "email": email,
                "password": password,
                "name": "Bench",
                "organization_name": "Bench Ltd",
            },
        )
        response.raise_for_status()
        code = await one_time_code(database_url, email)
        verified = await http.post("/v1/auth/verify", json={"email": email, "code": code})
        verified.raise_for_status()
        token: str = verified.json()["access_token"]
        return token


async def one_time_code(database_url: str, email: str) -> str:
    """The sign-up code auth put in its outbox for ``email`` (the email itself is not needed)."""
    connection = await asyncpg.connect(database_url)
    try:
        envelope = await connection.fetchval(
            "SELECT envelope FROM auth.outbox WHERE type = 'auth.otp.requested.v1' "
            "AND envelope->'data'->>'email' = $1 ORDER BY created_at DESC LIMIT 1",
            email,
        )
    finally:
        await connection.close()
    if envelope is None:
        raise SystemExit("auth issued no one-time code")
    return str(json.loads(envelope)["data"]["code"])


# --- the run ----------------------------------------------------------------------------------


async def create_database(admin_url: str) -> str:
    name = f"bench_api_{uuid.uuid4().hex[:10]}"
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return urlsplit(admin_url)._replace(path=f"/{name}").geturl()


async def drop_database(admin_url: str, database_url: str) -> None:
    name = urlsplit(database_url).path.lstrip("/")
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def backend_cpu(database: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving ``database``, by process id.

    Backends are found by the database name in their process title, so PostgreSQL must run on
    this machine; a backend that exits during a measurement takes its CPU time with it, so when
    connections come and go (the benchmark says how many came) the PostgreSQL figure is low.
    """
    marker = f" {database} ".encode()
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                if marker not in cmdline.read():
                    continue
            # Run time in ns from the scheduler: a backend runs in bursts much shorter than the
            # clock tick that /proc/<pid>/stat counts in, and is often not charged for them.
            with open(f"/proc/{entry}/schedstat") as schedstat:
                found[int(entry)] = int(schedstat.read().split()[0]) / 1e9
        except OSError:
            continue
    return found


async def measure(args: argparse.Namespace, database_url: str) -> None:
    database = urlsplit(database_url).path.lstrip("/")
    with platform(database_url, args.amqp_url, rate_limit=1e6) as running:
        gateway = f"http://{HOST}:{running.gateway_port}"
        await wait_ready(f"http://{HOST}:{running.auth_port}", running.auth)
        await wait_ready(gateway, running.gateway)
        token = await sign_up(gateway, database_url)
        routes = {
            "bare GET /healthz": request_bytes("/healthz", None),
            "authenticated GET /v1/auth/me": request_bytes("/v1/auth/me", token),
        }
        for request in routes.values():  # warm both processes and their pools
            await closed_loop(running.gateway_port, request, args.connections, 1.0)

        results: dict[tuple[str, str], Result] = {}
        for name, request in routes.items():
            for mode in ("closed", "open"):
                cpu_before = {role: cpu_seconds(pid) for role, pid in running.pids.items()}
                backends_before = backend_cpu(database)
                if mode == "closed":
                    result = await closed_loop(
                        running.gateway_port, request, args.connections, args.duration
                    )
                else:
                    result = await open_loop(
                        running.gateway_port, request, args.rate, args.duration, args.pool
                    )
                cpu = {
                    role: cpu_seconds(pid) - cpu_before[role] for role, pid in running.pids.items()
                }
                backends_after = backend_cpu(database)
                cpu["postgres"] = sum(
                    seconds - backends_before.get(pid, 0.0)
                    for pid, seconds in backends_after.items()
                )
                churn = len(backends_after.keys() - backends_before.keys())
                results[(name, mode)] = result
                label = (
                    f"{args.connections} connections, back to back"
                    if mode == "closed"
                    else f"paced at {args.rate:,.0f}/s"
                )
                print(f"  {name:<32} {label:<30} {result.summary()}")
                per_request = ", ".join(
                    f"{role} {1e6 * seconds / max(1, len(result.latencies)):,.0f}"
                    for role, seconds in cpu.items()
                )
                print(
                    f"  {'':<32} CPU per request (µs): {per_request}"
                    + (f" ({churn} connections opened, closed ones uncounted)" if churn else "")
                )

    bare = results[("bare GET /healthz", "closed")].rate
    authenticated = results[("authenticated GET /v1/auth/me", "closed")]
    paced = results[("authenticated GET /v1/auth/me", "open")]
    p99 = percentile(paced.latencies, 0.99)
    print()
    print(f"  authenticated / bare throughput: {authenticated.rate / bare:.2f}")
    met = authenticated.rate >= THROUGHPUT_TARGET
    print(
        f"  target >= {THROUGHPUT_TARGET:,.0f} authenticated req/s: "
        f"{'met' if met else 'MISSED'} ({authenticated.rate:,.0f}/s)"
    )
    met = p99 < P99_TARGET_MS and paced.rate >= 0.98 * args.rate
    print(
        f"  target p99 < {P99_TARGET_MS:.0f} ms at {args.rate:,.0f}/s: "
        f"{'met' if met else 'MISSED'} (p99 {p99:.1f} ms at {paced.rate:,.0f}/s)"
    )


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, run both routes in both modes, print the results and clean up."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=32, help="closed-loop clients")
    parser.add_argument("--rate", type=float, default=THROUGHPUT_TARGET, help="paced req/s")
    parser.add_argument("--pool", type=int, default=64, help="open-loop connection pool")
    parser.add_argument("--quick", action="store_true", help="2-second measurements")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help="PostgreSQL (admin)")
    parser.add_argument("--amqp-url", default=DEFAULT_AMQP_URL, help="RabbitMQ")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration = 2.0

    print(f"API benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"  machine:  {machine()}")
    print(f"  command:  {' '.join(['python', 'bench/api.py', *(argv or sys.argv[1:])])}")

    async def run() -> None:
        database_url = await create_database(args.database_url)
        try:
            auth = discover()["auth"]
            assert auth.database is not None
            await asyncio.to_thread(
                migrations.upgrade, auth.database.migrations, sqlalchemy_url(database_url)
            )
            await measure(args, database_url)
        finally:
            await drop_database(args.database_url, database_url)

    asyncio.run(run())


if __name__ == "__main__":
    main()
