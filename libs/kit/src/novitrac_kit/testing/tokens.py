"""Access tokens for tests: an issuer with real keys, and a real HTTP server for its JWKS.

A service's tests point their :class:`~novitrac_kit.tokens.JwksVerifier` at a
:class:`JwksServer` and send tokens from :class:`TokenIssuer`::

    issuer = TokenIssuer()
    with JwksServer(issuer) as jwks:
        verifier = JwksVerifier(jwks.url, issuer=issuer.issuer, audience=issuer.audience)
        token = issuer.issue(org_id=org_id, user_id=user_id, role="admin")
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm

from novitrac_kit.config import DEFAULT_JWT_AUDIENCE, DEFAULT_JWT_ISSUER
from novitrac_kit.tokens import Role, Scope

Algorithm = Literal["EdDSA", "RS256"]
PrivateKey = ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class _SigningKey:
    kid: str
    algorithm: Algorithm
    private_key: PrivateKey

    def public_jwk(self) -> dict[str, Any]:
        public = self.private_key.public_key()
        jwk = (
            OKPAlgorithm.to_jwk(public, as_dict=True)
            if isinstance(public, ed25519.Ed25519PublicKey)
            else RSAAlgorithm.to_jwk(public, as_dict=True)
        )
        return {**jwk, "kid": self.kid, "alg": self.algorithm, "use": "sig"}


def _generate(algorithm: Algorithm) -> _SigningKey:
    private_key: PrivateKey = (
        ed25519.Ed25519PrivateKey.generate()
        if algorithm == "EdDSA"
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    return _SigningKey(f"test-{uuid.uuid4().hex[:8]}", algorithm, private_key)


class TokenIssuer:
    """Signs access tokens the way auth does, with keys it generates and can rotate.

    Args:
        issuer: the ``iss`` of its tokens.
        audience: the ``aud`` of its tokens.
        algorithm: the algorithm of its first key.
    """

    def __init__(
        self,
        *,
        issuer: str = DEFAULT_JWT_ISSUER,
        audience: str = DEFAULT_JWT_AUDIENCE,
        algorithm: Algorithm = "EdDSA",
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self._published: dict[str, _SigningKey] = {}
        self._current = self._add(algorithm)

    @property
    def kid(self) -> str:
        """The key id new tokens are signed with."""
        return self._current.kid

    def _add(self, algorithm: Algorithm) -> _SigningKey:
        key = _generate(algorithm)
        self._published[key.kid] = key
        return key

    def rotate(self, algorithm: Algorithm | None = None) -> str:
        """Sign from now on with a new key; the previous ones stay published.

        Args:
            algorithm: the new key's algorithm; by default the current one's.

        Returns:
            The new key's id.
        """
        self._current = self._add(algorithm or self._current.algorithm)
        return self._current.kid

    def retire(self, kid: str) -> None:
        """Stop publishing a key that no longer signs.

        Args:
            kid: a key other than the current one.
        """
        if kid == self._current.kid:
            raise ValueError("cannot retire the key that signs new tokens")
        del self._published[kid]

    def jwks(self) -> dict[str, Any]:
        """The published public keys, as auth serves them at its JWKS URL."""
        return {"keys": [key.public_jwk() for key in self._published.values()]}

    def public_key_pem(self, kid: str | None = None) -> bytes:
        """A published key's public half in PEM (for tests of key-confusion attacks)."""
        key = self._published[kid or self._current.kid]
        return key.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def issue(
        self,
        *,
        org_id: uuid.UUID,
        user_id: uuid.UUID | None = None,
        role: Role | None = None,
        scope: Scope = "full",
        ttl: float = 300.0,
        subject: str | None = None,
        issuer: str | None = None,
        audience: str | None = None,
        issued_at: datetime | None = None,
        not_before: datetime | None = None,
        kid: str | None = None,
        claims: Mapping[str, Any] | None = None,
    ) -> str:
        """Sign an access token.

        Args:
            org_id: the organisation it acts for.
            user_id: the user it acts for, if any.
            role: the user's role; ``owner`` by default when a user is given.
            scope: ``full`` or ``read``.
            ttl: seconds from ``issued_at`` to expiry (negative for an expired token).
            subject: the ``sub`` claim; by default the user id, else ``org:<org_id>``.
            issuer: the ``iss`` claim instead of the issuer's own.
            audience: the ``aud`` claim instead of the issuer's own.
            issued_at: the ``iat`` claim; now by default.
            not_before: an ``nbf`` claim, if wanted.
            kid: sign with this published key instead of the current one.
            claims: extra claims, overriding the ones above.

        Returns:
            The compact JWT.
        """
        key = self._published[kid or self._current.kid]
        now = issued_at or datetime.now(UTC)
        payload: dict[str, Any] = {
            "iss": issuer or self.issuer,
            "aud": audience or self.audience,
            "sub": subject or (str(user_id) if user_id else f"org:{org_id}"),
            "iat": now,
            "exp": now + timedelta(seconds=ttl),
            "org_id": str(org_id),
            "scope": scope,
        }
        if user_id is not None:
            payload["user_id"] = str(user_id)
            payload["role"] = role or "owner"
        elif role is not None:
            payload["role"] = role
        if not_before is not None:
            payload["nbf"] = not_before
        payload.update(claims or {})
        return jwt.encode(
            payload, key.private_key, algorithm=key.algorithm, headers={"kid": key.kid}
        )


class JwksServer:
    """Serves a :class:`TokenIssuer`'s current JWKS over loopback HTTP from a thread.

    Use as a context manager. Each request reads the issuer's keys at that moment, so a
    rotation is visible on the next fetch.

    Attributes:
        issuer: whose keys it serves.
        requests: how many JWKS requests it has answered.
        failing: while True, every request answers 503.
    """

    path = "/.well-known/jwks.json"

    def __init__(self, issuer: TokenIssuer) -> None:
        self.issuer = issuer
        self.requests = 0
        self.failing = False
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        """The JWKS URL."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self.path}"

    def __enter__(self) -> JwksServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != server.path:
                    self.send_error(404)
                    return
                with server._lock:
                    server.requests += 1
                if server.failing:
                    self.send_error(503)
                    return
                body = json.dumps(server.issuer.jwks()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        return Handler
