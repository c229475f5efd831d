"""``/stream``: one WAV (or another container) in, one FLAC stream out, on
one WebSocket; nothing is stored (docs/protocol.md, sections 1-8)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, Callable

from websockets.exceptions import ConnectionClosed

from . import ws as wsmod
from .config import ClientConfig
from .errors import ProtocolError, ServerError
from .flac import STREAM_HEADER_BYTES, Done, patch_streaminfo
from .source import DEFAULT_CHUNK_BYTES, AudioSource, chunks

#: The text message that says no more input follows.
END_MESSAGE = json.dumps({"type": "end"})


@dataclass
class StreamResult:
    """A finished stream.

    Attributes:
        header: the first binary message: ``fLaC`` and the provisional STREAMINFO.
        frames: the FLAC frames, one per binary message, in order.
        done: the server's ``done``.
        notices: text messages other than ``done`` (none today; kept, not dropped).
        close_code: the server's close code (1000 for ``complete``, 1001 for
            ``going_away``, 1008 for ``max_session_length``).
    """

    header: bytes = field(repr=False)
    frames: list[bytes] = field(repr=False)
    done: Done
    notices: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None

    @property
    def flac(self) -> bytes:
        """The whole FLAC file, its STREAMINFO patched with the final one."""
        return patch_streaminfo(self.header + b"".join(self.frames), self.done.streaminfo)


async def _send_all(conn: Any, source: AudioSource, chunk_bytes: int, send_end: bool) -> None:
    try:
        async for piece in chunks(source, chunk_bytes):
            await conn.send(piece)
        if send_end:
            await conn.send(END_MESSAGE)
    except ConnectionClosed:
        pass  # the server finished (or failed) before all bytes were sent


async def stream(config: ClientConfig, source: AudioSource, *, level: int | None = None,
                 block_size: int | None = None, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                 on_frame: Callable[[bytes], None] | None = None,
                 send_end: bool = True) -> StreamResult:
    """Streams ``source`` to ``/stream`` and returns the FLAC.

    Sending and receiving run side by side, so frames arrive while the input
    is still being sent (``on_frame`` sees each binary message as it comes).
    ``{"type":"end"}`` follows the last byte, so streaming-size WAV headers
    work (``send_end=False`` leaves it out: the server then finishes by itself
    once the declared ``data`` chunk is complete). Raises a :class:`ServerError` subclass for the server's error (its
    ``partial`` holds the FLAC bytes received before it).
    """
    conn = await wsmod.connect(config, "/stream", {"level": level, "block_size": block_size})
    binaries: list[bytes] = []
    notices: list[dict[str, Any]] = []
    done: Done | None = None
    error: dict[str, Any] | None = None
    sender = asyncio.create_task(_send_all(conn, source, chunk_bytes, send_end))
    try:
        while True:
            try:
                msg = await conn.recv()
            except ConnectionClosed:
                break
            if isinstance(msg, str):
                obj = wsmod.parse_text(msg)
                if obj["type"] == "done":
                    done = Done.from_message(obj)
                elif obj["type"] == "error":
                    error = obj
                else:
                    notices.append(obj)
            else:
                if done is not None:
                    raise ProtocolError("binary message after done")
                binaries.append(bytes(msg))
                if on_frame is not None:
                    on_frame(binaries[-1])
    finally:
        if not sender.done():
            sender.cancel()
        try:
            await sender
        except asyncio.CancelledError:
            pass
        await conn.close()
    if done is None:
        err = wsmod.closed_error(conn, error, "/stream")
        if isinstance(err, ServerError):
            err.partial = b"".join(binaries)
        raise err
    if not binaries or len(binaries[0]) != STREAM_HEADER_BYTES or binaries[0][:4] != b"fLaC":
        raise ProtocolError("the first binary message is not the 42-byte fLaC header")
    return StreamResult(binaries[0], binaries[1:], done, notices, conn.close_code)
