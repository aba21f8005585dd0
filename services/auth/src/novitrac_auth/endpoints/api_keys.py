"""API keys and the audit log of the caller's organisation (owners and admins)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response, status

from novitrac_auth import api_keys, audit
from novitrac_auth.deps import AdminDep, RequestInfoDep, WritingAdminDep
from novitrac_auth.schemas import (
    ApiKeyCreated,
    ApiKeyOut,
    ApiKeyRequest,
    AuditEntry,
    AuditPage,
    errors,
)
from novitrac_kit.runtime import SessionDep

router = APIRouter(prefix="/v1/auth", tags=["auth"])


@router.post(
    "/api-keys",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses=errors(401, 403),
)
async def create_api_key(
    body: ApiKeyRequest, admin: WritingAdminDep, session: SessionDep, info: RequestInfoDep
) -> ApiKeyCreated:
    """Create a key; the answer holds the key itself, shown this once."""
    return await api_keys.create(session, info, admin, name=body.name, scope=body.scope)


@router.get("/api-keys", response_model=list[ApiKeyOut], responses=errors(401, 403))
async def list_api_keys(admin: AdminDep, session: SessionDep) -> list[ApiKeyOut]:
    """The organisation's keys by prefix, with their last use."""
    return await api_keys.listed(session, admin.org_id)


@router.delete(
    "/api-keys/{api_key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(401, 403, 404),
)
async def revoke_api_key(
    api_key_id: UUID, admin: WritingAdminDep, session: SessionDep, info: RequestInfoDep
) -> Response:
    """Revoke a key: it stops working at once."""
    await api_keys.revoke(session, info, admin, api_key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/audit-log", response_model=AuditPage, responses=errors(401, 403))
async def audit_log(
    admin: AdminDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[int | None, Query(ge=1, le=2**62, description="A `next_cursor`.")] = None,
) -> AuditPage:
    """Security events of the organisation, newest first."""
    rows = await audit.entries(session, org_id=admin.org_id, limit=limit, before=before)
    items = [AuditEntry.model_validate(row, from_attributes=True) for row in rows]
    return AuditPage(items=items, next_cursor=items[-1].id if len(items) == limit else None)
