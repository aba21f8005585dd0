"""The route class of every auth router: validation errors that can always be rendered.

FastAPI's 422 echoes the offending input; JSON may carry lone surrogates (``"\\ud800"``), which
cannot be encoded back to UTF-8, so the error page itself would fail with a 500. Such values are
escaped before the error is rendered.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute


def _escaped(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {key: _escaped(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_escaped(item) for item in value]
    return value


class SafeRoute(APIRoute):
    """An ``APIRoute`` whose validation errors never hold unencodable text."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as error:
                raise RequestValidationError(_escaped(list(error.errors()))) from None

        return route
