"""Where the tests' PostgreSQL and RabbitMQ come from.

The policy, in order:

1. an address given in the environment (``NOVITRAC_TEST_DATABASE_URL``, ``NOVITRAC_TEST_AMQP_URL``),
   otherwise the machine's own server on its standard port;
2. when that server does not answer and a Docker engine does, a container started with
   testcontainers for the rest of the run;
3. otherwise the test is skipped with a message naming what is missing, except under CI
   (``CI=true``), where a missing server fails the test: CI must never go green by skipping.
"""

from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlsplit

import pytest

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


def _answers(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 2
        ):
            return True
    except OSError:
        return False


def _docker_answers() -> bool:
    try:
        import docker  # type: ignore[import-not-found,unused-ignore]

        docker.from_env().ping()
    except Exception:
        return False
    return True


def _unavailable(what: str, url: str) -> None:
    message = f"{what} is not reachable at {url} and no Docker engine can start one"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI requires it)", pytrace=False)
    pytest.skip(message)


@functools.cache
def _container_url(kind: str) -> str:  # pragma: no cover - only where Docker runs
    if kind == "postgres":
        from testcontainers.postgres import PostgresContainer

        pg = PostgresContainer("postgres:16-alpine", driver=None).start()
        return str(pg.get_connection_url())
    from testcontainers.rabbitmq import RabbitMqContainer

    mq = RabbitMqContainer("rabbitmq:3.13-alpine").start()
    params = mq.get_connection_params()
    return f"amqp://guest:guest@{params.host}:{params.port}/"


def postgres_url() -> str:
    """A ``postgresql://`` URL of a reachable server, or skip/fail per the policy above."""
    url = os.environ.get("NOVITRAC_TEST_DATABASE_URL", DEFAULT_DATABASE_URL)
    if _answers(url, 5432):
        return url
    if _docker_answers():
        return _container_url("postgres")
    _unavailable("PostgreSQL", url)
    raise AssertionError("unreachable")


def amqp_url() -> str:
    """An ``amqp://`` URL of a reachable broker, or skip/fail per the policy above."""
    url = os.environ.get("NOVITRAC_TEST_AMQP_URL", DEFAULT_AMQP_URL)
    if _answers(url, 5672):
        return url
    if _docker_answers():
        return _container_url("rabbitmq")
    _unavailable("RabbitMQ", url)
    raise AssertionError("unreachable")
