"""The `auth` schema: every table the auth service owns."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    Table,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from novitrac_kit.db import service_metadata
from novitrac_kit.inbox import inbox_table
from novitrac_kit.outbox import outbox_table

metadata = service_metadata("auth")
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)


def _created_at() -> Column[object]:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


organizations = Table(
    "organizations",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", Text, nullable=False),
    _created_at(),
)

users = Table(
    "users",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("email", Text, nullable=False, unique=True, comment="Always stored in lower case."),
    Column("name", Text, nullable=False),
    Column("password_hash", Text, nullable=False, comment="argon2id."),
    Column("verified_at", DateTime(timezone=True)),
    _created_at(),
    CheckConstraint("email = lower(email)", name="email_lower_case"),
)

memberships = Table(
    "memberships",
    metadata,
    Column("org_id", Uuid, ForeignKey(organizations.c.id, ondelete="CASCADE"), primary_key=True),
    Column("user_id", Uuid, ForeignKey(users.c.id, ondelete="CASCADE"), primary_key=True),
    Column("role", Text, nullable=False),
    _created_at(),
    CheckConstraint("role IN ('owner', 'admin', 'member')", name="role"),
    Index(None, "user_id"),
)

otp_codes = Table(
    "otp_codes",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, ForeignKey(users.c.id, ondelete="CASCADE"), nullable=False),
    Column("purpose", Text, nullable=False),
    Column("code_hash", LargeBinary, nullable=False, comment="HMAC-SHA256 of id and code."),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("consumed_at", DateTime(timezone=True)),
    _created_at(),
    CheckConstraint("purpose IN ('signup', 'password_reset')", name="purpose"),
    Index(None, "user_id", "purpose", "created_at"),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("token_hash", LargeBinary, nullable=False, unique=True, comment="SHA-256."),
    Column("family_id", Uuid, nullable=False, comment="Every token rotated from one login."),
    Column("user_id", Uuid, ForeignKey(users.c.id, ondelete="CASCADE"), nullable=False),
    Column("org_id", Uuid, ForeignKey(organizations.c.id, ondelete="CASCADE"), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Index(None, "family_id"),
    Index(None, "user_id"),
)

invitations = Table(
    "invitations",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("org_id", Uuid, ForeignKey(organizations.c.id, ondelete="CASCADE"), nullable=False),
    Column("email", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("code_hash", LargeBinary, nullable=False, unique=True, comment="SHA-256."),
    Column("invited_by", Uuid, ForeignKey(users.c.id, ondelete="SET NULL")),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("accepted_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    _created_at(),
    CheckConstraint("role IN ('owner', 'admin', 'member')", name="role"),
    Index(None, "org_id", "email"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("org_id", Uuid, ForeignKey(organizations.c.id, ondelete="CASCADE"), nullable=False),
    Column("key_hash", LargeBinary, nullable=False, unique=True, comment="SHA-256."),
    Column("prefix", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("scope", Text, nullable=False),
    Column("created_by", Uuid, ForeignKey(users.c.id, ondelete="SET NULL")),
    Column("last_used_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    _created_at(),
    CheckConstraint("scope IN ('full', 'read_only')", name="scope"),
    Index(None, "org_id"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("org_id", Uuid, comment="None for events tied to no organisation (unknown email)."),
    Column("actor_user_id", Uuid),
    Column("actor_api_key_id", Uuid),
    Column("action", Text, nullable=False),
    Column("target_type", Text),
    Column("target_id", Text),
    Column("client_address", Text),
    Column("user_agent", Text),
    Column("details", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index(None, "org_id", "id"),
)

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", Text, primary_key=True),
    Column("algorithm", Text, nullable=False),
    Column("public_jwk", JSONB, nullable=False),
    Column("private_key", LargeBinary, nullable=False, comment="PKCS#8, Fernet-encrypted."),
    Column("active", Boolean, nullable=False),
    Column("retired_at", DateTime(timezone=True)),
    _created_at(),
    Index("signing_keys_one_active", "active", unique=True, postgresql_where=text("active")),
)

login_failures = Table(
    "login_failures",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("key", Text, nullable=False, comment="account:<email> or address:<client address>."),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index(None, "key", "at"),
)

login_lockouts = Table(
    "login_lockouts",
    metadata,
    Column("key", Text, primary_key=True),
    Column("locked_until", DateTime(timezone=True), nullable=False),
)
