"""Recorded sessions (``/api/ws/audio``, docs/protocol.md section 9) from the
producer's side: open, send, acks, resume after a dropped connection, close.

The session keeps every byte it sent that the server has not yet accepted
(beyond ``samples_received``, or ``bytes_accepted`` for a container), so a
resume resends exactly from where the session stands, as section 9.5 asks.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, Callable

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from . import ws as wsmod
from .config import ClientConfig
from .errors import (CLOSE_ABNORMAL, FlacstreamError, GoingAwayError, ProtocolError,
                     StreamPolicyError, TransportError)
from .flac import Done
from .source import DEFAULT_CHUNK_BYTES, AudioSource, chunks

#: Bytes per sample of each raw format (one channel).
RAW_SAMPLE_BYTES = {"s16le": 2, "s24le": 3, "u8": 1, "mulaw": 1, "alaw": 1}
#: Containers a session decodes as they arrive; they resume at ``bytes_accepted``.
CONTAINER_FORMATS = frozenset({"webm", "mkv", "matroska", "ogg", "flac", "mp3", "aac", "aiff", "caf"})
#: Seconds to wait for the ``session`` message, an ack or ``done``.
REPLY_TIMEOUT_SECONDS = 30.0
#: Connection-only errors after which a producer may resume (section 9.7).
RESUMABLE_CODES = frozenset({"idle_timeout", "slow_reader", "message_too_large",
                             "input_too_fast", "bad_message", "session_moved"})
#: Bytes kept for resending at most; older ones are dropped (a resume that
#: would need them then fails). Acks keep it far smaller: only what was sent
#: and not yet accepted is kept.
MAX_RESEND_BYTES = 64 * 1024 * 1024
#: Resumes :meth:`RecordedSession.send` tries on its own before raising.
DEFAULT_MAX_RESUMES = 3
#: First wait before an automatic resume, in seconds; doubles per attempt.
RESUME_BACKOFF_SECONDS = 0.25

CLOSE_SESSION = json.dumps({"type": "control", "action": "close_session"})
END = json.dumps({"type": "end"})


@dataclass(frozen=True)
class Position:
    """Where a session stands, from its ``session`` message or an ack.

    Attributes:
        samples_received: samples per channel the live session accepted.
        samples_durable: samples per channel synced to the recording.
        chunk_count: binary messages taken, over all producers.
        bytes_accepted: container bytes taken (container sessions), else None.
    """

    samples_received: int = 0
    samples_durable: int = 0
    chunk_count: int = 0
    bytes_accepted: int | None = None

    @classmethod
    def from_message(cls, obj: dict[str, Any]) -> "Position":
        """From a ``session`` or ``ack`` message."""
        accepted = obj.get("bytes_accepted")
        return cls(int(obj.get("samples_received", 0)), int(obj.get("samples_durable", 0)),
                   int(obj.get("chunk_count", 0)), None if accepted is None else int(accepted))


@dataclass
class _Connection:
    """One producer connection and what arrived on it."""

    ws: ClientConnection
    hello: dict[str, Any]
    sent: int = 0  # binary messages sent on it
    acked: int = 0  # acks received on it
    error: dict[str, Any] | None = None
    done: Done | None = None
    reader: asyncio.Task[None] | None = None
    aborted: bool = False  # dropped by abort(); the reader may not have seen it yet
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class RecordedSession:
    """A producer's handle on a recorded session; made by
    :meth:`flacstream.AsyncClient.open_session` or
    :meth:`flacstream.AsyncClient.join_session`.

    Attributes:
        session_id: the session's id.
        position: the latest :class:`Position` the server reported.
        hello: the last ``session`` message (the server's view on joining).
        acks: every ack received, in order (all connections).
        frames: FLAC binary messages received when opened with ``output_flac``.
        chunks: chunk metadata messages (``metadata=True``).
        notices: ``storage`` notices and other text messages.
        done: the ``done`` message once the session has ended.
        resumes: how many times this handle resumed the session.
    """

    def __init__(self, config: ClientConfig, *, fmt: str, channels: int | None,
                 acks: bool, output_flac: bool, metadata: bool,
                 max_resumes: int = DEFAULT_MAX_RESUMES,
                 on_frame: Callable[[bytes], None] | None = None) -> None:
        self._config = config
        self.format = fmt
        if fmt in RAW_SAMPLE_BYTES:
            if not channels:
                raise ValueError(f"format {fmt} needs channels")
            self._frame_bytes: int | None = RAW_SAMPLE_BYTES[fmt] * channels
        else:
            self._frame_bytes = None
        self._acks_on = acks
        self._output_flac = output_flac
        self._metadata = metadata
        self._max_resumes = max_resumes
        self._on_frame = on_frame
        self._conn: _Connection | None = None
        self._pending = bytearray()  # bytes sent, not yet known to be accepted
        self._pending_start = 0  # stream offset of _pending[0]
        self.session_id = ""
        self.position = Position()
        self.hello: dict[str, Any] = {}
        self.acks: list[dict[str, Any]] = []
        self.frames: list[bytes] = []
        self.chunks: list[dict[str, Any]] = []
        self.notices: list[dict[str, Any]] = []
        self.done: Done | None = None
        self.resumes = 0

    def __repr__(self) -> str:
        return (f"RecordedSession(session_id={self.session_id!r}, format={self.format!r}, "
                f"position={self.position!r}, done={self.done is not None})")

    # -- connections -------------------------------------------------------

    @property
    def resumable(self) -> bool:
        """Whether this handle can resend from the server's position after a
        drop: raw PCM (by samples) and containers (by bytes); a ``wav``
        session cannot (its header length is not tracked)."""
        return self.format != "wav"

    def _conn_query(self) -> dict[str, Any]:
        return {"acks": None if self._acks_on else False,
                "output": "flac" if self._output_flac else None,
                "metadata": "chunk" if self._metadata else None}

    async def _attach(self, path: str, query: dict[str, Any]) -> dict[str, Any]:
        ws = await wsmod.connect(self._config, path, query)
        try:
            hello = await wsmod.recv_json(ws, "session", REPLY_TIMEOUT_SECONDS)
        except BaseException:
            await ws.close()
            raise
        if hello.get("type") != "session" or hello.get("role") != "producer":
            await ws.close()
            raise ProtocolError(f"want a producer session message, got {hello}")
        conn = _Connection(ws, hello)
        conn.reader = asyncio.create_task(self._read(conn))
        self._conn = conn
        self.hello = hello
        self.session_id = str(hello["session_id"])
        self.position = Position.from_message(hello)
        return hello

    async def _open(self, query: dict[str, Any]) -> None:
        await self._attach("/api/ws/audio", {**query, **self._conn_query()})

    async def _join(self, session_id: str) -> dict[str, Any]:
        return await self._attach(f"/api/ws/audio/{session_id}",
                                  {"role": "produce", **self._conn_query()})

    def _server_offset(self) -> int | None:
        """The stream byte offset the server has accepted, if it can be known."""
        if self.position.bytes_accepted is not None and self._frame_bytes is None:
            return self.position.bytes_accepted
        if self._frame_bytes is not None:
            return self.position.samples_received * self._frame_bytes
        return None

    def _trim(self) -> None:
        offset = self._server_offset()
        if offset is None or not self.resumable:
            return
        cut = min(max(0, offset - self._pending_start), len(self._pending))
        del self._pending[:cut]
        self._pending_start += cut

    async def _read(self, conn: _Connection) -> None:
        try:
            while True:
                try:
                    msg = await conn.ws.recv()
                except ConnectionClosed:
                    return
                if not isinstance(msg, str):
                    self.frames.append(bytes(msg))
                    if self._on_frame is not None:
                        self._on_frame(self.frames[-1])
                    continue
                obj = wsmod.parse_text(msg)
                kind = obj["type"]
                if kind == "ack":
                    conn.acked += 1
                    self.acks.append(obj)
                    self.position = Position.from_message(obj)
                    self._trim()
                elif kind == "done":
                    conn.done = self.done = Done.from_message(obj)
                elif kind == "error":
                    conn.error = obj
                elif kind == "chunk":
                    self.chunks.append(obj)
                else:
                    self.notices.append(obj)
                conn.changed.set()
        finally:
            conn.changed.set()

    def _ended_error(self, conn: _Connection) -> FlacstreamError:
        return wsmod.closed_error(conn.ws, conn.error, f"session {self.session_id}")

    def _can_resume_after(self, err: FlacstreamError) -> bool:
        if not self.resumable or self.done is not None:
            return False
        if isinstance(err, TransportError):
            return True
        return isinstance(err, (StreamPolicyError, GoingAwayError)) and \
            getattr(err, "code", "") in RESUMABLE_CODES

    # -- the producer's API --------------------------------------------------

    async def resume(self) -> dict[str, Any]:
        """Rejoins the session as its producer on a new connection (the old
        one, if still open, is superseded) and resends what the server had
        not accepted, from the ``samples_received`` (or ``bytes_accepted``)
        of its ``session`` message. Returns that message."""
        if not self.resumable:
            raise FlacstreamError("a wav session cannot be resumed by this client")
        old = self._conn
        hello = await self._join(self.session_id)
        if old is not None:
            if old.reader is not None:
                old.reader.cancel()
            await old.ws.close()
        offset = self._server_offset() or 0
        if offset < self._pending_start:
            raise FlacstreamError(f"the server stands at byte {offset}, before the "
                                  f"{self._pending_start} bytes this client dropped")
        self._trim()
        self.resumes += 1
        if self._pending:
            resend = bytes(self._pending)
            for pos in range(0, len(resend), DEFAULT_CHUNK_BYTES):
                await self._send_raw(resend[pos:pos + DEFAULT_CHUNK_BYTES])
        return hello

    async def _send_raw(self, data: bytes) -> None:
        conn = self._conn
        assert conn is not None
        await conn.ws.send(data)
        conn.sent += 1

    async def send(self, data: bytes | bytearray | memoryview) -> None:
        """Sends one binary message of audio (split anywhere). If the
        connection dropped, or ended with an error that leaves the session
        live (section 9.7), resumes first, up to ``max_resumes`` times."""
        if self._conn is None:
            raise FlacstreamError("the session is not open")
        data = bytes(data)
        if self.resumable:
            self._pending += data
            over = len(self._pending) - MAX_RESEND_BYTES
            if over > 0:
                del self._pending[:over]
                self._pending_start += over
        attempt = 0
        while True:
            try:
                if self._conn.aborted or (self._conn.reader is not None
                                          and self._conn.reader.done()):
                    raise ConnectionClosed(None, None)
                await self._send_raw(data)
                return
            except ConnectionClosed:
                await self._settle(self._conn)
                err = self._ended_error(self._conn)
                if attempt >= self._max_resumes or not self._can_resume_after(err):
                    raise err from None
                await asyncio.sleep(RESUME_BACKOFF_SECONDS * 2 ** attempt)
                attempt += 1
                await self.resume()  # resends `data` too: it is pending
                return

    async def send_all(self, source: AudioSource, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> None:
        """Sends ``source`` in messages of at most ``chunk_bytes``."""
        async for piece in chunks(source, chunk_bytes):
            await self.send(piece)

    async def _settle(self, conn: _Connection) -> None:
        if conn.reader is not None:
            try:
                await asyncio.wait_for(asyncio.shield(conn.reader), wsmod.CLOSE_TIMEOUT_SECONDS)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                pass

    async def wait_acks(self, timeout: float = REPLY_TIMEOUT_SECONDS) -> Position:
        """Waits until every message sent on the current connection is
        acknowledged (with ``acks`` on) and returns the position."""
        conn = self._conn
        if conn is None:
            raise FlacstreamError("the session is not open")
        if not self._acks_on:
            raise FlacstreamError("the session was opened with acks=False")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while conn.acked < conn.sent:
            if conn.reader is not None and conn.reader.done():
                raise self._ended_error(conn)
            conn.changed.clear()
            left = deadline - loop.time()
            if left <= 0:
                raise TransportError(f"{conn.sent - conn.acked} acks missing after {timeout:.0f} s")
            try:
                await asyncio.wait_for(conn.changed.wait(), left)
            except asyncio.TimeoutError:
                pass
        return self.position

    async def _finish(self, message: str, timeout: float) -> Done:
        conn = self._conn
        if conn is None:
            raise FlacstreamError("the session is not open")
        if conn.aborted or (conn.reader is not None and conn.reader.done()):
            # The connection is gone: come back first, so nothing sent is lost.
            await self._settle(conn)
            err = self._ended_error(conn)
            if self._max_resumes < 1 or not self._can_resume_after(err):
                raise err
            await self.resume()
            assert self._conn is not None
            conn = self._conn
        try:
            await conn.ws.send(message)
        except ConnectionClosed:
            pass
        try:
            await asyncio.wait_for(asyncio.shield(conn.reader), timeout)  # type: ignore[arg-type]
        except asyncio.TimeoutError:
            raise TransportError(f"no done within {timeout:.0f} s") from None
        finally:
            await conn.ws.close()
        if conn.done is None:
            raise self._ended_error(conn)
        return conn.done

    async def close(self, timeout: float = REPLY_TIMEOUT_SECONDS) -> Done:
        """Finalizes the session (``close_session``): the server encodes all
        it accepted and every connection gets ``done`` (reason ``closed``)."""
        return await self._finish(CLOSE_SESSION, timeout)

    async def end(self, timeout: float = REPLY_TIMEOUT_SECONDS) -> Done:
        """Finalizes the session with ``{"type":"end"}`` (reason ``complete``)."""
        return await self._finish(END, timeout)

    async def detach(self) -> None:
        """Closes this connection and leaves the session live (its resume
        window starts if no one else is attached)."""
        if self._conn is not None:
            await self._conn.ws.close()
            await self._settle(self._conn)

    def abort(self) -> None:
        """Drops the TCP connection with no close frame, as a network failure
        would (for tests of resume; the next :meth:`send` resumes)."""
        if self._conn is not None:
            self._conn.aborted = True
            self._conn.ws.transport.abort()

    @property
    def close_code(self) -> int | None:
        """The current connection's close code once it ended (1006 for a drop)."""
        if self._conn is None or self._conn.reader is None or not self._conn.reader.done():
            return None
        return self._conn.ws.close_code if self._conn.ws.close_code is not None else CLOSE_ABNORMAL


__all__ = ["RecordedSession", "Position", "RAW_SAMPLE_BYTES", "CONTAINER_FORMATS"]
