"""The bridge benchmark: simultaneous calls from the sandbox through one voice-ai process.

Run ``uv run python bench/bridge.py`` (``--calls``, ``--seconds``, ``--help``). It creates a
database of its own (``bench_bridge_<hex>``), migrates voice-ai into it and starts:

* voice-ai as its own process with ``novitrac run voice-ai`` (RabbitMQ as the bus, as in
  production): the process measured;
* the sandbox's Twilio stand-in in a process of its own, and its ElevenLabs stand-in in another
  (as under ``novitrac sandbox``, but split so that neither starves the other), each instrumented
  by this script to time every frame it sends and receives;
* in this process, a telephony stand-in that answers the voice webhook with ``<Connect><Stream>``
  TwiML and a freshly minted stream token, and the ``twilio`` SDK placing the calls.

Each call: the phone answers and stays silent (50 frames of μ-law silence a second flow to the
agent through the bridge), the agent speaks a long first message (ten 100 ms chunks a second flow
to the phone through the bridge), the phone hangs up after ``--seconds``. Frames are matched by
their position in each call's stream (the bridge forwards in order and drops none), so for every
frame: *caller → agent* latency is its arrival at the ElevenLabs stand-in minus its departure
from the Twilio stand-in, *agent → caller* the reverse; both include the loopback hops and the two
sandboxes' own scheduling, so they bound what the bridge adds from above. Frames lost are those
sent by one side and never received by the other. Reported over frames sent while every call was
live at once (the steady state) and over the whole run, with the CPU the voice-ai process used
over the steady state. A benchmark, not a test: it prints numbers and judges them against the
targets (200 calls in one process using at most one core, p99 under 5 ms, zero frames lost).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import jwt
import uvicorn
from fastapi import FastAPI, Request, Response
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from measure import cpu_seconds, machine, percentile
from novitrac_kit import migrations
from novitrac_kit.dsn import sqlalchemy_url
from novitrac_kit.service import discover
from novitrac_kit.testing.servers import free_port, running
from novitrac_kit.testing.tokens import JwksServer, TokenIssuer
from novitrac_sandbox.config import (
    SANDBOX_ACCOUNT_SID,
    SANDBOX_AUTH_TOKEN,
    SANDBOX_ELEVENLABS_API_KEY,
    SANDBOX_ELEVENLABS_WEBHOOK_SECRET,
    SandboxConfig,
)

HOST = "127.0.0.1"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
STREAM_SECRET = "bench-only-stream-token-secret-0123456789"
CALLER = "+14155550100"
CALLEE = "+14155550199"
P99_TARGET_MS = 5.0
CPU_TARGET = 1.0
START_TIMEOUT = 60.0
SECONDS_PER_CHARACTER = 0.06
"""How long the sandbox agent takes per character of text (its synthetic voice)."""
CUT_OFF = 1.0
"""Seconds before a hang-up within which an undelivered frame counts as cut off, not lost."""
BRIDGE_MEDIA_PREFIX = '{"event":"media"'
"""How the bridge's media messages to Twilio begin (the phone's side tells them apart by it)."""


# --- the instrumented sandbox processes -------------------------------------------------------


def run_twilio(port: int) -> None:
    """The Twilio stand-in, timing each media frame it sends and each one it receives."""
    from novitrac_sandbox.phone import PhoneBook
    from novitrac_sandbox.twilio import media
    from novitrac_sandbox.twilio.app import create_app

    sent: dict[str, list[float]] = defaultdict(list)
    received: dict[str, list[float]] = defaultdict(list)
    send_media, receive = media.MediaStream._send_media, media.MediaStream._receive

    def timed_send(self: Any, socket: Any, frame: int, payload: str) -> None:
        sent[self.call_sid].append(time.monotonic())
        send_media(self, socket, frame, payload)

    def timed_receive(self: Any, raw: str | bytes) -> None:
        if isinstance(raw, str) and raw.startswith(BRIDGE_MEDIA_PREFIX):
            received[self.call_sid].append(time.monotonic())
        receive(self, raw)

    media.MediaStream._send_media = timed_send  # type: ignore[method-assign]
    media.MediaStream._receive = timed_receive  # type: ignore[method-assign]
    app = create_app(SandboxConfig(host=HOST, twilio_port=port), PhoneBook())

    @app.get("/_bench/timings")
    async def timings() -> dict[str, Any]:
        return {"sent": sent, "received": received}

    uvicorn.run(app, host=HOST, port=port, log_level="warning", access_log=False)


def run_elevenlabs(port: int, concurrency: int) -> None:
    """The ElevenLabs stand-in, timing each caller chunk it hears and each audio chunk it sends."""
    from novitrac_sandbox.elevenlabs import session
    from novitrac_sandbox.elevenlabs.app import create_app
    from novitrac_sandbox.phone import PhoneBook

    heard: dict[str, list[float]] = defaultdict(list)
    spoken: dict[str, list[float]] = defaultdict(list)
    hear, send = session.ConversationSession._hear, session.ConversationSession._send

    async def timed_hear(self: Any, chunk: Any) -> None:
        heard[str(self._variables.get("system__call_sid"))].append(time.monotonic())
        await hear(self, chunk)

    async def timed_send(self: Any, kind: str, key: str, payload: dict[str, Any]) -> None:
        if kind == "audio":
            spoken[str(self._variables.get("system__call_sid"))].append(time.monotonic())
        await send(self, kind, key, payload)

    session.ConversationSession._hear = timed_hear  # type: ignore[method-assign]
    session.ConversationSession._send = timed_send  # type: ignore[method-assign]
    config = SandboxConfig(host=HOST, elevenlabs_port=port, elevenlabs_concurrency=concurrency)
    app = create_app(config, PhoneBook())

    @app.get("/_bench/timings")
    async def timings() -> dict[str, Any]:
        return {"heard": heard, "spoken": spoken}

    gc.collect()
    gc.freeze()
    uvicorn.run(app, host=HOST, port=port, log_level="warning", access_log=False)


# --- telephony's part -------------------------------------------------------------------------


def telephony_app(stream_url: str, org_id: uuid.UUID, agent_id: list[uuid.UUID]) -> FastAPI:
    """Answers the voice webhook with ``<Connect><Stream>`` and a stream token per call."""
    app = FastAPI()

    @app.post("/voice")
    async def voice(request: Request) -> Response:
        form = await request.form()
        call_id = uuid.uuid4()
        now = datetime.now(UTC)
        token = jwt.encode(
            {
                "iss": "novitrac-telephony",
                "aud": "novitrac-voice-media",
                "iat": now,
                "exp": now + timedelta(seconds=120),
                "call_id": str(call_id),
                "org_id": str(org_id),
                "agent_id": str(agent_id[0]),
                "direction": "outbound",
                "from_number": str(form.get("From", CALLER)),
                "to_number": str(form.get("To", CALLEE)),
                "variables": {},
            },
            STREAM_SECRET,
            algorithm="HS256",
        )
        return Response(
            f'<Response><Connect><Stream url="{stream_url}">'
            f'<Parameter name="call_id" value="{call_id}"/>'
            f'<Parameter name="token" value="{token}"/>'
            "</Stream></Connect></Response>",
            media_type="text/xml",
        )

    return app


# --- the platform -----------------------------------------------------------------------------


async def create_database(admin_url: str) -> str:
    name = f"bench_bridge_{uuid.uuid4().hex[:10]}"
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


def voice_environment(
    args: argparse.Namespace, database_url: str, ports: dict[str, int], jwks_url: str
) -> dict[str, str]:
    return {
        **os.environ,
        "NOVITRAC_DATABASE_URL": database_url,
        "NOVITRAC_AMQP_URL": args.amqp_url,
        "NOVITRAC_ENVIRONMENT": "development",
        "NOVITRAC_LOG_LEVEL": "WARNING",
        "NOVITRAC_AUTH_JWKS_URL": jwks_url,
        "NOVITRAC_HTTP_PORT": str(ports["voice"]),
        "NOVITRAC_INTERNAL_TOKEN": secrets.token_urlsafe(32),
        "VOICE_ELEVENLABS_API_BASE": f"http://{HOST}:{ports['elevenlabs']}",
        "VOICE_ELEVENLABS_API_KEYS": SANDBOX_ELEVENLABS_API_KEY,
        "VOICE_ELEVENLABS_KEY_CONCURRENCY": str(args.calls + 10),
        "VOICE_ELEVENLABS_WEBHOOK_SECRET": SANDBOX_ELEVENLABS_WEBHOOK_SECRET,
        "VOICE_KEY_ENCRYPTION_KEY": "bench-only-key-encryption-secret",
        "VOICE_STREAM_TOKEN_SECRET": STREAM_SECRET,
        "VOICE_TWILIO_AUTH_TOKEN": SANDBOX_AUTH_TOKEN,
        "VOICE_MEDIA_STREAM_URL": f"ws://{HOST}:{ports['voice']}/media/stream",
        "VOICE_TELEPHONY_URL": f"http://{HOST}:{ports['telephony']}",
        "VOICE_RECONCILE_AFTER": "3600",
    }


async def wait_ready(url: str, process: Any) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            if not process_alive(process):
                raise SystemExit(f"{url} exited during start-up")
            try:
                if (await http.get(url)).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit(f"{url} was not ready within {START_TIMEOUT:.0f} s")


def process_alive(process: Any) -> bool:
    if isinstance(process, subprocess.Popen):
        return process.poll() is None
    return bool(process.is_alive())


# --- the run ----------------------------------------------------------------------------------


class CpuSampler:
    """Samples a process's CPU time twice a second, to read it over any window afterwards."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, float]] = []

    async def run(self) -> None:
        while True:
            self.samples.append((time.monotonic(), cpu_seconds(self.pid)))
            await asyncio.sleep(0.5)

    def share(self, start: float, end: float) -> float:
        """Cores used between ``start`` and ``end`` (nearest samples inside the window)."""
        inside = [sample for sample in self.samples if start <= sample[0] <= end]
        if len(inside) < 2:
            return float("nan")
        (t0, c0), (t1, c1) = inside[0], inside[-1]
        return (c1 - c0) / (t1 - t0)


