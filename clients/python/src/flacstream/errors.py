"""The errors this client raises.

Every refusal from the server carries the JSON body of docs/protocol.md,
section 5: ``{"type":"error","code":...,"message":...}``. It becomes a
:class:`ServerError` (or a subclass chosen from the HTTP status or the
WebSocket close code) that keeps the ``code``, the ``message``, the HTTP
``status`` or the ``close_code``, and ``retry_after`` when the server sent
``Retry-After``. Match on ``code``; the message is a human sentence and may
change.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

#: Close codes the server uses (docs/protocol.md, section 5).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED = 1003
CLOSE_ABNORMAL = 1006
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_SUPERSEDED = 4001


class FlacstreamError(Exception):
    """Base class of every error raised by this package."""


class TransportError(FlacstreamError):
    """The server could not be reached, or the connection broke without an
    error message from the server (no code to match on)."""

    def __init__(self, message: str, *, close_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: The WebSocket close code seen, if any (1006 for a dropped TCP connection).
        self.close_code = close_code


class ProtocolError(FlacstreamError):
    """The server sent something docs/protocol.md does not allow here."""


class ServerError(FlacstreamError):
    """The server refused or ended a request with a coded error.

    Attributes:
        code: the stable error code (``unauthorized``, ``rate_limited``, ...).
        message: the server's sentence.
        status: the HTTP status for an HTTP answer or a refused handshake, else None.
        close_code: the WebSocket close code for an error inside a stream, else None.
        retry_after: seconds from ``Retry-After``, when the server sent it.
        request_id: the server's request id (``X-Request-Id`` or the body's
            ``request_id``) when it sends one.
        partial: FLAC bytes a stream received before the error (incomplete
            output: no ``done``); empty for refusals.
    """

    partial: bytes = b""

    def __init__(self, code: str, message: str, *, status: int | None = None,
                 close_code: int | None = None, retry_after: float | None = None,
                 request_id: str | None = None) -> None:
        where = f"HTTP {status}" if status is not None else f"close {close_code}"
        super().__init__(f"{code}: {message} ({where})")
        self.code = code
        self.message = message
        self.status = status
        self.close_code = close_code
        self.retry_after = retry_after
        self.request_id = request_id


class BadRequestError(ServerError):
    """400: a parameter or the input was malformed (``bad_parameter``, WAV header codes, ...)."""


class UnauthorizedError(ServerError):
    """401 ``unauthorized``: no credential, an unknown key, or a bad or expired token."""


class ForbiddenError(ServerError):
    """403: a valid credential that does not reach this (``forbidden``, ``origin_not_allowed``)."""


class NotFoundError(ServerError):
    """404: ``session_not_found``, ``no_recording``, ``auth_disabled``, ..."""


class ConflictError(ServerError):
    """409: ``session_exists``, ``session_closed``, ``session_live``."""


class PayloadError(ServerError):
    """408, 413 or 415: the upload was too slow or too large, or its format is not taken."""


class RateLimitedError(ServerError):
    """429: ``rate_limited`` (with ``retry_after``) or a connection limit."""


class UnavailableError(ServerError):
    """503: ``server_busy``, ``draining``, ``unavailable``, ``session_owned_elsewhere``."""


class InternalServerError(ServerError):
    """500 or close 1011: ``storage`` or ``internal``."""


class InvalidAudioError(ServerError):
    """A stream's input was refused after the upgrade (close 1003 or 1007): a bad
    or unsupported WAV header or container."""


class StreamPolicyError(ServerError):
    """Close 1008 or 1009: ``bad_message``, ``idle_timeout``, ``slow_reader``,
    ``message_too_large``, ``input_too_fast``. On a recorded session only the
    connection ended; the session can be resumed."""


class GoingAwayError(ServerError):
    """Close 1001: the server is shutting down, or (``session_moved``) the
    session moved to another replica; a recorded session can be resumed."""


class SupersededError(ServerError):
    """Close 4001 ``superseded``: a newer producer joined this session."""


_BY_STATUS: dict[int, type[ServerError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    408: PayloadError,
    409: ConflictError,
    413: PayloadError,
    415: PayloadError,
    429: RateLimitedError,
    500: InternalServerError,
    502: InternalServerError,
    503: UnavailableError,
}

_BY_CLOSE: dict[int, type[ServerError]] = {
    CLOSE_GOING_AWAY: GoingAwayError,
    CLOSE_UNSUPPORTED: InvalidAudioError,
    CLOSE_INVALID_DATA: InvalidAudioError,
    CLOSE_POLICY: StreamPolicyError,
    CLOSE_TOO_BIG: StreamPolicyError,
    CLOSE_INTERNAL: InternalServerError,
    CLOSE_SUPERSEDED: SupersededError,
}


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header in its delta-seconds form (the one
    the server sends); None when absent or in another form."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _header(headers: Mapping[str, str] | Any, name: str) -> str | None:
    get = getattr(headers, "get", None)
    return get(name) if get is not None else None


def from_http(status: int, body: bytes, headers: Mapping[str, str] | Any = None) -> ServerError:
    """The error for an HTTP answer (or a refused WebSocket handshake) with
    status ``status``, its body and headers."""
    code, message, request_id = f"http_{status}", "", None
    try:
        obj = json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        obj = None
    if isinstance(obj, dict):
        code = str(obj.get("code") or code)
        message = str(obj.get("message") or "")
        request_id = obj.get("request_id")
    if not message:
        message = body[:200].decode("utf-8", "replace") if body else f"HTTP {status}"
    retry_after = request_id_header = None
    if headers is not None:
        retry_after = parse_retry_after(_header(headers, "Retry-After"))
        request_id_header = _header(headers, "X-Request-Id")
    cls = _BY_STATUS.get(status, ServerError)
    return cls(code, message, status=status, retry_after=retry_after,
               request_id=request_id or request_id_header)


def from_message(obj: Mapping[str, Any], close_code: int | None) -> ServerError:
    """The error for an in-stream ``{"type":"error",...}`` message followed by
    a close with ``close_code``."""
    code = str(obj.get("code") or "unknown")
    cls = _BY_CLOSE.get(close_code or 0, ServerError)
    if code == "superseded":
        cls = SupersededError
    return cls(code, str(obj.get("message") or ""), close_code=close_code,
               request_id=obj.get("request_id"))
