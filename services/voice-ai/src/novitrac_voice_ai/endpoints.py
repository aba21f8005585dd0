"""HTTP and WebSocket routes: agents, conversations, the post-call webhook, the media stream."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, BackgroundTasks, Query, Request, Response, WebSocket

from novitrac_kit.errors import Unauthorized, error_response
from novitrac_kit.runtime import IdentityDep, SessionDep, WriterDep
from novitrac_kit.sealing import Sealer
from novitrac_voice_ai import agents, conversations
from novitrac_voice_ai.bridge import Bridge
from novitrac_voice_ai.provider import InvalidWebhook, verify_webhook
from novitrac_voice_ai.runtime import RuntimeDep, VoiceRuntime, websocket_runtime
from novitrac_voice_ai.schemas import (
    AgentIn,
    AgentOut,
    AgentPage,
    AgentPatch,
    ConversationOut,
    ConversationPage,
    ToolSecretOut,
    WebhookAck,
)
from novitrac_voice_ai.tools import check_tools, tool_sealer

logger = logging.getLogger(__name__)

router = APIRouter()

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: error_response("No valid access token."),
    403: error_response("The credential is read-only."),
    404: error_response("No such object in the caller's organisation."),
}
_LIST_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _ERRORS[401],
    400: error_response("The cursor is not valid."),
}
Limit = Annotated[int, Query(ge=1, le=100)]
_INVALID = error_response("A field is not valid (each one named in `loc`); nothing changed.")


def _sealer(runtime: VoiceRuntime) -> Sealer:
    return tool_sealer(runtime.settings.key_encryption_key.get_secret_value())


@router.post(
    "/v1/agents",
    status_code=201,
    response_model=AgentOut,
    tags=["agents"],
    responses={401: _ERRORS[401], 403: _ERRORS[403], 422: _INVALID},
)
async def create_agent(
    body: AgentIn,
    identity: WriterDep,
    session: SessionDep,
    runtime: RuntimeDep,
    background: BackgroundTasks,
) -> AgentOut:
    """Create an agent; it is usable for calls once its ElevenLabs copy is synced.

    An agent created with ``tools`` gets their signing secret, ``tool_secret``, shown in this
    answer only.
    """
    await check_tools(body.tools, environment=runtime.settings.environment)
    created = await agents.create(session, identity.org_id, body, sealer=_sealer(runtime))
    background.add_task(runtime.sync.wake)
    return created


@router.get("/v1/agents", response_model=AgentPage, tags=["agents"], responses=_LIST_ERRORS)
async def list_agents(
    identity: IdentityDep,
    session: SessionDep,
    limit: Limit = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> AgentPage:
    """The organisation's agents, newest first."""
    return await agents.listing(session, identity.org_id, limit=limit, cursor=cursor)


@router.get(
    "/v1/agents/{agent_id}",
    response_model=AgentOut,
    tags=["agents"],
    responses={401: _ERRORS[401], 404: _ERRORS[404]},
)
async def get_agent(agent_id: UUID, identity: IdentityDep, session: SessionDep) -> AgentOut:
    """One agent, with its sync status and last sync error."""
    return await agents.get(session, identity.org_id, agent_id)


@router.patch(
    "/v1/agents/{agent_id}",
    response_model=AgentOut,
    tags=["agents"],
    responses={
        **_ERRORS,
        400: error_response("A required field was set to null."),
        422: _INVALID,
    },
)
async def update_agent(
    agent_id: UUID,
    body: AgentPatch,
    identity: WriterDep,
    session: SessionDep,
    runtime: RuntimeDep,
    background: BackgroundTasks,
) -> AgentOut:
    """Change an agent; it is synced again (``pending`` until then).

    ``tools`` replaces every tool; the agent's first tool comes with their signing secret,
    ``tool_secret``, shown in this answer only.
    """
    await check_tools(body.tools, environment=runtime.settings.environment)
    changed = await agents.change(session, identity.org_id, agent_id, body, sealer=_sealer(runtime))
    background.add_task(runtime.sync.wake)
    return changed


@router.post(
    "/v1/agents/{agent_id}/rotate-tool-secret",
    response_model=ToolSecretOut,
    tags=["agents"],
    responses=_ERRORS,
)
async def rotate_tool_secret(
    agent_id: UUID, identity: WriterDep, session: SessionDep, runtime: RuntimeDep
) -> ToolSecretOut:
    """Give the agent's tools a new signing secret, shown this once; it signs from the next call."""
    return await agents.rotate_tool_secret(
        session, identity.org_id, agent_id, sealer=_sealer(runtime)
    )


@router.delete(
    "/v1/agents/{agent_id}",
    status_code=204,
    response_class=Response,
    tags=["agents"],
    responses=_ERRORS,
)
async def delete_agent(
    agent_id: UUID,
    identity: WriterDep,
    session: SessionDep,
    runtime: RuntimeDep,
    background: BackgroundTasks,
) -> Response:
    """Delete an agent; no new call may use it."""
    await agents.remove(session, identity.org_id, agent_id)
    background.add_task(runtime.sync.wake)
    return Response(status_code=204)


@router.get(
    "/v1/conversations",
    response_model=ConversationPage,
    tags=["conversations"],
    responses=_LIST_ERRORS,
)
async def list_conversations(
    identity: IdentityDep,
    session: SessionDep,
    call_id: UUID | None = None,
    agent_id: UUID | None = None,
    limit: Limit = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> ConversationPage:
    """The organisation's conversations, newest first; ``call_id`` gives one call's."""
    return await conversations.listing(
        session, identity.org_id, call_id=call_id, agent_id=agent_id, limit=limit, cursor=cursor
    )


@router.get(
    "/v1/conversations/{conversation_id}",
    response_model=ConversationOut,
    tags=["conversations"],
    responses={401: _ERRORS[401], 404: _ERRORS[404]},
)
async def get_conversation(
    conversation_id: UUID, identity: IdentityDep, session: SessionDep
) -> ConversationOut:
    """One conversation: transcript, summary, outcome and the bridge's timing."""
    return await conversations.get(session, identity.org_id, conversation_id)


@router.post(
    "/webhooks/elevenlabs",
    response_model=WebhookAck,
    tags=["webhooks"],
    responses={401: error_response("The signature does not verify.")},
)
async def elevenlabs_webhook(
    request: Request, session: SessionDep, runtime: RuntimeDep
) -> WebhookAck:
    """ElevenLabs' post-call webhook: the conversation's summary and analysis (stored once)."""
    body = await request.body()
    try:
        event = verify_webhook(
            body,
            request.headers.get("elevenlabs-signature"),
            runtime.settings.elevenlabs_webhook_secret.get_secret_value(),
        )
    except InvalidWebhook as error:
        logger.warning("voice.webhook.refused", extra={"reason": str(error)})
        raise Unauthorized("invalid webhook signature") from None
    data = event.get("data")
    if event.get("type") != "post_call_transcription" or not isinstance(data, dict):
        return WebhookAck(status="ignored")
    return WebhookAck(status=await conversations.store_analysis(session, data))


@router.websocket("/media/stream")
async def media_stream(websocket: WebSocket) -> None:
    """Twilio's Media Stream for one call, bridged to the agent's ElevenLabs conversation."""
    runtime = websocket_runtime(websocket)
    task = asyncio.current_task()
    if task is not None:
        runtime.track(task)
    try:
        await Bridge(runtime, websocket).run()
    finally:
        if task is not None:
            runtime.untrack(task)
