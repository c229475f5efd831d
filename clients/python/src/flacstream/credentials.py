"""Credentials: an API key or a token, sent as ``Authorization: Bearer``
(docs/protocol.md, section 12.2). The secret never appears in a repr, a str
or an error message."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Credential:
    """An API key (``fsk_…``) or a token (``fst1_…``); which one decides only
    what the server lets it do (only an API key may issue tokens)."""

    secret: str = field(repr=False)
    #: ``"api_key"`` or ``"token"``.
    kind: str = "api_key"

    def __post_init__(self) -> None:
        if not self.secret or any(c in self.secret for c in "\r\n"):
            raise ValueError(f"empty or multi-line {self.kind}")

    def headers(self) -> dict[str, str]:
        """The header that carries it, on HTTP requests and WebSocket handshakes."""
        return {"Authorization": f"Bearer {self.secret}"}

    def __repr__(self) -> str:
        return f"Credential(kind={self.kind!r}, secret=<redacted>)"

    __str__ = __repr__


def api_key(secret: str) -> Credential:
    """An API key as printed by ``flacstream key``."""
    return Credential(secret, "api_key")


def token(secret: str) -> Credential:
    """A token from ``POST /api/tokens``."""
    return Credential(secret, "token")


@dataclass(frozen=True)
class IssuedToken:
    """A token the server issued, and when it expires (Unix seconds)."""

    token: str = field(repr=False)
    expires_at: int

    def credential(self) -> Credential:
        """The token as a credential for a client."""
        return token(self.token)
