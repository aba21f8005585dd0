"""Liveness and readiness probes: ``GET /healthz`` and ``GET /readyz``.

Liveness depends on nothing: a process that can answer is alive, and restarting it would not
bring the database back. Readiness runs the service's checks (database, bus) concurrently, each
within a short timeout, and answers 503 while any of them is not satisfied, so the load balancer
sends traffic elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse

logger = logging.getLogger(__name__)

Check = Callable[[], Awaitable[bool]]
CheckResult = Literal["ok", "failing", "timeout", "error"]

DEFAULT_CHECK_TIMEOUT = 2.0


def health_router(
    checks: Mapping[str, Check], *, timeout: float = DEFAULT_CHECK_TIMEOUT
) -> APIRouter:
    """Routes for the liveness and readiness probes.

    Args:
        checks: readiness checks by name; each returns True when its dependency is usable.
        timeout: seconds each check may take before it counts as not ready.

    Returns:
        A router with ``GET /healthz`` (always ``{"status": "ok"}``) and ``GET /readyz``
        (200 ``{"status": "ok", "checks": {...}}`` when every check passes, else 503 with
        ``"status": "unavailable"``; each check reads ``ok``, ``failing``, ``timeout`` or
        ``error``).
    """
    router = APIRouter(tags=["health"])

    @router.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        names = list(checks)
        results = await asyncio.gather(*(_run(name, checks[name], timeout) for name in names))
        report = dict(zip(names, results, strict=True))
        ready = all(result == "ok" for result in results)
        return JSONResponse(
            {"status": "ok" if ready else "unavailable", "checks": report},
            status_code=200 if ready else 503,
        )

    return router


async def _run(name: str, check: Check, limit: float) -> CheckResult:
    try:
        async with asyncio.timeout(limit):
            return "ok" if await check() is True else "failing"
    except TimeoutError:
        logger.warning("health.check.timeout", extra={"check": name, "timeout_s": limit})
        return "timeout"
    except Exception as error:
        logger.warning(
            "health.check.error",
            extra={"check": name, "error": type(error).__name__},
            exc_info=True,
        )
        return "error"
