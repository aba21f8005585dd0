"""Email templates: a registry of name -> category and subject, with text and HTML parts as files.

Each template ``<name>`` has ``templates/<name>.txt`` (plain text) and ``templates/<name>.html``
(autoescaped, extending ``_layout.html``) in this package; its subject is a one-line template. A
later issue adds an email by adding its two files and one :func:`register` call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from novitrac_notifications.categories import EmailCategory


@dataclass(frozen=True)
class EmailTemplate:
    """One kind of email.

    Attributes:
        name: its name, also the stem of its two files.
        category: the preference category it belongs to.
        subject: the subject line, a template over the same variables as the body.
    """

    name: str
    category: EmailCategory
    subject: str


@dataclass(frozen=True)
class RenderedEmail:
    """An email ready to send."""

    subject: str
    text: str
    html: str


TEMPLATES: dict[str, EmailTemplate] = {}


def register(template: EmailTemplate) -> EmailTemplate:
    """Add ``template`` to the registry (its files must exist in ``templates/``)."""
    if template.name in TEMPLATES:
        raise ValueError(f"email template {template.name!r} is already registered")
    TEMPLATES[template.name] = template
    return template


SIGNUP_CODE = register(
    EmailTemplate("signup_code", EmailCategory.SECURITY, "Confirm your email for Novitrac")
)
PASSWORD_RESET_CODE = register(
    EmailTemplate("password_reset_code", EmailCategory.SECURITY, "Reset your Novitrac password")
)
INVITATION = register(
    EmailTemplate("invitation", EmailCategory.SECURITY, "You are invited to join {{ org_name }}")
)
MEMBER_JOINED = register(
    EmailTemplate(
        "member_joined", EmailCategory.TEAM, "{{ member }} joined {{ org_name }} as {{ role }}"
    )
)
BALANCE_LOW = register(
    EmailTemplate(
        "balance_low", EmailCategory.BILLING, "Your Novitrac balance is low: {{ balance }}"
    )
)
PAYMENT_FAILED = register(
    EmailTemplate("payment_failed", EmailCategory.BILLING, "Payment of {{ amount }} failed")
)
ACCOUNT_SUSPENDED = register(
    EmailTemplate("account_suspended", EmailCategory.BILLING, "Your Novitrac account is suspended")
)
ACCOUNT_REINSTATED = register(
    EmailTemplate(
        "account_reinstated", EmailCategory.BILLING, "Your Novitrac account is active again"
    )
)
PAYMENT_RECEIPT = register(
    EmailTemplate(
        "payment_receipt", EmailCategory.BILLING, "Receipt for your payment of {{ amount }}"
    )
)
PLAN_CHANGED = register(
    EmailTemplate(
        "plan_changed", EmailCategory.BILLING, "Your Novitrac plan is now {{ plan_name }}"
    )
)

_text = Environment(
    loader=PackageLoader("novitrac_notifications", "templates"),
    autoescape=False,
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)
_html = Environment(
    loader=PackageLoader("novitrac_notifications", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
)
_WHITESPACE = re.compile(r"\s+")


def template(name: str) -> EmailTemplate:
    """The registered template called ``name``.

    Raises:
        KeyError: no such template.
    """
    return TEMPLATES[name]


def render_subject(name: str, variables: Mapping[str, Any]) -> str:
    """The subject line of ``name`` for ``variables``, on one line (safe as a header)."""
    subject = _text.from_string(template(name).subject).render(variables)
    return _WHITESPACE.sub(" ", subject).strip()


def render(name: str, variables: Mapping[str, Any]) -> RenderedEmail:
    """Render the subject, text and HTML parts of ``name``.

    Raises:
        KeyError: no such template.
        jinja2.TemplateError: a template is missing or uses a variable not given.
    """
    return RenderedEmail(
        subject=render_subject(name, variables),
        text=_text.get_template(f"{name}.txt").render(variables),
        html=_html.get_template(f"{name}.html").render(variables),
    )
