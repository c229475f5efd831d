"""Listeners: join a live recorded session (``/api/ws/audio/{id}?role=listen``)
and receive its FLAC as it is encoded (docs/protocol.md, section 9.5)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from . import ws as wsmod
from .config import ClientConfig
from .errors import ProtocolError
from .flac import STREAM_HEADER_BYTES, Done, patch_streaminfo
from .recording import REPLY_TIMEOUT_SECONDS


@dataclass
class ListenResult:
    """What a listener heard.

    Attributes:
        header: the 42-byte ``fLaC`` header with the provisional STREAMINFO.
        frames: the frames encoded after the listener joined.
        done: the session's ``done``.
        close_code: the server's close code (1000 for ``closed``).
    """

    header: bytes = field(repr=False)
    frames: list[bytes] = field(repr=False)
    done: Done
    close_code: int | None = None

    @property
    def complete(self) -> bool:
        """Whether the listener heard every frame of the session."""
        return self.done.frames == len(self.frames)

    @property
    def flac(self) -> bytes:
        """The FLAC heard; its STREAMINFO is the final one only when the
        listener heard from the first frame (:attr:`complete`), as section
        9.5 says, else it stays provisional."""
        data = self.header + b"".join(self.frames)
        return patch_streaminfo(data, self.done.streaminfo) if self.complete else data


class Listener:
    """A listener connection. Iterate it for the binary messages (header,
    then frames); :attr:`done` is set once the session ended."""

    def __init__(self, ws: ClientConnection, hello: dict[str, Any]) -> None:
        self._ws = ws
        #: The ``session`` message the server sent on joining.
        self.hello = hello
        self.session_id = str(hello.get("session_id", ""))
        self.done: Done | None = None
        self._error: dict[str, Any] | None = None
        #: Text messages other than ``done`` (chunk metadata, notices).
        self.notices: list[dict[str, Any]] = []

    def __repr__(self) -> str:
        return f"Listener(session_id={self.session_id!r}, done={self.done is not None})"

    @classmethod
    async def join(cls, config: ClientConfig, session_id: str, *,
                   metadata: bool = False) -> "Listener":
        """Joins ``session_id`` as a listener."""
        ws = await wsmod.connect(config, f"/api/ws/audio/{session_id}",
                                 {"role": "listen", "metadata": "chunk" if metadata else None})
        try:
            hello = await wsmod.recv_json(ws, "session", REPLY_TIMEOUT_SECONDS)
        except BaseException:
            await ws.close()
            raise
        if hello.get("type") != "session" or hello.get("role") != "listener":
            await ws.close()
            raise ProtocolError(f"want a listener session message, got {hello}")
        return cls(ws, hello)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            try:
                msg = await self._ws.recv()
            except ConnectionClosed:
                break
            if isinstance(msg, str):
                obj = wsmod.parse_text(msg)
                if obj["type"] == "done":
                    self.done = Done.from_message(obj)
                elif obj["type"] == "error":
                    self._error = obj
                else:
                    self.notices.append(obj)
            else:
                yield bytes(msg)
        if self.done is None:
            raise wsmod.closed_error(self._ws, self._error, f"listener of {self.session_id}")

    async def collect(self) -> ListenResult:
        """Receives until the session ends; returns what was heard."""
        received = [m async for m in self]
        if not received or len(received[0]) != STREAM_HEADER_BYTES or received[0][:4] != b"fLaC":
            raise ProtocolError("the listener's first binary message is not the fLaC header")
        assert self.done is not None
        return ListenResult(received[0], received[1:], self.done, self._ws.close_code)

    async def close(self) -> None:
        """Leaves the session (it goes on)."""
        await self._ws.close()