async def create_agent(
    voice_url: str, issuer: TokenIssuer, org_id: uuid.UUID, seconds: float
) -> str:
    """A synced agent whose first message lasts about the whole call."""
    characters = max(20, int((seconds - 2) / SECONDS_PER_CHARACTER))
    greeting = ("Thank you for calling the benchmark line. " * 40)[:characters]
    token = issuer.issue(org_id=org_id, user_id=uuid.uuid4(), role="owner")
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=voice_url, headers=headers, timeout=30) as http:
        response = await http.post(
            "/v1/agents",
            json={"name": "Bench", "prompt": "Say nothing more.", "first_message": greeting},
        )
        response.raise_for_status()
        agent_id: str = response.json()["id"]
        for _ in range(300):
            agent = (await http.get(f"/v1/agents/{agent_id}")).json()
            if agent["sync_status"] == "synced":
                return agent_id
            await asyncio.sleep(0.1)
    raise SystemExit(f"the agent did not sync: {agent}")


async def place_calls(
    args: argparse.Namespace, ports: dict[str, int], sampler: CpuSampler
) -> list[dict[str, Any]]:
    """Place the calls, wait for every one to end; the sandbox's records of them."""
    twilio_url = f"http://{HOST}:{ports['twilio']}"
    http_client = AsyncTwilioHttpClient()
    client = Client(SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN, http_client=http_client)
    client.api.base_url = twilio_url
    try:
        await client.incoming_phone_numbers.create_async(phone_number=CALLER)
        async with httpx.AsyncClient(base_url=twilio_url, timeout=60) as control:
            behaviour = {"ring_seconds": 0.0, "script": {"hang_up_after": args.seconds}}
            (await control.put(f"/_sandbox/phones/{CALLEE}", json=behaviour)).raise_for_status()
            gate = asyncio.Semaphore(20)
            voice_url = f"http://{HOST}:{ports['telephony']}/voice"

            async def one() -> None:
                async with gate:
                    await client.calls.create_async(to=CALLEE, from_=CALLER, url=voice_url)

            await asyncio.gather(*(one() for _ in range(args.calls)))
            await asyncio.sleep(args.seconds + 1)
            while True:
                await asyncio.sleep(0.5)
                listed = (await control.get("/_sandbox/calls")).json()["calls"]
                if all(
                    call["status"] not in ("queued", "ringing", "in-progress") for call in listed
                ):
                    calls: list[dict[str, Any]] = listed
                    return calls
    finally:
        await http_client.close()


