"""HTTP requests with :mod:`http.client`: the credential header, TLS, typed
errors, and retries of 429/503 as the client's :class:`RetryPolicy` says.

Blocking; the asyncio client runs these in a worker thread. No proxy from
the environment is used (the service is reached directly).
"""

from __future__ import annotations

import http.client
import io
import json
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Mapping, Union

from .config import ClientConfig, encode_query
from .errors import ProtocolError, TransportError, from_http

#: A request body: bytes, or a binary file (seekable, so a retry can resend it).
Body = Union[bytes, bytearray, memoryview, BinaryIO, None]


@dataclass
class Response:
    """A successful (2xx) answer, its body read whole."""

    status: int
    headers: http.client.HTTPMessage = field(repr=False)
    body: bytes = field(repr=False)

    def json(self) -> dict[str, Any]:
        """The body parsed as a JSON object."""
        obj = json.loads(self.body)
        if not isinstance(obj, dict):
            raise ProtocolError(f"HTTP {self.status} body is not a JSON object: {self.body[:200]!r}")
        return obj


def _send_once(config: ClientConfig, method: str, target: str, body: Body,
               headers: Mapping[str, str]) -> tuple[int, http.client.HTTPMessage, bytes]:
    parts = urllib.parse.urlsplit(config.base_url)
    if config.is_tls:
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname or "", parts.port, timeout=config.http_timeout, context=config.tls())
    else:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=config.http_timeout)
    try:
        conn.request(method, parts.path + target, body=body, headers=dict(headers))
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def request(config: ClientConfig, method: str, path: str, *,
            query: Mapping[str, Any] | None = None, body: Body = None,
            headers: Mapping[str, str] | None = None) -> Response:
    """Sends one request (retried on 429/503 per ``config.retry``) and returns
    its 2xx answer; raises :class:`ServerError` for any other status and
    :class:`TransportError` when the server cannot be reached."""
    all_headers = {**config.headers(), **(headers or {})}
    if isinstance(body, (bytes, bytearray, memoryview)):
        all_headers.setdefault("Content-Length", str(len(body)))
    elif body is not None:
        start = body.tell()
        size = body.seek(0, io.SEEK_END) - start
        body.seek(start)
        all_headers.setdefault("Content-Length", str(size))
    target = path + encode_query(query)
    attempt = 1
    while True:
        try:
            status, resp_headers, data = _send_once(config, method, target, body, all_headers)
        except (OSError, http.client.HTTPException) as e:
            raise TransportError(f"{method} {path}: {type(e).__name__}: {e}") from e
        if 200 <= status < 300:
            return Response(status, resp_headers, data)
        error = from_http(status, data, resp_headers)
        wait = config.retry.delay(error, attempt)
        if wait is None:
            raise error
        if body is not None and not isinstance(body, (bytes, bytearray, memoryview)):
            body.seek(start)
        time.sleep(wait)
        attempt += 1

