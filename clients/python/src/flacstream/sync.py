"""The blocking client: the asyncio client run on an event loop of its own,
in a background thread, so plain scripts need no ``asyncio``."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Awaitable, Callable, TypeVar

from .client import AsyncClient, ConvertResult, UploadSource
from .credentials import IssuedToken
from .flac import Done
from .listener import Listener, ListenResult
from .recording import Position, RecordedSession
from .source import DEFAULT_CHUNK_BYTES, AudioSource
from .stream import StreamResult

T = TypeVar("T")


class _Loop:
    """An event loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="flacstream-loop",
                                        daemon=True)
        self._thread.start()

    def run(self, coro: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()  # type: ignore[arg-type]

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join()
        self.loop.close()


class SyncRecordedSession:
    """Blocking twin of :class:`flacstream.RecordedSession` (same methods)."""

    def __init__(self, loop: _Loop, inner: RecordedSession) -> None:
        self._loop = loop
        #: The asyncio session underneath (attributes: acks, frames, done, ...).
        self.inner = inner

    def __repr__(self) -> str:
        return f"Sync{self.inner!r}"

    @property
    def session_id(self) -> str:
        """The session's id."""
        return self.inner.session_id

    @property
    def position(self) -> Position:
        """The latest position the server reported."""
        return self.inner.position

    @property
    def hello(self) -> dict[str, Any]:
        """The last ``session`` message."""
        return self.inner.hello

    @property
    def acks(self) -> list[dict[str, Any]]:
        """Every ack received, in order."""
        return self.inner.acks

    @property
    def chunks(self) -> list[dict[str, Any]]:
        """Chunk metadata messages (``metadata=True``)."""
        return self.inner.chunks

    @property
    def frames(self) -> list[bytes]:
        """FLAC messages received (``output_flac=True``)."""
        return self.inner.frames

    @property
    def notices(self) -> list[dict[str, Any]]:
        """``storage`` notices and other text messages."""
        return self.inner.notices

    @property
    def done(self) -> Done | None:
        """The ``done`` message once the session ended."""
        return self.inner.done

    @property
    def resumes(self) -> int:
        """How many times this handle resumed the session."""
        return self.inner.resumes

    @property
    def close_code(self) -> int | None:
        """The current connection's close code once it ended."""
        return self.inner.close_code

    def send(self, data: bytes | bytearray | memoryview) -> None:
        """Sends one binary message (resuming after a drop)."""
        self._loop.run(self.inner.send(data))

    def send_all(self, source: AudioSource, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> None:
        """Sends ``source`` in messages of at most ``chunk_bytes``."""
        self._loop.run(self.inner.send_all(source, chunk_bytes))

    def wait_acks(self, timeout: float = 30.0) -> Position:
        """Waits for every message on this connection to be acknowledged."""
        return self._loop.run(self.inner.wait_acks(timeout))

    def resume(self) -> dict[str, Any]:
        """Rejoins as producer and resends what the server had not accepted."""
        return self._loop.run(self.inner.resume())

    def close(self, timeout: float = 30.0) -> Done:
        """Finalizes the session (``close_session``)."""
        return self._loop.run(self.inner.close(timeout))

    def end(self, timeout: float = 30.0) -> Done:
        """Finalizes the session with ``end``."""
        return self._loop.run(self.inner.end(timeout))

    def detach(self) -> None:
        """Leaves the session live."""
        self._loop.run(self.inner.detach())

    def abort(self) -> None:
        """Drops the TCP connection (for tests of resume)."""
        self._loop.loop.call_soon_threadsafe(self.inner.abort)


class SyncListener:
    """Blocking twin of :class:`flacstream.Listener`."""

    def __init__(self, loop: _Loop, inner: Listener) -> None:
        self._loop = loop
        #: The asyncio listener underneath.
        self.inner = inner

    @property
    def hello(self) -> dict[str, Any]:
        """The ``session`` message the server sent on joining."""
        return self.inner.hello

    def collect(self) -> ListenResult:
        """Receives until the session ends."""
        return self._loop.run(self.inner.collect())

    def close(self) -> None:
        """Leaves the session."""
        self._loop.run(self.inner.close())


class Client:
    """A blocking client; the same arguments and methods as
    :class:`flacstream.AsyncClient`. Use it as a context manager, or call
    :meth:`close` to stop its background thread."""

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        self._async = AsyncClient(base_url, **kwargs)
        self._loop = _Loop()

    @classmethod
    def _wrap(cls, inner: AsyncClient) -> "Client":
        client = cls.__new__(cls)
        client._async = inner
        client._loop = _Loop()
        return client

    def __repr__(self) -> str:
        return f"Client({self._async.config.base_url!r}, credential={self._async.config.credential!r})"

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stops the background event loop."""
        self._loop.stop()

    @property
    def asyncio(self) -> AsyncClient:
        """The asyncio client underneath."""
        return self._async

    def with_token(self, token: str | IssuedToken) -> "Client":
        """A new client authenticated by ``token`` (close it too)."""
        return Client._wrap(self._async.with_token(token))

    def _run(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        return self._loop.run(fn(*args, **kwargs))

    def stream(self, source: AudioSource, **kwargs: Any) -> StreamResult:
        """``/stream``: see :meth:`AsyncClient.stream`."""
        return self._run(self._async.stream, source, **kwargs)

    def convert(self, source: UploadSource, **kwargs: Any) -> ConvertResult:
        """``POST /convert``."""
        return self._run(self._async.convert, source, **kwargs)

    def upload(self, source: UploadSource, **kwargs: Any) -> dict[str, Any]:
        """``POST /upload``."""
        return self._run(self._async.upload, source, **kwargs)

    def open_session(self, **kwargs: Any) -> SyncRecordedSession:
        """Opens a recorded session: see :meth:`AsyncClient.open_session`."""
        return SyncRecordedSession(self._loop, self._run(self._async.open_session, **kwargs))

    def join_session(self, session_id: str, **kwargs: Any) -> SyncRecordedSession:
        """Joins a live session as producer."""
        return SyncRecordedSession(self._loop, self._run(self._async.join_session, session_id,
                                                         **kwargs))

    def listen(self, session_id: str, **kwargs: Any) -> SyncListener:
        """Joins a live session as listener."""
        return SyncListener(self._loop, self._run(self._async.listen, session_id, **kwargs))

    def list_sessions(self, **kwargs: Any) -> dict[str, Any]:
        """``GET /api/audio/sessions``."""
        return self._run(self._async.list_sessions, **kwargs)

    def get_session(self, session_id: str) -> dict[str, Any]:
        """``GET /api/audio/sessions/{id}``."""
        return self._run(self._async.get_session, session_id)

    def close_session(self, session_id: str) -> dict[str, Any]:
        """``POST /api/audio/sessions/{id}/close``."""
        return self._run(self._async.close_session, session_id)

    def delete_session(self, session_id: str) -> None:
        """``DELETE /api/audio/sessions/{id}``."""
        self._run(self._async.delete_session, session_id)

    def session_audio(self, session_id: str) -> bytes:
        """``GET /api/audio/sessions/{id}/audio``."""
        return self._run(self._async.session_audio, session_id)

    def session_analysis(self, session_id: str) -> dict[str, Any]:
        """``GET /api/audio/sessions/{id}/analysis``."""
        return self._run(self._async.session_analysis, session_id)

    def session_chunks(self, session_id: str, **kwargs: Any) -> dict[str, Any]:
        """``GET /api/audio/sessions/{id}/chunks``."""
        return self._run(self._async.session_chunks, session_id, **kwargs)

    def issue_token(self, **kwargs: Any) -> IssuedToken:
        """``POST /api/tokens``."""
        return self._run(self._async.issue_token, **kwargs)

    def healthy(self) -> bool:
        """Whether ``/healthz`` answers 200."""
        return self._run(self._async.healthy)


__all__ = ["Client", "SyncRecordedSession", "SyncListener"]