def latencies(
    departures: dict[str, list[float]],
    arrivals: dict[str, list[float]],
    window: tuple[float, float],
    hang_ups: dict[str, float],
) -> tuple[list[float], list[float], int, int, int]:
    """Per-frame latency matched by position in each call, and what never arrived.

    Returns:
        (steady-state ms, whole-run ms, frames sent, frames lost, frames cut off): a frame that
        never arrived is *cut off* when it left less than ``CUT_OFF`` seconds before its call's
        hang-up (it was in flight when the phone hung up), otherwise *lost*.
    """
    steady: list[float] = []
    overall: list[float] = []
    sent = lost = cut = 0
    for sid, leaving in departures.items():
        coming = arrivals.get(sid, [])
        sent += len(leaving)
        hang_up = hang_ups.get(sid, float("inf"))
        for missing in leaving[len(coming) :]:
            if missing >= hang_up - CUT_OFF:
                cut += 1
            else:
                lost += 1
        for left, came in zip(leaving, coming, strict=False):
            delay = (came - left) * 1000
            overall.append(delay)
            if window[0] <= left <= window[1]:
                steady.append(delay)
    return steady, overall, sent, lost, cut


def over_time(
    label: str,
    departures: dict[str, list[float]],
    arrivals: dict[str, list[float]],
    window: tuple[float, float],
) -> str:
    """The steady state second by second: each second's p99, to tell spikes from a slow floor."""
    seconds: dict[int, list[float]] = defaultdict(list)
    for sid, leaving in departures.items():
        for left, came in zip(leaving, arrivals.get(sid, []), strict=False):
            if window[0] <= left <= window[1]:
                seconds[int(left - window[0])].append((came - left) * 1000)
    p99s = " ".join(f"{percentile(values, 0.99):.0f}" for _, values in sorted(seconds.items()))
    return f"  {label}, p99 of each steady second (ms): {p99s}"


