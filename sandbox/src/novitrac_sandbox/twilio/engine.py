"""The call engine: rings the far phone, runs the call's TwiML, and reports progress as Twilio does.

Outbound: ``initiated`` → ``ringing`` → answered (``in-progress``) or busy / no-answer / failed,
by the far phone's :class:`PhoneBehaviour`. Inbound: the number's ``VoiceUrl`` is requested with
``CallStatus=ringing`` and the call is answered by its TwiML. Every request to the application is
signed (:mod:`.webhooks`); status callbacks go out in order, one at a time, numbered by
``SequenceNumber``. A call ends when its TwiML runs out, on ``<Hangup>``, when the phone hangs up
by its script, at ``TimeLimit``, or when the API hangs it up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from urllib.parse import urljoin

from novitrac_sandbox.phone import PhoneBook
from novitrac_sandbox.twilio.audio import CallerVoice
from novitrac_sandbox.twilio.calls import CallInstructions, CallRun, TwimlSource
from novitrac_sandbox.twilio.clock import FrameClock
from novitrac_sandbox.twilio.media import MediaStream, StreamLog
from novitrac_sandbox.twilio.outcomes import PhoneBehaviour, Switchboard
from novitrac_sandbox.twilio.resources import (
    API_VERSION,
    Call,
    TwilioStore,
    new_sid,
    rfc2822,
    utcnow,
)
from novitrac_sandbox.twilio.twiml import (
    Connect,
    Dial,
    Hangup,
    Pause,
    Play,
    Redirect,
    Reject,
    Say,
    Stream,
    TwimlError,
    Unsupported,
    parse_twiml,
)
from novitrac_sandbox.twilio.webhooks import WebhookSender

logger = logging.getLogger(__name__)

SECONDS_PER_SAY_CHARACTER = 0.06
PLAY_SECONDS = 1.0
DIAL_DEFAULT_TALK_SECONDS = 2.0


def _country(number: str) -> str:
    return "US" if number.startswith("+1") else ""


def call_params(call: Call) -> list[tuple[str, str]]:
    """The voice webhook's fields describing ``call`` (also the base of status callbacks)."""
    params = [
        ("AccountSid", call.account_sid),
        ("ApiVersion", API_VERSION),
        ("CallSid", call.sid),
        ("CallStatus", call.status),
        ("Called", call.to),
        ("CalledCountry", _country(call.to)),
        ("Caller", call.from_),
        ("CallerCountry", _country(call.from_)),
        ("Direction", call.direction),
        ("From", call.from_),
        ("FromCountry", _country(call.from_)),
        ("To", call.to),
        ("ToCountry", _country(call.to)),
    ]
    if call.answered_by:
        params.append(("AnsweredBy", call.answered_by))
    if call.parent_call_sid:
        params.append(("ParentCallSid", call.parent_call_sid))
    return params


