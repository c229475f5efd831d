"""The asyncio client: every endpoint of docs/protocol.md a program needs,
with one base URL, credential, TLS context and retry policy."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Union

from . import http
from .config import (DEFAULT_CONNECT_TIMEOUT_SECONDS, DEFAULT_HTTP_TIMEOUT_SECONDS,
                     ClientConfig, tls_context)
from .credentials import Credential, IssuedToken, api_key as make_api_key, token as make_token
from .listener import Listener
from .recording import DEFAULT_MAX_RESUMES, RecordedSession
from .retry import RetryPolicy
from .source import DEFAULT_CHUNK_BYTES, AudioSource
from .stream import StreamResult, stream

#: An upload body: bytes, a path, or a binary file (seekable, for retries).
UploadSource = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]", BinaryIO]


@dataclass
class ConvertResult:
    """The answer of ``POST /convert``: a complete FLAC file (its STREAMINFO
    already final) and what the source was."""

    flac: bytes = field(repr=False)
    source_codec: str | None
    lossless: bool | None
    filename: str | None


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def _config(base_url: str, *, api_key: str | None, token: str | None,
            credential: Credential | None, ssl_context: ssl.SSLContext | None,
            ca_file: str | None, retry: RetryPolicy | None, connect_timeout: float,
            http_timeout: float) -> ClientConfig:
    given = [c for c in (api_key, token, credential) if c is not None]
    if len(given) > 1:
        raise ValueError("give one of api_key, token and credential (the server refuses two)")
    cred = credential
    if api_key is not None:
        cred = make_api_key(api_key)
    elif token is not None:
        cred = make_token(token)
    if ssl_context is None and ca_file is not None:
        ssl_context = tls_context(ca_file)
    return ClientConfig(base_url, cred, ssl_context, connect_timeout, http_timeout,
                        retry or RetryPolicy())


class AsyncClient:
    """An asyncio client for one flacstream service.

    Args:
        base_url: ``http://host:port`` or ``https://host:port``.
        api_key: an API key (``fsk_…``), sent as ``Authorization: Bearer``.
        token: a token (``fst1_…``) instead of a key.
        ssl_context: TLS settings; default: the system's roots.
        ca_file: a PEM file of the roots to trust instead (a private CA).
        retry: how 429/503 refusals are retried (default: 3 attempts,
            honouring ``Retry-After`` up to 30 s).
        connect_timeout: seconds for a connection to open.
        http_timeout: seconds an HTTP request may wait on the server.

    Credentials never appear in the repr or in errors.
    """

    def __init__(self, base_url: str, *, api_key: str | None = None, token: str | None = None,
                 credential: Credential | None = None, ssl_context: ssl.SSLContext | None = None,
                 ca_file: str | None = None, retry: RetryPolicy | None = None,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
                 http_timeout: float = DEFAULT_HTTP_TIMEOUT_SECONDS) -> None:
        self.config = _config(base_url, api_key=api_key, token=token, credential=credential,
                              ssl_context=ssl_context, ca_file=ca_file, retry=retry,
                              connect_timeout=connect_timeout, http_timeout=http_timeout)

    @classmethod
    def from_config(cls, config: ClientConfig) -> "AsyncClient":
        """A client with these settings."""
        client = cls.__new__(cls)
        client.config = config
        return client

    def __repr__(self) -> str:
        return f"AsyncClient({self.config.base_url!r}, credential={self.config.credential!r})"

    def with_token(self, token: str | IssuedToken) -> "AsyncClient":
        """The same client, authenticated by ``token`` instead."""
        secret = token.token if isinstance(token, IssuedToken) else token
        return AsyncClient.from_config(self.config.with_credential(make_token(secret)))

    async def _http(self, method: str, path: str, **kw: Any) -> http.Response:
        return await asyncio.to_thread(http.request, self.config, method, path, **kw)

    # -- /stream, /convert, /upload --------------------------------------------

    async def stream(self, source: AudioSource, *, level: int | None = None,
                     block_size: int | None = None, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                     on_frame: Callable[[bytes], None] | None = None,
                     send_end: bool = True) -> StreamResult:
        """Streams a WAV (or another container) to ``/stream``; see :func:`flacstream.stream.stream`."""
        return await stream(self.config, source, level=level, block_size=block_size,
                            chunk_bytes=chunk_bytes, on_frame=on_frame, send_end=send_end)

    async def _post_audio(self, path: str, source: UploadSource, query: dict[str, Any]) -> http.Response:
        headers = {"Content-Type": "application/octet-stream"}
        if isinstance(source, (str, os.PathLike)):
            def post() -> http.Response:
                with open(source, "rb") as f:
                    return http.request(self.config, "POST", path, query=query, body=f,
                                        headers=headers)
            return await asyncio.to_thread(post)
        return await self._http("POST", path, query=query, body=source, headers=headers)

    async def convert(self, source: UploadSource, *, level: int | None = None,
                      block_size: int | None = None, float_to: int | None = None) -> ConvertResult:
        """``POST /convert``: the whole file in, a complete FLAC out."""
        resp = await self._post_audio("/convert", source, {"level": level, "block_size": block_size,
                                                           "float_to": float_to})
        lossless = resp.headers.get("Flacstream-Lossless")
        disposition = resp.headers.get("Content-Disposition") or ""
        name = disposition.split("filename=", 1)[1].strip('"') if "filename=" in disposition else None
        return ConvertResult(resp.body, resp.headers.get("Flacstream-Source-Codec"),
                             None if lossless is None else lossless == "true", name)

    async def upload(self, source: UploadSource, *, session_id: str | None = None,
                     user_id: str | None = None, level: int | None = None,
                     block_size: int | None = None, float_to: int | None = None) -> dict[str, Any]:
        """``POST /upload``: stores the file as a recorded session; returns the
        201 answer (``session_id``, ``samples``, ``md5``, ``links``, ...)."""
        resp = await self._post_audio("/upload", source, {
            "session_id": session_id, "user_id": user_id, "level": level,
            "block_size": block_size, "float_to": float_to})
        return resp.json()

    # -- recorded sessions -----------------------------------------------------

    async def open_session(self, *, format: str, sample_rate: int | None = None,
                           channels: int | None = None, session_id: str | None = None,
                           user_id: str | None = None, level: int | None = None,
                           block_size: int | None = None, record: bool | None = None,
                           acks: bool = True, output_flac: bool = False, metadata: bool = False,
                           max_resumes: int = DEFAULT_MAX_RESUMES,
                           on_frame: Callable[[bytes], None] | None = None) -> RecordedSession:
        """Opens a recorded session on ``/api/ws/audio`` as its producer.

        ``format`` is ``s16le``, ``s24le``, ``u8``, ``mulaw``, ``alaw`` (raw:
        ``sample_rate`` and ``channels`` needed), ``wav`` or a container
        (``webm``, ``ogg``, ``flac``, ...). ``session_id``, if given, must be a
        random version-4 UUID (``str(uuid.uuid4())``).
        """
        session = RecordedSession(self.config, fmt=format, channels=channels, acks=acks,
                                  output_flac=output_flac, metadata=metadata,
                                  max_resumes=max_resumes, on_frame=on_frame)
        await session._open({"format": format, "sample_rate": sample_rate, "channels": channels,
                             "session_id": session_id, "user_id": user_id, "level": level,
                             "block_size": block_size, "record": record})
        return session

    async def join_session(self, session_id: str, *, format: str, channels: int | None = None,
                           acks: bool = True, output_flac: bool = False, metadata: bool = False,
                           max_resumes: int = DEFAULT_MAX_RESUMES) -> RecordedSession:
        """Joins a live session as its producer (another process's, say, after
        a crash). The caller resends its audio from the returned session's
        ``position`` (``samples_received`` × frame bytes, or ``bytes_accepted``)."""
        session = RecordedSession(self.config, fmt=format, channels=channels, acks=acks,
                                  output_flac=output_flac, metadata=metadata,
                                  max_resumes=max_resumes)
        session.session_id = session_id
        await session._join(session_id)
        session._pending_start = session._server_offset() or 0
        return session

    async def listen(self, session_id: str, *, metadata: bool = False) -> Listener:
        """Joins a live session as a listener."""
        return await Listener.join(self.config, session_id, metadata=metadata)

    # -- the sessions HTTP API -------------------------------------------------

    async def list_sessions(self, *, user_id: str | None = None, limit: int | None = None,
                            offset: int | None = None) -> dict[str, Any]:
        """``GET /api/audio/sessions``: ``{"sessions":[…],"next_offset":n|null}``, newest first."""
        return (await self._http("GET", "/api/audio/sessions",
                                 query={"user_id": user_id, "limit": limit, "offset": offset})).json()

    async def get_session(self, session_id: str) -> dict[str, Any]:
        """``GET /api/audio/sessions/{id}``: the session record."""
        return (await self._http("GET", f"/api/audio/sessions/{_q(session_id)}")).json()

    async def close_session(self, session_id: str) -> dict[str, Any]:
        """``POST /api/audio/sessions/{id}/close``: finalizes a live session; its final record."""
        return (await self._http("POST", f"/api/audio/sessions/{_q(session_id)}/close")).json()

    async def delete_session(self, session_id: str) -> None:
        """``DELETE /api/audio/sessions/{id}``: the recording and the record."""
        await self._http("DELETE", f"/api/audio/sessions/{_q(session_id)}")

    async def session_audio(self, session_id: str) -> bytes:
        """``GET /api/audio/sessions/{id}/audio``: the recorded FLAC (growing while live)."""
        return (await self._http("GET", f"/api/audio/sessions/{_q(session_id)}/audio")).body

    async def session_analysis(self, session_id: str) -> dict[str, Any]:
        """``GET /api/audio/sessions/{id}/analysis``: loudness, silences, clipping."""
        return (await self._http("GET", f"/api/audio/sessions/{_q(session_id)}/analysis")).json()

    async def session_chunks(self, session_id: str, *, after: int | None = None,
                             limit: int | None = None) -> dict[str, Any]:
        """``GET /api/audio/sessions/{id}/chunks``: chunk metadata, a page."""
        return (await self._http("GET", f"/api/audio/sessions/{_q(session_id)}/chunks",
                                 query={"after": after, "limit": limit})).json()

    # -- tokens and health -----------------------------------------------------

    async def issue_token(self, *, session_id: str | None = None, user_id: str | None = None,
                          ttl_seconds: int | None = None) -> IssuedToken:
        """``POST /api/tokens`` with this client's API key: a short-lived token
        for ``session_id`` and/or ``user_id``."""
        body = {k: v for k, v in (("session_id", session_id), ("user_id", user_id),
                                  ("ttl_seconds", ttl_seconds)) if v is not None}
        resp = await self._http("POST", "/api/tokens", body=json.dumps(body).encode(),
                                headers={"Content-Type": "application/json"})
        obj = resp.json()
        return IssuedToken(str(obj["token"]), int(obj["expires_at"]))

    async def healthy(self) -> bool:
        """Whether ``GET /healthz`` answers 200."""
        try:
            await self._http("GET", "/healthz")
            return True
        except Exception:  # any failure means "not healthy" here
            return False
