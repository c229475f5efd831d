"""Where the server is and how to talk to it: base URL, credential, TLS,
timeouts and retries, shared by every request of a client."""

from __future__ import annotations

import ssl
import urllib.parse
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from .credentials import Credential
from .retry import RetryPolicy

#: Seconds to wait for a connection to open (TCP, TLS, WebSocket handshake).
DEFAULT_CONNECT_TIMEOUT_SECONDS = 15.0
#: Seconds an HTTP request may wait for its answer's next bytes.
DEFAULT_HTTP_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class ClientConfig:
    """Settings of a client (see :class:`flacstream.AsyncClient`).

    Attributes:
        base_url: ``http://host:port`` or ``https://host:port`` (a path prefix
            is kept); WebSockets use ``ws``/``wss`` on the same address.
        credential: an API key or token, or None while auth is off.
        ssl_context: for https/wss; None means the system's roots.
        connect_timeout: seconds for a connection to open.
        http_timeout: seconds an HTTP request may wait on the server.
        retry: how 429 and 503 refusals are retried.
    """

    base_url: str
    credential: Credential | None = None
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_SECONDS
    http_timeout: float = DEFAULT_HTTP_TIMEOUT_SECONDS
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.base_url)
        if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
            raise ValueError(f"base_url must be http(s)://host[:port], got {self.base_url!r}")
        scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
        object.__setattr__(self, "base_url",
                           urllib.parse.urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", "")))

    @property
    def is_tls(self) -> bool:
        """Whether requests go over TLS."""
        return self.base_url.startswith("https:")

    def tls(self) -> ssl.SSLContext | None:
        """The TLS context to use, or None for plain connections."""
        if not self.is_tls:
            return None
        return self.ssl_context or ssl.create_default_context()

    def with_credential(self, credential: Credential | None) -> "ClientConfig":
        """The same settings with another credential."""
        return replace(self, credential=credential)

    def headers(self) -> dict[str, str]:
        """Headers every request carries (the credential, if any)."""
        return self.credential.headers() if self.credential else {}

    def http_url(self, path: str, query: Mapping[str, Any] | None = None) -> str:
        """The absolute http(s) URL of ``path`` with ``query`` (None values left out)."""
        return self.base_url + path + encode_query(query)

    def ws_url(self, path: str, query: Mapping[str, Any] | None = None) -> str:
        """The absolute ws(s) URL of ``path`` with ``query``."""
        return "ws" + self.base_url[len("http"):] + path + encode_query(query)


def encode_query(query: Mapping[str, Any] | None) -> str:
    """``?a=1&b=x`` from a mapping; None values are left out, booleans are
    ``true``/``false``."""
    if not query:
        return ""
    items = []
    for k, v in query.items():
        if v is None:
            continue
        if isinstance(v, bool):
            v = "true" if v else "false"
        items.append((k, str(v)))
    return "?" + urllib.parse.urlencode(items) if items else ""


def tls_context(ca_file: str | None = None) -> ssl.SSLContext:
    """A verifying TLS context: the system's roots, or only ``ca_file``'s."""
    return ssl.create_default_context(cafile=ca_file)