class CallEngine:
    """Runs every call of the sandbox, each in its own task."""

    def __init__(
        self,
        *,
        store: TwilioStore,
        phones: PhoneBook,
        switchboard: Switchboard,
        sender: WebhookSender,
    ) -> None:
        self.store = store
        self.phones = phones
        self.switchboard = switchboard
        self.sender = sender
        self.runs: dict[str, CallRun] = {}
        self.clock = FrameClock()
        self._background: set[asyncio.Task[None]] = set()

    def start(
        self, call: Call, instructions: CallInstructions, behaviour: PhoneBehaviour, auth_token: str
    ) -> CallRun:
        """Put ``call`` through in the background: ring it, or fetch its TwiML if inbound."""
        run = CallRun(
            call=call, instructions=instructions, behaviour=behaviour, auth_token=auth_token
        )
        self.store.calls[call.sid] = call
        self.runs[call.sid] = run
        run.note("created", direction=call.direction)
        run.task = asyncio.create_task(self._run(run), name=f"twilio-call-{call.sid}")
        return run

    async def settle(self, run: CallRun, within: float = 5.0) -> None:
        """Wait (at most ``within`` seconds) for a hung-up call to finish ending."""
        if run.task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(run.task), timeout=within)

    async def close(self) -> None:
        """Hang up every call and wait for them to end."""
        for run in self.runs.values():
            run.hang_up("shutdown")
        tasks = [run.task for run in self.runs.values() if run.task is not None]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=10)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _run(self, run: CallRun) -> None:
        callbacks: asyncio.Queue[list[tuple[str, str]] | None] = asyncio.Queue()
        worker = asyncio.create_task(self._deliver_callbacks(run, callbacks))
        try:
            if run.call.direction == "inbound" or await self._ring(run, callbacks):
                await self._converse(run, callbacks)
        except Exception:
            logger.exception("call %s failed in the sandbox", run.call.sid)
            run.note("error", message="sandbox failure")
        finally:
            if not run.call.is_final:
                run.call.set_status("completed" if run.answered_at is not None else "failed")
            run.note("ended", status=run.call.status, duration=run.call.duration)
            self._status_event(run, callbacks, "completed")
            callbacks.put_nowait(None)
            await worker
            self.phones.forget(run.call.sid)

    def _status_event(
        self, run: CallRun, callbacks: asyncio.Queue[list[tuple[str, str]] | None], event: str
    ) -> None:
        if run.instructions.status_callback and event in run.instructions.status_callback_events:
            params = call_params(run.call)
            if event == "initiated":
                params = [(k, "initiated" if k == "CallStatus" else v) for k, v in params]
            if event == "completed":
                params.append(("CallDuration", str(run.call.duration or 0)))
            params.append(("CallbackSource", "call-progress-events"))
            params.append(("Timestamp", rfc2822(utcnow()) or ""))
            callbacks.put_nowait(params)

    async def _deliver_callbacks(
        self, run: CallRun, callbacks: asyncio.Queue[list[tuple[str, str]] | None]
    ) -> None:
        url = run.instructions.status_callback
        sequence = 0
        while (params := await callbacks.get()) is not None:
            if url is None:
                continue
            params = [*params, ("SequenceNumber", str(sequence))]
            response = await self.sender.send(
                url=url,
                params=params,
                auth_token=run.auth_token,
                method=run.instructions.status_callback_method,
            )
            status = dict(params)["CallStatus"]
            run.callbacks.append(
                {
                    "sequence_number": sequence,
                    "call_status": status,
                    "url": url,
                    "http_status": None if response is None else response.status_code,
                }
            )
            sequence += 1

    async def _ring(
        self, run: CallRun, callbacks: asyncio.Queue[list[tuple[str, str]] | None]
    ) -> bool:
        call, behaviour, instructions = run.call, run.behaviour, run.instructions
        self._status_event(run, callbacks, "initiated")
        run.note("initiated")
        if behaviour.outcome == "failed":
            call.set_status("failed")
            return False
        call.set_status("ringing")
        run.note("ringing")
        self._status_event(run, callbacks, "ringing")
        answers = behaviour.outcome in {"answer", "machine"}
        rings_out = answers and behaviour.ring_seconds < instructions.timeout
        if behaviour.outcome == "busy" or rings_out:
            wait = behaviour.ring_seconds
        else:
            answers, wait = False, instructions.timeout
        if not await run.pause(wait):
            call.set_status("canceled")
            return False
        if behaviour.outcome == "busy":
            call.set_status("busy")
            return False
        if not answers:
            call.set_status("no-answer")
            return False
        if instructions.machine_detection:
            if behaviour.outcome == "answer":
                call.answered_by = "human"
            elif instructions.machine_detection == "DetectMessageEnd":
                call.answered_by = "machine_end_beep"
            else:
                call.answered_by = "machine_start"
        self._answer(run)
        self._status_event(run, callbacks, "answered")
        if instructions.async_amd and instructions.async_amd_status_callback and call.answered_by:
            report = asyncio.create_task(self._report_amd(run))
            self._background.add(report)
            report.add_done_callback(self._background.discard)
        return True

    def _answer(self, run: CallRun) -> None:
        run.call.set_status("in-progress")
        run.answered_at = time.monotonic()
        run.answered.set()
        self.phones.register(run.call.sid, run.behaviour.script)
        run.note("answered", answered_by=run.call.answered_by)

    async def _report_amd(self, run: CallRun) -> None:
        url = run.instructions.async_amd_status_callback
        assert url is not None
        params = [
            ("AccountSid", run.call.account_sid),
            ("AnsweredBy", run.call.answered_by or "unknown"),
            ("CallSid", run.call.sid),
            ("MachineDetectionDuration", "1000"),
        ]
        await self.sender.send(
            url=url,
            params=params,
            auth_token=run.auth_token,
            method=run.instructions.async_amd_status_callback_method,
        )

    async def _converse(
        self, run: CallRun, callbacks: asyncio.Queue[list[tuple[str, str]] | None]
    ) -> None:
        limits = [(run.instructions.time_limit, "time-limit")]
        if run.behaviour.script.hang_up_after is not None:
            limits.append((run.behaviour.script.hang_up_after, "phone"))
        timer = asyncio.create_task(self._hang_up_later(run, *min(limits)))
        source: TwimlSource | None = run.instructions.source
        try:
            while source is not None and run.hangup_reason is None:
                source = await self._execute(run, source, callbacks)
                if run.redirect_to is not None and run.hangup_reason is None:
                    source, run.redirect_to = run.redirect_to, None
                    run.interrupted.clear()
        finally:
            timer.cancel()

    async def _hang_up_later(self, run: CallRun, seconds: float, reason: str) -> None:
        await run.answered.wait()
        await asyncio.sleep(max(seconds - run.seconds_since_answer, 0.0))
        run.hang_up(reason)

    async def _fetch(self, run: CallRun, source: TwimlSource) -> tuple[str | None, str | None]:
        if source.twiml is not None:
            return source.twiml, source.url
        assert source.url is not None
        response = await self.sender.send(
            url=source.url,
            params=[*call_params(run.call), *source.extra],
            auth_token=run.auth_token,
            method=source.method,
        )
        if response is None or response.status_code >= 400:
            run.note(
                "error",
                code=11200,
                message="HTTP retrieval failure",
                url=source.url,
                http_status=None if response is None else response.status_code,
            )
            return None, source.url
        run.note("twiml-fetched", url=source.url)
        return response.text, source.url

    async def _execute(
        self,
        run: CallRun,
        source: TwimlSource,
        callbacks: asyncio.Queue[list[tuple[str, str]] | None],
    ) -> TwimlSource | None:
        """Carry out one TwiML document; the next source (redirect or action) or None to end."""
        document, base = await self._fetch(run, source)
        if document is None:
            return None
        try:
            verbs = parse_twiml(document)
        except TwimlError as error:
            run.note("error", code=12100, message=str(error))
            return None
        base = base or ""
        for verb in verbs:
            if run.interrupted.is_set():
                return None
            if run.answered_at is None and not isinstance(verb, Reject | Hangup):
                self._answer(run)
                self._status_event(run, callbacks, "answered")
            run.note("verb", verb=type(verb).__name__)
            match verb:
                case Say(text=text, loop=loop):
                    run.note("say", text=text)
                    await run.pause(max(0.5, SECONDS_PER_SAY_CHARACTER * len(text)) * loop)
                case Play(url=url, loop=loop):
                    run.note("play", url=url)
                    await run.pause(PLAY_SECONDS * loop)
                case Pause(length=length):
                    await run.pause(length)
                case Hangup():
                    run.hang_up("twiml")
                    return None
                case Reject(reason=reason):
                    run.call.set_status("busy" if reason == "busy" else "no-answer")
                    run.hang_up("rejected")
                    return None
                case Redirect(url=url, method=method):
                    return TwimlSource(url=urljoin(base, url), method=method)
                case Dial():
                    after = await self._dial(run, verb, base)
                    if after is not None:
                        return after
                case Connect(stream=stream, action=action, method=method):
                    await self._stream(run, stream, base)
                    if action and not run.interrupted.is_set():
                        return TwimlSource(url=urljoin(base, action), method=method)
                case Unsupported(name=name):
                    run.note("unsupported-verb", name=name)
        return None

    async def _stream(self, run: CallRun, stream: Stream, base: str) -> None:
        log = StreamLog(stream_sid=new_sid("MZ"), url=stream.url, parameters=stream.parameters)
        run.streams.append(log)
        run.note("stream-opening", stream_sid=log.stream_sid, url=stream.url)
        script = run.behaviour.script
        since_answer = run.seconds_since_answer
        media = MediaStream(
            log=log,
            account_sid=run.call.account_sid,
            call_sid=run.call.sid,
            auth_token=run.auth_token,
            voice=CallerVoice(script),
            digits=[d for d in script.digits if d.at >= since_answer],
            seconds_since_answer=since_answer,
            stop=run.interrupted,
            clock=self.clock,
        )
        await self._stream_event(run, stream, log, "stream-started", base)
        ended_by = await media.run()
        run.note("stream-ended", stream_sid=log.stream_sid, ended_by=ended_by)
        event = "stream-error" if ended_by == "failed" else "stream-stopped"
        await self._stream_event(run, stream, log, event, base)

    async def _stream_event(
        self, run: CallRun, stream: Stream, log: StreamLog, event: str, base: str
    ) -> None:
        if not stream.status_callback:
            return
        params = [
            ("AccountSid", run.call.account_sid),
            ("CallSid", run.call.sid),
            ("StreamSid", log.stream_sid),
            ("StreamName", stream.name or log.stream_sid),
            ("StreamEvent", event),
            ("Timestamp", rfc2822(utcnow()) or ""),
        ]
        if event == "stream-error" and log.errors:
            params.append(("StreamError", log.errors[-1]["message"]))
        await self.sender.send(
            url=urljoin(base, stream.status_callback),
            params=params,
            auth_token=run.auth_token,
            method=stream.status_callback_method,
        )

    async def _dial(self, run: CallRun, dial: Dial, base: str) -> TwimlSource | None:
        human = self.switchboard.by_number.get(dial.number, PhoneBehaviour())
        leg = Call(
            sid=new_sid("CA"),
            account_sid=run.call.account_sid,
            to=dial.number,
            from_=run.call.from_,
            direction="outbound-dial",
            parent_call_sid=run.call.sid,
        )
        self.store.calls[leg.sid] = leg
        leg.set_status("ringing")
        run.note("dial", number=dial.number, call_sid=leg.sid)
        if human.outcome in {"answer", "machine"} and human.ring_seconds < dial.timeout:
            if await run.pause(human.ring_seconds):
                leg.set_status("in-progress")
                talk = human.script.hang_up_after or DIAL_DEFAULT_TALK_SECONDS
                await run.pause(min(talk, dial.time_limit))
                leg.set_status("completed")
            else:
                leg.set_status("canceled")
        elif human.outcome in {"busy", "failed"}:
            await run.pause(human.ring_seconds)
            leg.set_status(human.outcome)
        else:
            await run.pause(dial.timeout)
            leg.set_status("no-answer")
        run.note("dial-ended", call_sid=leg.sid, status=leg.status, duration=leg.duration)
        if dial.action and not run.interrupted.is_set():
            return TwimlSource(
                url=urljoin(base, dial.action),
                method=dial.method,
                extra=(
                    ("DialCallSid", leg.sid),
                    ("DialCallStatus", leg.status),
                    ("DialCallDuration", str(leg.duration or 0)),
                ),
            )
        return None
