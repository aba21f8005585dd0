"""Plans and credit packs: data in the database, read-only and cached once read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_billing.db import credit_packs, plans
from novitrac_contracts.billing import PlanLimits

Increment = Literal["second", "minute"]


@dataclass(frozen=True)
class Plan:
    """A plan as written by its migration: prices, rates and limits in the smallest unit."""

    id: UUID
    code: str
    name: str
    currency: str
    monthly_price: int
    included_credit: int
    trial_credit: int
    outbound_rate: int
    inbound_rate: int
    increment: Increment
    minimum_seconds: int
    concurrent_calls: int
    phone_numbers: int
    minimum_call_balance: int
    low_balance_threshold: int
    is_default: bool
    offered: bool
    position: int

    @property
    def limits(self) -> PlanLimits:
        """What the plan allows, as telephony receives it."""
        return PlanLimits(
            concurrent_calls=self.concurrent_calls,
            phone_numbers=self.phone_numbers,
            minimum_call_balance=self.minimum_call_balance,
        )


@dataclass(frozen=True)
class CreditPack:
    """A one-off purchase of credit."""

    id: UUID
    code: str
    name: str
    currency: str
    price: int
    credit: int
    offered: bool
    position: int


class UnknownPlan(LookupError):
    """No plan or credit pack has that code or id."""


_PLAN_FIELDS = [plans.c[name] for name in Plan.__dataclass_fields__]
_PACK_FIELDS = [credit_packs.c[name] for name in CreditPack.__dataclass_fields__]
# Rows never change once written (a new price is a new plan), so a process may keep them.
_plans: dict[UUID, Plan] = {}


async def all_plans(session: AsyncSession) -> list[Plan]:
    """Every plan, in display order (and the cache refreshed)."""
    rows = (await session.execute(select(*_PLAN_FIELDS).order_by(plans.c.position))).all()
    found = [Plan(**row._mapping) for row in rows]
    _plans.update((plan.id, plan) for plan in found)
    return found


async def plan_by_id(session: AsyncSession, plan_id: UUID) -> Plan:
    """The plan with this id (from the cache when it was read before)."""
    plan = _plans.get(plan_id)
    if plan is None:
        row = (await session.execute(select(*_PLAN_FIELDS).where(plans.c.id == plan_id))).first()
        if row is None:
            raise UnknownPlan(str(plan_id))
        plan = _plans[plan_id] = Plan(**row._mapping)
    return plan


async def plan_by_code(session: AsyncSession, code: str) -> Plan:
    """The plan with this code."""
    for plan in await all_plans(session):
        if plan.code == code:
            return plan
    raise UnknownPlan(code)


async def default_plan(session: AsyncSession) -> Plan:
    """The plan every new organisation starts on."""
    for plan in await all_plans(session):
        if plan.is_default:
            return plan
    raise UnknownPlan("default")


async def all_credit_packs(session: AsyncSession) -> list[CreditPack]:
    """Every credit pack, in display order."""
    query = select(*_PACK_FIELDS).order_by(credit_packs.c.position)
    return [CreditPack(**row._mapping) for row in (await session.execute(query)).all()]


async def credit_pack_by_code(session: AsyncSession, code: str) -> CreditPack:
    """The credit pack with this code."""
    row = (await session.execute(select(*_PACK_FIELDS).where(credit_packs.c.code == code))).first()
    if row is None:
        raise UnknownPlan(code)
    return CreditPack(**row._mapping)
