"""What the scripted agent answers, read from rule lines in its prompt.

The sandbox agent has no language model. Its prompt may hold rule lines, one per line, anywhere
among ordinary prose::

    when "price" say "It costs ten euros"
    when "book" call book_slot {"day": "monday"} say "Booking it now"
    when "bye" say "Goodbye" end_call
    otherwise say "Sorry, I did not get that"

The first rule whose keyword occurs in what the caller said (case-insensitive) answers; ``call``
makes the agent call a client tool before speaking, ``end_call`` hangs up after speaking.
Without a matching rule and without an ``otherwise`` line the agent echoes: "You said: ...".
``{{name}}`` in a reply is replaced by the conversation's dynamic variable ``name``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

_RULE = re.compile(r'^\s*(?:when\s+"(?P<keyword>[^"]+)"|otherwise)\s+(?P<actions>.+)$', re.I)
_SAY = re.compile(r'\bsay\s+"(?P<text>[^"]*)"', re.I)
_CALL = re.compile(
    r"\bcall\s+(?P<name>[A-Za-z_][\w-]*)(?:\s+(?P<params>\{.*?\}))?(?=\s+say\b|\s+end_call\b|\s*$)",
    re.I,
)
_END = re.compile(r"\bend_call\b", re.I)
_VARIABLE = re.compile(r"\{\{\s*([\w.]+)\s*\}\}")


@dataclass(frozen=True)
class ToolCall:
    """A client tool the agent calls, with its parameters."""

    name: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """One agent turn: what it says, the tool it calls first, whether it hangs up after."""

    text: str
    tool: ToolCall | None = None
    end_call: bool = False


@dataclass(frozen=True)
class _Rule:
    keyword: str | None
    reply: Reply


def _parse_line(line: str) -> _Rule | None:
    match = _RULE.match(line)
    if match is None:
        return None
    actions = match["actions"]
    say = _SAY.search(actions)
    call = _CALL.search(actions)
    tool = None
    if call is not None:
        try:
            parameters = json.loads(call["params"]) if call["params"] else {}
        except json.JSONDecodeError:
            parameters = {}
        tool = ToolCall(call["name"], parameters if isinstance(parameters, dict) else {})
    if say is None and tool is None and _END.search(actions) is None:
        return None
    reply = Reply(say["text"] if say else "", tool, _END.search(actions) is not None)
    keyword = match["keyword"]
    return _Rule(keyword.lower() if keyword else None, reply)


def missing_variables(text: str, variables: dict[str, Any]) -> list[str]:
    """The ``{{name}}`` placeholders of ``text`` that ``variables`` does not define."""
    return [name for name in _VARIABLE.findall(text) if name not in variables]


def fill(text: str, variables: dict[str, Any]) -> str:
    """``text`` with every ``{{name}}`` replaced by its dynamic variable (unknown ones kept)."""
    return _VARIABLE.sub(lambda m: str(variables.get(m[1], m[0])), text)


class AgentScript:
    """The rules of one agent's prompt."""

    def __init__(self, prompt: str) -> None:
        rules = [_parse_line(line) for line in prompt.splitlines()]
        self._rules = [rule for rule in rules if rule is not None and rule.keyword is not None]
        fallbacks = [rule for rule in rules if rule is not None and rule.keyword is None]
        self._otherwise = fallbacks[0].reply if fallbacks else None

    def respond(self, heard: str, variables: dict[str, Any]) -> Reply:
        """The agent's answer to the caller saying ``heard``."""
        lowered = heard.lower()
        for rule in self._rules:
            assert rule.keyword is not None
            if rule.keyword in lowered:
                return _filled(rule.reply, variables)
        if self._otherwise is not None:
            return _filled(self._otherwise, variables)
        return Reply(f"You said: {heard}")


def _filled(reply: Reply, variables: dict[str, Any]) -> Reply:
    return Reply(fill(reply.text, variables), reply.tool, reply.end_call)
