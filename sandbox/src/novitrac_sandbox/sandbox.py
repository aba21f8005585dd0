"""The whole sandbox: the SMTP sink, the control app and every provider app, served together.

Embedding it (``novitrac dev`` does)::

    sandbox = Sandbox(SandboxConfig())
    await sandbox.start()                     # the SMTP sink
    for name, port, app in sandbox.apps():    # serve each app on its port, lifespan included
        ...
    await sandbox.stop()

or let it serve itself with :meth:`Sandbox.serve` until :meth:`Sandbox.shutdown`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, Self

from fastapi import FastAPI

from novitrac_kit.serving import AppGroup, ServingError
from novitrac_sandbox import control
from novitrac_sandbox.config import SandboxConfig
from novitrac_sandbox.phone import PhoneBook
from novitrac_sandbox.smtp.mailbox import DEFAULT_CAPACITY, Mailbox
from novitrac_sandbox.smtp.server import SmtpSink

logger = logging.getLogger(__name__)

PROVIDERS = ("twilio", "elevenlabs", "stripe")


class SandboxError(Exception):
    """The sandbox could not start (a port taken, a provider app failing to start)."""


class Sandbox:
    """One sandbox: a shared :class:`PhoneBook`, the SMTP sink and mailbox, and the HTTP apps.

    Attributes:
        config: where everything listens and the credentials it accepts.
        phones: the virtual phones' scripts, shared by the Twilio and ElevenLabs halves.
        mailbox: what the SMTP sink received.
        smtp: the SMTP sink.
    """

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        providers: Iterable[str] = PROVIDERS,
        mailbox_capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        """Prepare a sandbox; nothing listens until :meth:`start` / :meth:`serve`.

        Args:
            config: addresses and credentials (default: :class:`SandboxConfig` defaults).
            providers: the providers to serve, among ``twilio``, ``elevenlabs``, ``stripe``; one
                whose package has no ``app`` module yet is left out.
            mailbox_capacity: how many emails the mailbox keeps.
        """
        unknown = sorted(set(providers) - set(PROVIDERS))
        if unknown:
            raise ValueError(f"unknown providers {unknown}; known: {', '.join(PROVIDERS)}")
        self.config = config or SandboxConfig()
        self.phones = PhoneBook()
        self.mailbox = Mailbox(mailbox_capacity)
        self.smtp = SmtpSink(self.mailbox, host=self.config.host, port=self.config.smtp_port)
        self._wanted = tuple(name for name in PROVIDERS if name in set(providers))
        self._provider_apps: dict[str, FastAPI] | None = None
        self._control_app: FastAPI | None = None
        self._group: AppGroup | None = None
        self._exit_requested = False

    @property
    def providers(self) -> dict[str, FastAPI]:
        """The provider apps, by name, built once on first use."""
        if self._provider_apps is None:
            self._provider_apps = {}
            for name in self._wanted:
                create_app = _provider_factory(name)
                if create_app is not None:
                    self._provider_apps[name] = create_app(self.config, self.phones)
        return self._provider_apps

    @property
    def control_app(self) -> FastAPI:
        """The control app (index, page, mailbox, forwarding to provider controls)."""
        if self._control_app is None:
            self._control_app = control.create_app(self.config, self.mailbox, self.providers)
        return self._control_app

    def apps(self) -> list[tuple[str, int, FastAPI]]:
        """``(name, port, app)`` of every HTTP app to serve: ``control`` first, then providers."""
        apps = [("control", self.config.control_port, self.control_app)]
        apps.extend(
            (name, control.provider_port(self.config, name), app)
            for name, app in self.providers.items()
        )
        return apps

    @property
    def control_url(self) -> str:
        """The control app's base address, for a :class:`~novitrac_sandbox.client.SandboxClient`."""
        return self.config.url(self.config.control_port)

    def describe(self) -> dict[str, Any]:
        """What runs where, with the credentials to use (the control app's JSON index)."""
        return control.describe(self.config, list(self.providers))

    async def start(self) -> None:
        """Start the SMTP sink (the HTTP apps are served by :meth:`serve` or by the embedder)."""
        try:
            await asyncio.to_thread(self.smtp.start)
        except Exception as error:
            raise SandboxError(
                f"smtp: cannot listen on {self.config.host}:{self.config.smtp_port}: {error}"
            ) from error

    async def stop(self) -> None:
        """Stop the SMTP sink."""
        await asyncio.to_thread(self.smtp.stop)

    async def serve(self, *, on_ready: Callable[[], None] | None = None) -> None:
        """Serve the SMTP sink and every app until :meth:`shutdown`; signals are the caller's.

        Args:
            on_ready: called once every server accepts connections.

        Raises:
            SandboxError: a port is taken, or an app failed to start.
        """
        group = AppGroup(self.config.host, self.apps())
        self._group = group
        if self._exit_requested:
            group.shutdown()
        try:
            await self.start()
            await group.serve(on_ready=on_ready)
        except ServingError as error:
            raise SandboxError(str(error)) from error
        finally:
            await self.stop()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Self]:
        """Serve in the background for the length of the block (a test fixture's sandbox)::

            async with Sandbox(config).running() as sandbox:
                ...

        Raises:
            SandboxError: it could not start.
        """
        ready = asyncio.Event()
        serving = asyncio.create_task(self.serve(on_ready=ready.set))
        waiting = asyncio.create_task(ready.wait())
        try:
            await asyncio.wait([serving, waiting], return_when=asyncio.FIRST_COMPLETED)
            if serving.done():
                serving.result()
                raise SandboxError("the sandbox stopped during start-up")
            yield self
        finally:
            waiting.cancel()
            self.shutdown()
            await asyncio.gather(serving, return_exceptions=True)

    def shutdown(self) -> None:
        """Ask :meth:`serve` to stop every server and return (safe to call at any moment)."""
        self._exit_requested = True
        if self._group is not None:
            self._group.shutdown()


def _provider_factory(name: str) -> Callable[[SandboxConfig, PhoneBook], FastAPI] | None:
    module_name = f"novitrac_sandbox.{name}.app"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name == module_name:
            logger.warning("sandbox.provider.missing", extra={"provider": name})
            return None
        raise
    factory: Callable[[SandboxConfig, PhoneBook], FastAPI] = module.create_app
    return factory