def unreached(calls: list[dict[str, Any]]) -> str:
    """Why calls never reached the agent, counted: how their stream ended and what it sent."""
    reasons: dict[str, int] = defaultdict(int)
    for call in calls:
        stream = call["streams"][0] if call["streams"] else None
        if stream is None:
            reasons[f"no stream (call {call['status']})"] += 1
        else:
            sent = "sent frames" if stream["frames_sent"] else "sent no frame"
            codes = ", ".join(str(error.get("code")) for error in stream["errors"])
            errors = f", errors {codes}" if codes else ""
            reasons[f"stream ended by {stream['ended_by']}, {sent}{errors}"] += 1
    return "; ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))


def loop_lag(metrics: str) -> str:
    """voice-ai's own event-loop lag histogram, as the share of samples later than each bound."""
    buckets: dict[float, float] = {}
    for line in metrics.splitlines():
        if line.startswith("novitrac_event_loop_lag_seconds_bucket"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float(bound)] = float(line.rsplit(" ", 1)[1])
    total = buckets.get(float("inf"), 0.0)
    if not total:
        return "not exported"
    shares = (
        f"{(total - buckets[bound]) / total:.1%} later than {bound * 1000:g} ms"
        for bound in (0.001, 0.005, 0.01, 0.025, 0.05)
        if bound in buckets
    )
    return f"{int(total)} samples; " + ", ".join(shares)


def describe(label: str, values: list[float]) -> str:
    if not values:
        return f"  {label}: no frames"
    return (
        f"  {label}: p50 {percentile(values, 0.5):.2f} ms, p99 {percentile(values, 0.99):.2f} ms, "
        f"max {max(values):.1f} ms ({len(values)} frames)"
    )


