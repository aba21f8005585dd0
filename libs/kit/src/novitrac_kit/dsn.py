"""Database URLs as people write them, turned into what SQLAlchemy and asyncpg expect."""

from __future__ import annotations


def sqlalchemy_url(url: str) -> str:
    """A ``postgresql://`` or ``postgres://`` URL as ``postgresql+asyncpg://``; others as given."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme in {"postgresql", "postgres"}:
        return f"postgresql+asyncpg://{rest}"
    return url


def asyncpg_url(url: str) -> str:
    """``postgresql+asyncpg://...`` as the plain ``postgresql://...`` asyncpg connects to."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme.startswith("postgresql+"):
        return f"postgresql://{rest}"
    return url
