"""What the bridge tells ElevenLabs when a conversation starts: variables and overrides."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Row

from novitrac_voice_ai.streamauth import StreamGrant

logger = logging.getLogger(__name__)

CALL_SID_VARIABLE = "system__call_sid"
OVERRIDE_FIELDS = {
    "prompt": ("agent", "prompt", "prompt"),
    "first_message": ("agent", "first_message"),
    "language": ("agent", "language"),
    "voice": ("tts", "voice_id"),
}
"""Where each overridable setting sits in ``conversation_config_override``."""


def initiation_data(
    agent: Row[Any], grant: StreamGrant, *, call_sid: str | None, voicemail: bool
) -> dict[str, Any]:
    """The ``conversation_initiation_client_data`` message of a call.

    Dynamic variables: the agent's defaults, the call's variables over them, then the call's
    own facts (ids, numbers, ``answered_by``, ``system__call_sid``). Overrides: those the token
    asks for that the agent allows (others are logged and left out), and the voicemail message
    as the first message when an answering machine is to be left one.
    """
    variables: dict[str, Any] = {
        **dict(agent.variables),
        **grant.variables,
        "call_id": str(grant.call_id),
        "org_id": str(grant.org_id),
        "agent_id": str(grant.agent_id),
    }
    for name, value in (
        ("direction", grant.direction),
        ("from_number", grant.from_number),
        ("to_number", grant.to_number),
        ("answered_by", grant.answered_by),
    ):
        if value:
            variables[name] = value
    if call_sid:
        variables[CALL_SID_VARIABLE] = call_sid
    override: dict[str, Any] = {}
    allowed = set(agent.allowed_overrides)
    for name, value in grant.overrides.items():
        if name in allowed and name in OVERRIDE_FIELDS:
            _set_path(override, OVERRIDE_FIELDS[name], value)
        else:
            logger.info("voice.bridge.override_ignored", extra={"override": name})
    if voicemail and agent.voicemail_message:
        _set_path(override, OVERRIDE_FIELDS["first_message"], agent.voicemail_message)
    data: dict[str, Any] = {
        "type": "conversation_initiation_client_data",
        "dynamic_variables": variables,
    }
    if override:
        data["conversation_config_override"] = override
    return data


def _set_path(into: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = into
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
