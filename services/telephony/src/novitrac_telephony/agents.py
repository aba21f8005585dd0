"""Voice-ai's agents as telephony needs them: a projection kept by revision."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import Row, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_contracts.voice import AgentSyncStatus, AgentUpdated
from novitrac_kit.errors import Conflict
from novitrac_telephony.db import agents, phone_numbers


async def apply_update(session: AsyncSession, event: AgentUpdated) -> None:
    """Keep the agent's state unless a later revision, or its deletion, is held already."""
    values = {
        "org_id": event.org_id,
        "revision": event.revision,
        "name": event.name,
        "max_duration_s": event.max_duration_s,
        "machine_detection": event.machine_detection.value,
        "transfer_number": event.transfer_number,
        "sync_status": event.sync_status.value,
    }
    statement = insert(agents).values(id=event.agent_id, **values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[agents.c.id],
            set_=values,
            where=(agents.c.revision < event.revision) & agents.c.deleted.is_(False),
        )
    )


async def apply_delete(session: AsyncSession, *, agent_id: UUID, org_id: UUID) -> None:
    """Mark the agent deleted for good and take it off every number it answered."""
    statement = insert(agents).values(
        id=agent_id,
        org_id=org_id,
        revision=0,
        name="",
        max_duration_s=1,
        machine_detection="off",
        sync_status=AgentSyncStatus.FAILED.value,
        deleted=True,
    )
    await session.execute(
        statement.on_conflict_do_update(index_elements=[agents.c.id], set_={"deleted": True})
    )
    await session.execute(
        phone_numbers.update()
        .where(phone_numbers.c.agent_id == agent_id, phone_numbers.c.org_id == org_id)
        .values(agent_id=None)
    )


async def find(session: AsyncSession, *, agent_id: UUID, org_id: UUID) -> Row[tuple[object, ...]]:
    """The organisation's agent, if it exists and is not deleted; 409 otherwise."""
    agent = (
        await session.execute(
            select(agents).where(agents.c.id == agent_id, agents.c.org_id == org_id)
        )
    ).first()
    if agent is None or agent.deleted:
        raise Conflict(f"agent {agent_id} does not exist (or is not known to telephony yet)")
    return agent


async def usable(session: AsyncSession, *, agent_id: UUID, org_id: UUID) -> Row[tuple[object, ...]]:
    """The agent, when a call may use it now; 409 with the reason otherwise."""
    agent = await find(session, agent_id=agent_id, org_id=org_id)
    if agent.sync_status != AgentSyncStatus.SYNCED.value:
        raise Conflict(
            f"agent {agent_id} is not ready for calls: its voice provider sync is "
            f"{agent.sync_status}"
        )
    return agent
