"""Opening WebSockets: the credential header, TLS, retries of 429/503
refusals, and the typed error for a refused handshake or a close after an
error message."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from typing import Any, Mapping

from websockets.asyncio.client import ClientConnection, connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from .config import ClientConfig
from .errors import (CLOSE_ABNORMAL, FlacstreamError, ProtocolError, ServerError,
                     TransportError, from_http, from_message)

#: Seconds to wait for the closing handshake once the stream is over.
CLOSE_TIMEOUT_SECONDS = 10.0

_HAS_PROXY = "proxy" in inspect.signature(ws_connect.__init__).parameters

#: Request headers whose values never reach a log.
SECRET_HEADERS = frozenset({"authorization", "sec-websocket-protocol"})


class _RedactingLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """websockets' logger with credentials blanked: at DEBUG it logs every
    handshake header as ``("> %s: %s", name, value)``."""

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if len(args) == 2 and isinstance(args[0], str) and args[0].lower() in SECRET_HEADERS:
            args = (args[0], "<redacted>")
        super().log(level, msg, *args, **kwargs)


_LOGGER = _RedactingLogger(logging.getLogger("websockets.client"), {})


def _kwargs(config: ClientConfig) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "max_size": None,  # the server sends one FLAC frame per message, unbounded by us
        "compression": None,
        "open_timeout": config.connect_timeout,
        "close_timeout": CLOSE_TIMEOUT_SECONDS,
        "additional_headers": config.headers(),
        "logger": _LOGGER,
    }
    if config.is_tls:
        kw["ssl"] = config.tls()
    if _HAS_PROXY:
        kw["proxy"] = None  # never route the service through a proxy from the environment
    return kw


async def connect(config: ClientConfig, path: str,
                  query: Mapping[str, Any] | None = None) -> ClientConnection:
    """Opens a WebSocket to ``path``; a 429 or 503 refusal is retried per
    ``config.retry``. Raises :class:`ServerError` for a refusal and
    :class:`TransportError` when the server cannot be reached."""
    url = config.ws_url(path, query)
    attempt = 1
    while True:
        try:
            return await ws_connect(url, **_kwargs(config))
        except InvalidStatus as e:
            resp = e.response
            error = from_http(resp.status_code, bytes(resp.body or b""), resp.headers)
        except (OSError, InvalidHandshake, asyncio.TimeoutError) as e:
            raise TransportError(f"cannot open {path}: {type(e).__name__}: {e}") from e
        wait = config.retry.delay(error, attempt)
        if wait is None:
            raise error
        await asyncio.sleep(wait)
        attempt += 1


def parse_text(text: str) -> dict[str, Any]:
    """A server text message as a JSON object."""
    try:
        obj = json.loads(text)
    except ValueError as e:
        raise ProtocolError(f"text message is not JSON: {text[:200]!r}") from e
    if not isinstance(obj, dict) or "type" not in obj:
        raise ProtocolError(f"text message has no type: {text[:200]!r}")
    return obj


def closed_error(ws: ClientConnection, error_msg: Mapping[str, Any] | None,
                 what: str) -> FlacstreamError:
    """The error for a connection that ended before its ``done``: the
    server's error message if it sent one, else a transport error."""
    code = ws.close_code
    if error_msg is not None:
        return from_message(error_msg, code)
    reason = ws.close_reason or ""
    return TransportError(f"{what}: connection closed ({code if code is not None else CLOSE_ABNORMAL}"
                          f"{' ' + reason if reason else ''}) before done",
                          close_code=code if code is not None else CLOSE_ABNORMAL)


async def recv_json(ws: ClientConnection, what: str, timeout: float) -> dict[str, Any]:
    """The next message, which must be text JSON; an error message is raised."""
    try:
        msg = await asyncio.wait_for(ws.recv(), timeout)
    except asyncio.TimeoutError as e:
        raise TransportError(f"no {what} message within {timeout:.0f} s") from e
    except ConnectionClosed:
        raise closed_error(ws, None, f"waiting for {what}") from None
    if not isinstance(msg, str):
        raise ProtocolError(f"want a text {what} message, got {len(msg)} binary bytes")
    obj = parse_text(msg)
    if obj["type"] == "error":
        try:
            await asyncio.wait_for(ws.wait_closed(), CLOSE_TIMEOUT_SECONDS)
        except asyncio.TimeoutError:
            pass
        raise from_message(obj, ws.close_code)
    return obj


__all__ = ["connect", "parse_text", "closed_error", "recv_json", "ConnectionClosed",
           "ServerError"]
