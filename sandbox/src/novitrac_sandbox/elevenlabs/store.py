"""The sandbox's ElevenLabs state: agents, signed-URL tokens and conversations, in memory."""

from __future__ import annotations

import copy
import itertools
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

DEFAULT_CLIENT_EVENTS = [
    "audio",
    "interruption",
    "agent_response",
    "user_transcript",
    "tentative_user_transcript",
    "conversation_initiation_metadata",
    "ping",
]
# Unverified: the real price depends on the plan; the sandbox bills a flat rate per minute.
CREDITS_PER_MINUTE = 1000
SIGNED_URL_LIFETIME = 15 * 60

T = TypeVar("T")


def _default_conversation_config() -> dict[str, Any]:
    return {
        "agent": {
            "first_message": "",
            "language": "en",
            "prompt": {"prompt": "", "llm": "gemini-2.0-flash", "tool_ids": []},
        },
        "tts": {
            "voice_id": "cjVigY5qzO86Huf0OWal",
            "model_id": "eleven_flash_v2",
            "agent_output_audio_format": "pcm_16000",
        },
        "asr": {"user_input_audio_format": "pcm_16000", "provider": "elevenlabs"},
        "turn": {"turn_timeout": 7.0},
        "conversation": {
            "text_only": False,
            "max_duration_seconds": 600,
            "client_events": list(DEFAULT_CLIENT_EVENTS),
        },
    }


def _default_platform_settings() -> dict[str, Any]:
    return {
        "auth": {"enable_auth": False, "allowlist": []},
        "overrides": {
            "conversation_config_override": {
                "agent": {"prompt": {"prompt": False}, "first_message": False, "language": False},
                "tts": {"voice_id": False},
                "conversation": {"text_only": True},
            }
        },
        "call_limits": {"agent_concurrency_limit": -1, "daily_limit": 100000},
    }


def merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` laid over it, nested objects merged key by key."""
    merged = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _new_id(prefix: str) -> str:
    alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
    return prefix + "".join(secrets.choice(alphabet) for _ in range(26))


@dataclass
class Agent:
    """A configured agent, owned by the API key that created it."""

    agent_id: str
    owner_key: str
    name: str
    conversation_config: dict[str, Any]
    platform_settings: dict[str, Any]
    tags: list[str]
    created_at: int
    updated_at: int
    seq: int

    def setting(self, *path: str, default: Any = None) -> Any:
        """The value at ``path`` inside ``conversation_config`` (``default`` when absent)."""
        node: Any = self.conversation_config
        for key in path:
            if not isinstance(node, dict) or key not in node:
                return default
            node = node[key]
        return node

    def as_json(self) -> dict[str, Any]:
        """The agent as ``GET /v1/convai/agents/{agent_id}`` returns it."""
        return {
            "agent_id": self.agent_id,
            "name": self.name,
            "conversation_config": self.conversation_config,
            "metadata": {
                "created_at_unix_secs": self.created_at,
                "updated_at_unix_secs": self.updated_at,
            },
            "platform_settings": self.platform_settings,
            "phone_numbers": [],
            "tags": self.tags,
            "access_info": _access_info(),
        }

    def summary(self) -> dict[str, Any]:
        """The agent as an item of ``GET /v1/convai/agents``."""
        return {
            "agent_id": self.agent_id,
            "name": self.name,
            "voice_id": self.setting("tts", "voice_id", default=""),
            "tags": self.tags,
            "created_at_unix_secs": self.created_at,
            "updated_at_unix_secs": self.updated_at,
            "access_info": _access_info(),
            "archived": False,
        }


def _access_info() -> dict[str, Any]:
    return {
        "is_creator": True,
        "creator_name": "Sandbox",
        "creator_email": "sandbox@example.com",
        "role": "admin",
    }


@dataclass
class TranscriptEntry:
    """One turn of a conversation's transcript."""

    role: Literal["user", "agent"]
    message: str
    time_in_call_secs: float
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    tool_results: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False

    def as_json(self) -> dict[str, Any]:
        """The entry as it appears in a conversation's ``transcript``."""
        return {
            "role": self.role,
            "message": self.message,
            "time_in_call_secs": int(self.time_in_call_secs),
            "tool_calls": self.tool_calls,
            "tool_results": self.tool_results,
            "interrupted": self.interrupted,
            "feedback": None,
            "llm_override": None,
            "conversation_turn_metrics": None,
            "rag_retrieval_info": None,
        }


ConversationStatus = Literal["initiated", "in-progress", "processing", "done", "failed"]


@dataclass
class Conversation:
    """One conversation, live or finished."""

    conversation_id: str
    agent: Agent
    api_key: str
    started_at: float
    seq: int
    status: ConversationStatus = "in-progress"
    transcript: list[TranscriptEntry] = field(default_factory=list)
    client_data: dict[str, Any] = field(default_factory=dict)
    ended_at: float | None = None
    termination_reason: str = ""
    call_successful: Literal["success", "failure", "unknown"] = "unknown"
    webhook_deliveries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def duration(self) -> int:
        """Whole seconds from start to end (or to now while live)."""
        end = self.ended_at if self.ended_at is not None else time.time()
        return max(0, round(end - self.started_at))

    @property
    def cost(self) -> int:
        """Credits the conversation costs."""
        return math.ceil(self.duration * CREDITS_PER_MINUTE / 60)

    def _counts(self) -> tuple[int, int]:
        user = sum(1 for entry in self.transcript if entry.role == "user")
        return user, len(self.transcript) - user

    def summary_text(self) -> str:
        """A one-line description in place of the real service's LLM summary."""
        user, agent = self._counts()
        return f"The caller spoke {user} time(s) and the agent answered {agent} time(s)."

    def metadata(self) -> dict[str, Any]:
        """The ``metadata`` object of the conversation."""
        return {
            "start_time_unix_secs": int(self.started_at),
            "accepted_time_unix_secs": int(self.started_at),
            "call_duration_secs": self.duration,
            "cost": self.cost,
            "termination_reason": self.termination_reason,
            "main_language": self.agent.setting("agent", "language", default="en"),
            "charging": {"dev_discount": False, "tier": "sandbox"},
            "phone_call": None,
            "text_only": False,
            "error": None,
            "feedback": {"overall_score": None, "likes": 0, "dislikes": 0},
        }

    def analysis(self) -> dict[str, Any]:
        """The ``analysis`` object (null until the conversation is over)."""
        return {
            "evaluation_criteria_results": {},
            "data_collection_results": {},
            "call_successful": self.call_successful,
            "transcript_summary": self.summary_text(),
            "call_summary_title": "Sandbox conversation",
        }

    def as_json(self) -> dict[str, Any]:
        """The conversation as ``GET /v1/convai/conversations/{id}`` returns it."""
        user, agent = self._counts()
        finished = self.status in ("done", "failed")
        return {
            "agent_id": self.agent.agent_id,
            "agent_name": self.agent.name,
            "conversation_id": self.conversation_id,
            "status": self.status,
            "user_id": self.client_data.get("user_id"),
            "transcript": [entry.as_json() for entry in self.transcript],
            "metadata": self.metadata(),
            "analysis": self.analysis() if finished else None,
            "conversation_initiation_client_data": {
                "conversation_config_override": self.client_data.get(
                    "conversation_config_override", {}
                ),
                "custom_llm_extra_body": self.client_data.get("custom_llm_extra_body", {}),
                "dynamic_variables": self.client_data.get("dynamic_variables", {}),
                "user_id": self.client_data.get("user_id"),
            },
            "has_audio": finished,
            "has_user_audio": finished,
            "has_response_audio": finished,
            "has_auxiliary_audio": False,
            "user_message_count": user,
            "agent_message_count": agent,
        }

    def summary(self) -> dict[str, Any]:
        """The conversation as an item of ``GET /v1/convai/conversations``."""
        user, agent = self._counts()
        return {
            "agent_id": self.agent.agent_id,
            "agent_name": self.agent.name,
            "conversation_id": self.conversation_id,
            "start_time_unix_secs": int(self.started_at),
            "call_duration_secs": self.duration,
            "cost": self.cost,
            "message_count": len(self.transcript),
            "user_message_count": user,
            "agent_message_count": agent,
            "status": self.status,
            "termination_reason": self.termination_reason,
            "call_successful": self.call_successful,
            "transcript_summary": self.summary_text(),
            "call_summary_title": "Sandbox conversation",
            "direction": None,
        }


@dataclass(frozen=True)
class SignedToken:
    """What a signed conversation URL grants: one agent, on behalf of one API key, until expiry."""

    agent_id: str
    api_key: str
    expires_at: float


class NotFound(LookupError):
    """No such agent or conversation."""


@dataclass
class Store:
    """Everything the ElevenLabs sandbox remembers."""

    agents: dict[str, Agent] = field(default_factory=dict)
    conversations: dict[str, Conversation] = field(default_factory=dict)
    tokens: dict[str, SignedToken] = field(default_factory=dict)
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def create_agent(self, owner_key: str, body: dict[str, Any]) -> Agent:
        """Store a new agent from a create request body."""
        now = int(time.time())
        agent = Agent(
            agent_id=_new_id("agent_"),
            owner_key=owner_key,
            name=body.get("name") or "",
            conversation_config=merge(
                _default_conversation_config(), body.get("conversation_config") or {}
            ),
            platform_settings=merge(
                _default_platform_settings(), body.get("platform_settings") or {}
            ),
            tags=list(body.get("tags") or []),
            created_at=now,
            updated_at=now,
            seq=next(self._seq),
        )
        self.agents[agent.agent_id] = agent
        return agent

    def agent(self, agent_id: str) -> Agent:
        """The agent ``agent_id``, or :class:`NotFound`."""
        try:
            return self.agents[agent_id]
        except KeyError:
            raise NotFound(agent_id) from None

    def update_agent(self, agent_id: str, body: dict[str, Any]) -> Agent:
        """Apply a PATCH body: nested configs are merged, name and tags replaced."""
        agent = self.agent(agent_id)
        if body.get("conversation_config"):
            agent.conversation_config = merge(
                agent.conversation_config, body["conversation_config"]
            )
        if body.get("platform_settings"):
            agent.platform_settings = merge(agent.platform_settings, body["platform_settings"])
        if body.get("name") is not None:
            agent.name = body["name"]
        if body.get("tags") is not None:
            agent.tags = list(body["tags"])
        agent.updated_at = int(time.time())
        return agent

    def delete_agent(self, agent_id: str) -> None:
        """Forget the agent ``agent_id`` (its conversations stay)."""
        self.agent(agent_id)
        del self.agents[agent_id]

    def sign(self, agent_id: str, api_key: str, lifetime: float = SIGNED_URL_LIFETIME) -> str:
        """A fresh token that lets a WebSocket join ``agent_id`` on behalf of ``api_key``."""
        self.agent(agent_id)
        token = secrets.token_urlsafe(24)
        self.tokens[token] = SignedToken(agent_id, api_key, time.time() + lifetime)
        return token

    def redeem(self, token: str) -> SignedToken | None:
        """The grant of ``token`` while it is valid, else None."""
        grant = self.tokens.get(token)
        if grant is None or grant.expires_at < time.time():
            return None
        return grant

    def start_conversation(self, agent: Agent, api_key: str) -> Conversation:
        """Record a new live conversation with ``agent``."""
        conversation = Conversation(
            conversation_id=_new_id("conv_"),
            agent=agent,
            api_key=api_key,
            started_at=time.time(),
            seq=next(self._seq),
        )
        self.conversations[conversation.conversation_id] = conversation
        return conversation

    def conversation(self, conversation_id: str) -> Conversation:
        """The conversation ``conversation_id``, or :class:`NotFound`."""
        try:
            return self.conversations[conversation_id]
        except KeyError:
            raise NotFound(conversation_id) from None


def page(
    items: list[T], seq_of: Callable[[T], int], cursor: str | None, size: int
) -> tuple[list[T], str | None]:
    """One page of ``items`` (newest first) after ``cursor``, and the cursor of the next page."""
    ordered = sorted(items, key=seq_of, reverse=True)
    if cursor:
        try:
            after = int(cursor)
        except ValueError:
            after = 0
        ordered = [item for item in ordered if seq_of(item) < after]
    chosen = ordered[:size]
    more = len(ordered) > size
    return chosen, (str(seq_of(chosen[-1])) if more and chosen else None)