async def measure(args: argparse.Namespace, database_url: str) -> None:
    ports = {name: free_port() for name in ("voice", "twilio", "elevenlabs", "telephony")}
    context = multiprocessing.get_context("spawn")
    twilio = context.Process(target=run_twilio, args=(ports["twilio"],), daemon=True)
    elevenlabs = context.Process(
        target=run_elevenlabs, args=(ports["elevenlabs"], args.calls + 10), daemon=True
    )
    issuer = TokenIssuer()
    org_id = uuid.uuid4()
    agent_ids: list[uuid.UUID] = []
    with JwksServer(issuer) as jwks:
        twilio.start()
        elevenlabs.start()
        voice = subprocess.Popen(  # noqa: ASYNC220 - started once, before the measurement
            [sys.executable, "-m", "novitrac_kit.cli", "run", "voice-ai"],
            env=voice_environment(args, database_url, ports, jwks.url),
        )
        stream_url = f"ws://{HOST}:{ports['voice']}/media/stream"
        try:
            await wait_ready(f"http://{HOST}:{ports['twilio']}/_sandbox/calls", twilio)
            await wait_ready(f"http://{HOST}:{ports['elevenlabs']}/_sandbox/limits", elevenlabs)
            await wait_ready(f"http://{HOST}:{ports['voice']}/readyz", voice)
            async with running(
                telephony_app(stream_url, org_id, agent_ids), port=ports["telephony"]
            ):
                agent_ids.append(
                    uuid.UUID(
                        await create_agent(
                            f"http://{HOST}:{ports['voice']}", issuer, org_id, args.seconds
                        )
                    )
                )
                print(
                    f"bridge benchmark: {args.calls} calls x {args.seconds:g} s through one "
                    f"voice-ai process; {machine()}"
                )
                sampler = CpuSampler(voice.pid)
                sampling = asyncio.create_task(sampler.run())
                started = time.monotonic()
                assert twilio.pid is not None
                assert elevenlabs.pid is not None
                others = {"twilio sandbox": twilio.pid, "elevenlabs sandbox": elevenlabs.pid}
                others_before = {name: cpu_seconds(pid) for name, pid in others.items()}
                cpu_before = cpu_seconds(voice.pid)
                calls = await place_calls(args, ports, sampler)
                elapsed = time.monotonic() - started
                cpu_total = cpu_seconds(voice.pid) - cpu_before
                neighbours = {
                    name: (cpu_seconds(pid) - others_before[name]) / elapsed
                    for name, pid in others.items()
                }
                sampling.cancel()
                async with httpx.AsyncClient(timeout=120) as http:
                    phone = (
                        await http.get(f"http://{HOST}:{ports['twilio']}/_bench/timings")
                    ).json()
                    agent = (
                        await http.get(f"http://{HOST}:{ports['elevenlabs']}/_bench/timings")
                    ).json()
                    limits = (
                        await http.get(f"http://{HOST}:{ports['elevenlabs']}/_sandbox/limits")
                    ).json()
                    lag = loop_lag((await http.get(f"http://{HOST}:{ports['voice']}/metrics")).text)
        finally:
            voice.terminate()
            try:
                voice.wait(timeout=20)
            except subprocess.TimeoutExpired:
                voice.kill()
            twilio.terminate()
            elevenlabs.terminate()
            twilio.join(10)
            elevenlabs.join(10)

    report(args, calls, phone, agent, sampler, elapsed, cpu_total, limits)
    print(
        "  meanwhile: "
        + ", ".join(f"{name} {share:.2f} cores" for name, share in neighbours.items())
        + f"; load average {os.getloadavg()[0]:.1f}"
    )
    print(f"  voice-ai event loop lag over the run (sampled every 100 ms): {lag}")


