"""The sandbox benchmark: many simultaneous simulated Twilio calls streaming media in real time.

Run ``uv run python bench/sandbox.py`` (``--calls``, ``--seconds``, ``--reply-every``, ``--help``).
The Twilio sandbox runs in a process of its own (as under ``novitrac sandbox``); a media server
standing in for the bridge runs in another, receiving every stream and (by default) sending audio
back, 100 ms at a time, as a bridge relaying an agent's speech would. This process places the
calls through the official SDK (``<Connect><Stream>`` inline TwiML, the phone hanging up after
``--seconds``).

What it measures is the cadence of the 20 ms frames as the media server receives them: for each
stream, frame ``n``'s arrival minus ``n * 20 ms`` is its offset; the median offset is the stream's
baseline and a frame's drift is its distance from that baseline. Reported over every frame of every
stream while all the calls are live at once (the steady state), and over the whole run. The target
is a p99 drift under 5 ms with 200 calls. A benchmark, not a test: it prints numbers and judges
them against the target, it never fails on them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event as EventType
from typing import Any

import httpx
import uvicorn
import uvloop
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from measure import cpu_seconds, percentile
from novitrac_kit.testing.servers import free_port
from novitrac_sandbox.config import SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN, SandboxConfig
from novitrac_sandbox.phone import PhoneBook
from novitrac_sandbox.twilio.app import create_app

HOST = "127.0.0.1"
FRAME = 0.020
P99_TARGET_MS = 5.0
CALLER = "+14155550100"
CALLEE = "+14155550199"
MEDIA_PREFIX = '{"event": "media"'
"""How the sandbox's media messages begin, so the media server need not parse them."""


def run_sandbox(port: int) -> None:
    """The sandbox process: the Twilio stand-in under uvicorn."""
    app = create_app(SandboxConfig(host=HOST, twilio_port=port), PhoneBook())
    uvicorn.run(app, host=HOST, port=port, log_level="warning", access_log=False)


def run_media_server(
    port: int, reply_every: int, ready: EventType, done: EventType, out: Queue[Any]
) -> None:
    """The media-server process: records each frame's arrival; replies with audio if asked."""
    streams: list[tuple[float, float, list[float]]] = []

    async def handle(socket: ServerConnection) -> None:
        arrivals: list[float] = []
        reply: str | None = None
        try:
            async for raw in socket:
                now = time.monotonic()
                if isinstance(raw, str) and raw.startswith(MEDIA_PREFIX):
                    arrivals.append(now)
                    if reply is not None and len(arrivals) % reply_every == 0:
                        await socket.send(reply)
                    continue
                message = json.loads(raw)
                if message["event"] == "start" and reply_every:
                    chunk = base64.b64encode(b"\x7f" * 160 * reply_every).decode()
                    reply = json.dumps(
                        {
                            "event": "media",
                            "streamSid": message["streamSid"],
                            "media": {"payload": chunk},
                        }
                    )
        except ConnectionClosed:
            pass
        finally:
            if arrivals:
                streams.append((arrivals[0], arrivals[-1], arrivals))

    async def main() -> None:
        gc.collect()
        gc.freeze()
        async with serve(handle, HOST, port, ping_interval=None, max_queue=None):
            ready.set()
            await asyncio.to_thread(done.wait)
        out.put(streams)

    uvloop.run(main())


def drifts(streams: list[tuple[float, float, list[float]]]) -> tuple[list[float], list[float]]:
    """Per-frame drift in ms: (steady state, whole run)."""
    window_start = max(first for first, _, _ in streams)
    window_end = min(last for _, last, _ in streams)
    steady: list[float] = []
    overall: list[float] = []
    for _, _, arrivals in streams:
        offsets = [at - n * FRAME for n, at in enumerate(arrivals)]
        baseline = statistics.median(offsets)
        for at, offset in zip(arrivals, offsets, strict=True):
            drift = abs(offset - baseline) * 1000
            overall.append(drift)
            if window_start <= at <= window_end:
                steady.append(drift)
    return steady, overall


