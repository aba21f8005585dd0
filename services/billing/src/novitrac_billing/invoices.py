"""Invoices and receipts: what Stripe billed the organisation, and what it has paid.

Invoices are Stripe's and are read from Stripe at request time (it owns their status, numbers and
pages); an organisation Stripe has never seen (no customer yet) has none, and a read never
creates a customer. Receipts are billing's own records of what it credited, because those are
what the balance stands on: credit packs from the completed checkouts, subscription payments from
the paid invoices, each with the Stripe page for it where Stripe has one.
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_billing.db import accounts, checkouts, credit_packs
from novitrac_billing.schemas import InvoiceOut, InvoicePage, ReceiptList, ReceiptOut
from novitrac_billing.stripe_gateway import Invoice, StripeGateway
from novitrac_kit.errors import NotFound

RECEIPT_INVOICES = 100
"""Paid invoices listed among the receipts: eight years of a monthly plan."""


async def invoice_page(
    session: AsyncSession,
    gateway: StripeGateway,
    org_id: UUID,
    *,
    limit: int,
    after: str | None,
) -> InvoicePage:
    """A page of the organisation's invoices, newest first."""
    customer = await _customer(session, org_id)
    if customer is None:
        return InvoicePage(items=[], next_cursor=None)
    found, more = await gateway.invoices(customer, limit=limit, starting_after=after)
    items = [_out(invoice) for invoice in found]
    return InvoicePage(items=items, next_cursor=items[-1].id if more and items else None)


async def one_invoice(
    session: AsyncSession, gateway: StripeGateway, org_id: UUID, invoice_id: str
) -> InvoiceOut:
    """One of the organisation's invoices; another's is as unknown as one that does not exist."""
    customer = await _customer(session, org_id)
    found = await gateway.invoice(invoice_id) if customer is not None else None
    if found is None or found.customer != customer:
        raise NotFound(f"invoice {invoice_id} not found")
    return _out(found)


async def receipts(session: AsyncSession, gateway: StripeGateway, org_id: UUID) -> ReceiptList:
    """Everything the organisation has paid, newest first."""
    packs = (
        await session.execute(
            select(checkouts, credit_packs.c.name)
            .join(credit_packs, credit_packs.c.id == checkouts.c.credit_pack_id)
            .where(
                checkouts.c.org_id == org_id,
                checkouts.c.kind == "credit_pack",
                checkouts.c.status == "completed",
            )
        )
    ).all()
    items = [
        ReceiptOut(
            kind="credit_pack",
            reference=row.id,
            description=f"Credit pack: {row.name}",
            amount=row.amount,
            currency=row.currency,
            paid_at=row.completed_at or row.created_at,
            receipt_url=None,
        )
        for row in packs
    ]
    customer = await _customer(session, org_id)
    if customer is not None:
        paid, _ = await gateway.invoices(customer, limit=RECEIPT_INVOICES, paid=True)
        items += [
            ReceiptOut(
                kind="invoice",
                reference=invoice.id,
                description=f"Invoice {invoice.number or invoice.id}",
                amount=invoice.amount_paid,
                currency=invoice.currency,
                paid_at=invoice.paid_at or invoice.created,
                receipt_url=invoice.hosted_invoice_url,
            )
            for invoice in paid
            if invoice.amount_paid > 0
        ]
    items.sort(key=lambda receipt: receipt.paid_at, reverse=True)
    return ReceiptList(items=items)


async def _customer(session: AsyncSession, org_id: UUID) -> str | None:
    customer: str | None = await session.scalar(
        select(accounts.c.stripe_customer_id).where(accounts.c.org_id == org_id)
    )
    return customer


def _out(invoice: Invoice) -> InvoiceOut:
    return InvoiceOut(
        id=invoice.id,
        number=invoice.number,
        status=invoice.status,
        currency=invoice.currency,
        amount_due=invoice.amount_due,
        amount_paid=invoice.amount_paid,
        amount_remaining=invoice.amount_remaining,
        period_start=invoice.period_start,
        period_end=invoice.period_end,
        created_at=invoice.created,
        paid_at=invoice.paid_at,
        hosted_invoice_url=invoice.hosted_invoice_url,
        invoice_pdf=invoice.invoice_pdf,
    )
