"""Stripe's form encoding: bracket keys (``metadata[k]``, ``line_items[0][price]``, ``expand[]``).

A body or query string decodes into nested dicts and lists: ``a[b]=1`` gives ``{"a": {"b": "1"}}``,
``a[0]=x&a[1]=y`` and ``a[]=x&a[]=y`` both give ``{"a": ["x", "y"]}``. Leaves stay strings.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from novitrac_sandbox.stripe.errors import StripeError

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")
_APPEND = ""


def malformed(detail: str) -> StripeError:
    """The error for a body Stripe cannot parse."""
    return StripeError(400, f"Invalid request: {detail}", code="parameter_invalid_empty")


def decode(text: str) -> dict[str, Any]:
    """Decode a form body or query string into nested params.

    Raises:
        StripeError: the text is not valid form encoding or its keys contradict each other.
    """
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
    except ValueError as exc:
        raise malformed(f"could not parse the form body ({exc})") from None
    root: dict[str, Any] = {}
    for key, value in pairs:
        _insert(root, key, value)
    decoded: dict[str, Any] = _listify(root)
    return decoded


def _path(key: str) -> list[str]:
    match = _KEY.match(key)
    if match is None:
        raise malformed(f"malformed parameter name {key!r}")
    return [match.group(1), *_SEGMENT.findall(match.group(2))]


def _insert(root: dict[str, Any], key: str, value: str) -> None:
    path = _path(key)
    node: Any = root
    for depth, segment in enumerate(path):
        last = depth == len(path) - 1
        if segment == _APPEND:
            segment = str(len(node))
        if not isinstance(node, dict):
            raise malformed(f"{key!r} conflicts with another parameter")
        if last:
            if segment in node:
                raise malformed(f"{key!r} is given more than once")
            node[segment] = value
        else:
            node = node.setdefault(segment, {})


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {key: _listify(value) for key, value in node.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted
