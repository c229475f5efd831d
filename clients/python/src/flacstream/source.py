"""Audio sources: what the client accepts as input, turned into binary
messages of at most :data:`DEFAULT_CHUNK_BYTES`."""

from __future__ import annotations

import os
from typing import AsyncIterable, AsyncIterator, BinaryIO, Iterable, Union

#: Bytes per binary message: docs/protocol.md recommends 64 KiB or less
#: (the server's limit is 1 MiB by default).
DEFAULT_CHUNK_BYTES = 64 * 1024

#: Input audio: bytes, a path, a binary file, or an (async) iterable of byte chunks.
AudioSource = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]", BinaryIO,
                    Iterable[bytes], AsyncIterable[bytes]]


def _split(data: bytes | bytearray | memoryview, size: int) -> Iterable[bytes]:
    view = memoryview(data)
    for pos in range(0, len(view), size):
        yield bytes(view[pos:pos + size])


async def chunks(source: AudioSource, size: int = DEFAULT_CHUNK_BYTES) -> AsyncIterator[bytes]:
    """Yields ``source``'s bytes in order, in pieces of at most ``size`` bytes
    (empty pieces are skipped). A path is opened and read; a file is read from
    where it stands."""
    if size < 1:
        raise ValueError("chunk size must be at least 1 byte")
    if isinstance(source, (bytes, bytearray, memoryview)):
        for piece in _split(source, size):
            yield piece
        return
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            async for piece in chunks(f, size):
                yield piece
        return
    read = getattr(source, "read", None)
    if read is not None:
        while True:
            piece = read(size)
            if not piece:
                return
            yield bytes(piece)
    if hasattr(source, "__aiter__"):
        async for item in source:
            for piece in _split(item, size):
                yield piece
        return
    for item in source:
        for piece in _split(item, size):
            yield piece