def report(
    args: argparse.Namespace,
    calls: list[dict[str, Any]],
    phone: dict[str, Any],
    agent: dict[str, Any],
    sampler: CpuSampler,
    elapsed: float,
    cpu_total: float,
    limits: dict[str, Any],
) -> None:
    sent_by_phone: dict[str, list[float]] = phone["sent"]
    bridged = [sid for sid in sent_by_phone if agent["heard"].get(sid)]
    streams = [call["streams"][0] for call in calls if call["streams"]]
    sustained = sum(
        1
        for call in calls
        if call["streams"]
        and call["streams"][0]["ended_by"] == "call"
        and agent["spoken"].get(call["sid"])
    )
    # Each call's frames before its conversation opened waited for it (admission, key lease,
    # signed URL, connection): that is set-up time, reported apart. The steady state starts once
    # every call's agent is hearing its caller.
    heard: dict[str, list[float]] = agent["heard"]
    window = (
        max(heard[sid][0] for sid in bridged) if bridged else 0.0,
        min(times[-1] for times in sent_by_phone.values()),
    )
    setup = [(heard[sid][0] - sent_by_phone[sid][0]) * 1000 for sid in bridged]
    hang_ups = {sid: times[-1] for sid, times in sent_by_phone.items()}
    in_steady, in_all, in_sent, in_lost, in_cut = latencies(sent_by_phone, heard, window, hang_ups)
    out_steady, out_all, out_sent, out_lost, out_cut = latencies(
        agent["spoken"], phone["received"], window, hang_ups
    )
    dropped_by_phone = sum(stream["frames_dropped"] for stream in streams)
    steady_cpu = sampler.share(*window)
    print(
        f"  calls: {len(calls)} placed, {len(bridged)} reached the agent, {sustained} sustained "
        f"to the phone's hang-up with agent audio; all live together for "
        f"{window[1] - window[0]:.1f} s; still open at the agent: {limits['active']}"
    )
    unbridged = [call for call in calls if not agent["heard"].get(call["sid"])]
    if unbridged:
        print(f"  calls that never reached the agent: {unreached(unbridged)}")
    print(
        f"  voice-ai CPU: {steady_cpu:.2f} cores in the steady state, "
        f"{cpu_total / elapsed:.2f} over the whole run ({cpu_total:.1f} s in {elapsed:.1f} s)"
    )
    print(describe("set-up, first caller frame sent to first heard by the agent", setup))
    print(
        f"  caller -> agent: {in_sent} frames sent, {in_lost} lost, {in_cut} cut off by hang-up"
        f" (+{dropped_by_phone} the phone skipped because the bridge was not reading)"
    )
    print(describe("caller -> agent, steady state", in_steady))
    print(describe("caller -> agent, whole run", in_all))
    print(
        f"  agent -> caller: {out_sent} chunks sent, {out_lost} lost, {out_cut} cut off by hang-up"
    )
    print(describe("agent -> caller, steady state", out_steady))
    print(describe("agent -> caller, whole run", out_all))
    print(over_time("caller -> agent", sent_by_phone, heard, window))
    print(over_time("agent -> caller", agent["spoken"], phone["received"], window))
    worst = max(percentile(in_steady, 0.99), percentile(out_steady, 0.99))
    meets = (
        sustained == args.calls
        and steady_cpu <= CPU_TARGET
        and worst < P99_TARGET_MS
        and in_lost + out_lost + dropped_by_phone == 0
    )
    print(
        f"  target ({args.calls} calls, <= {CPU_TARGET:g} core, p99 < {P99_TARGET_MS:g} ms, "
        f"0 lost): {'meets' if meets else 'MISSES'}"
    )
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    parser.add_argument("--calls", type=int, default=200, help="simultaneous calls")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each call")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help="admin database")
    parser.add_argument("--amqp-url", default=DEFAULT_AMQP_URL, help="the broker voice-ai uses")
    args = parser.parse_args(argv)
    if "voice-ai" not in discover():
        raise SystemExit("voice-ai is not installed in this environment")

    async def run() -> None:
        database_url = await create_database(args.database_url)
        try:
            voice_service = discover()["voice-ai"]
            assert voice_service.database is not None
            await asyncio.to_thread(
                migrations.upgrade, voice_service.database.migrations, sqlalchemy_url(database_url)
            )
            await measure(args, database_url)
        finally:
            await drop_database(args.database_url, database_url)

    asyncio.run(run())


if __name__ == "__main__":
    main()