def report_sandbox_side(streams: list[dict[str, Any]]) -> None:
    """Print the sandbox's own view: when each frame left, against its schedule.

    Each stream's histogram of lateness (1 ms buckets) is centred on its own median, as the
    drift seen by the media server is; what remains is the sandbox's share of the drift.
    """
    sent = sum(s["frames_sent"] for s in streams)
    dropped = sum(s["frames_dropped"] for s in streams)
    spread: list[float] = []
    for stream in streams:
        histogram = stream["lag_histogram_ms"]
        lateness = [ms for ms, count in enumerate(histogram) for _ in range(count)]
        median = lateness[len(lateness) // 2]
        spread.extend(abs(ms - median) for ms in lateness)
    print(
        f"  sandbox side: {sent} frames sent, {dropped} dropped; drift as sent (1 ms buckets): "
        f"p50 {percentile(spread, 0.5):.0f} ms, p99 {percentile(spread, 0.99):.0f} ms, "
        f"max {max(spread)} ms, latest tick {max(s['max_lag_ms'] for s in streams):.1f} ms"
    )


async def place_calls(base_url: str, media_url: str, calls: int, seconds: float) -> None:
    """Buy a number, script the callee, place ``calls`` calls through the SDK, await their end."""
    http_client = AsyncTwilioHttpClient()
    client = Client(SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN, http_client=http_client)
    client.api.base_url = base_url
    try:
        await client.incoming_phone_numbers.create_async(phone_number=CALLER)
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as control:
            behaviour = {"ring_seconds": 0.0, "script": {"hang_up_after": seconds}}
            (await control.put(f"/_sandbox/phones/{CALLEE}", json=behaviour)).raise_for_status()
            twiml = f'<Response><Connect><Stream url="{media_url}"/></Connect></Response>'
            gate = asyncio.Semaphore(20)

            async def one() -> None:
                async with gate:
                    await client.calls.create_async(to=CALLEE, from_=CALLER, twiml=twiml)

            await asyncio.gather(*(one() for _ in range(calls)))
            # No polling while the calls run: the measurement should see the streams alone.
            await asyncio.sleep(seconds + 1)
            while True:
                await asyncio.sleep(0.5)
                listed = (await control.get("/_sandbox/calls")).json()["calls"]
                if all(call["status"] == "completed" for call in listed):
                    break
            details = [
                (await control.get(f"/_sandbox/calls/{call['sid']}")).json() for call in listed
            ]
            report_sandbox_side([s for call in details for s in call["streams"]])
    finally:
        await http_client.close()


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    parser.add_argument("--calls", type=int, default=200, help="simultaneous calls")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each call")
    parser.add_argument(
        "--reply-every",
        type=int,
        default=5,
        help="the media server sends back one chunk of audio this many frames long every this "
        "many frames, as a bridge relays an agent's speech (0: sends nothing)",
    )
    args = parser.parse_args(argv)

    context = multiprocessing.get_context("spawn")
    sandbox_port, media_port = free_port(), free_port()
    ready, done = context.Event(), context.Event()
    out: Queue[Any] = context.Queue()
    sandbox = context.Process(target=run_sandbox, args=(sandbox_port,), daemon=True)
    media = context.Process(
        target=run_media_server,
        args=(media_port, args.reply_every, ready, done, out),
        daemon=True,
    )
    sandbox.start()
    media.start()
    base_url = f"http://{HOST}:{sandbox_port}"
    for _ in range(200):
        try:
            httpx.get(f"{base_url}/_sandbox/calls", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.05)
    ready.wait(30)

    print(
        f"sandbox benchmark: {args.calls} calls x {args.seconds:g} s, "
        f"a reply every {args.reply_every} frames, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}"
    )
    assert sandbox.pid is not None
    assert media.pid is not None
    cpu_before, started = cpu_seconds(sandbox.pid), time.monotonic()
    media_cpu_before = cpu_seconds(media.pid)
    asyncio.run(place_calls(base_url, f"ws://{HOST}:{media_port}/media", args.calls, args.seconds))
    elapsed, cpu = time.monotonic() - started, cpu_seconds(sandbox.pid) - cpu_before
    media_cpu = cpu_seconds(media.pid) - media_cpu_before
    done.set()
    streams = out.get(timeout=60)
    sandbox.terminate()
    media.join(10)
    sandbox.join(10)

    steady, overall = drifts(streams)
    frames = sum(len(arrivals) for _, _, arrivals in streams)
    window = min(last for _, last, _ in streams) - max(first for first, _, _ in streams)
    print(
        f"  streams received: {len(streams)}, frames: {frames}, "
        f"all {len(streams)} live together for {window:.1f} s"
    )
    print(
        f"  CPU over {elapsed:.1f} s: sandbox {cpu:.1f} s ({100 * cpu / elapsed:.0f}% of a core), "
        f"media server {media_cpu:.1f} s ({100 * media_cpu / elapsed:.0f}%)"
    )
    for label, values in (("steady state", steady), ("whole run", overall)):
        print(
            f"  drift, {label}: p50 {percentile(values, 0.5):.2f} ms, "
            f"p99 {percentile(values, 0.99):.2f} ms, max {max(values):.2f} ms "
            f"({len(values)} frames)"
        )
    p99 = percentile(steady, 0.99)
    verdict = "meets" if p99 < P99_TARGET_MS and len(streams) == args.calls else "MISSES"
    print(f"  target p99 < {P99_TARGET_MS:g} ms with {args.calls} calls: {verdict}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
