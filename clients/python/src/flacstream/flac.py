"""FLAC facts the protocol relies on: the 42-byte stream header, STREAMINFO,
and the ``done`` message that ends every stream (docs/protocol.md, section 4)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Mapping

#: ``fLaC`` plus the STREAMINFO block: the first binary message of every FLAC stream.
STREAM_HEADER_BYTES = 42
#: Where STREAMINFO's 34-byte body sits in the stream: bytes 8..42.
STREAMINFO_SLICE = slice(8, 42)


@dataclass(frozen=True)
class StreamInfo:
    """The fields of a STREAMINFO body."""

    min_block: int
    max_block: int
    min_frame: int
    max_frame: int
    sample_rate: int
    channels: int
    bits_per_sample: int
    total_samples: int
    md5: str

    @classmethod
    def parse(cls, body: bytes) -> "StreamInfo":
        """Parses the 34-byte STREAMINFO body."""
        if len(body) != 34:
            raise ValueError(f"STREAMINFO is {len(body)} bytes, want 34")
        packed = int.from_bytes(body[10:18], "big")
        return cls(
            min_block=int.from_bytes(body[0:2], "big"),
            max_block=int.from_bytes(body[2:4], "big"),
            min_frame=int.from_bytes(body[4:7], "big"),
            max_frame=int.from_bytes(body[7:10], "big"),
            sample_rate=packed >> 44,
            channels=((packed >> 41) & 0x7) + 1,
            bits_per_sample=((packed >> 36) & 0x1F) + 1,
            total_samples=packed & ((1 << 36) - 1),
            md5=body[18:34].hex(),
        )


@dataclass(frozen=True)
class Done:
    """The ``done`` message: how a stream or session ended and what it held.

    ``raw`` keeps every field the server sent, including ones added later.
    """

    session_id: str
    reason: str
    samples: int
    md5: str
    streaminfo: bytes = field(repr=False)
    frames: int
    bytes_in: int
    bytes_out: int
    dropped_bytes: int
    sample_rate: int
    channels: int
    bits_per_sample: int
    going_away: bool
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_message(cls, obj: Mapping[str, Any]) -> "Done":
        """From the parsed ``done`` JSON."""
        return cls(
            session_id=str(obj.get("session_id", "")),
            reason=str(obj.get("reason", "")),
            samples=int(obj.get("samples", 0)),
            md5=str(obj.get("md5", "")),
            streaminfo=base64.b64decode(obj.get("streaminfo", "")),
            frames=int(obj.get("frames", 0)),
            bytes_in=int(obj.get("bytes_in", 0)),
            bytes_out=int(obj.get("bytes_out", 0)),
            dropped_bytes=int(obj.get("dropped_bytes", 0)),
            sample_rate=int(obj.get("sample_rate", 0)),
            channels=int(obj.get("channels", 0)),
            bits_per_sample=int(obj.get("bits_per_sample", 0)),
            going_away=bool(obj.get("going_away", False)),
            raw=dict(obj),
        )

    def stream_info(self) -> StreamInfo:
        """The final STREAMINFO, parsed."""
        return StreamInfo.parse(self.streaminfo)


def patch_streaminfo(flac: bytes | bytearray, streaminfo: bytes) -> bytes:
    """A streamed FLAC with its provisional STREAMINFO replaced by the final
    one from ``done`` (total samples, MD5, frame sizes)."""
    if len(flac) < STREAM_HEADER_BYTES or bytes(flac[:4]) != b"fLaC":
        raise ValueError("not a FLAC stream (no 42-byte fLaC header)")
    if len(streaminfo) != 34:
        raise ValueError(f"STREAMINFO is {len(streaminfo)} bytes, want 34")
    out = bytearray(flac)
    out[STREAMINFO_SLICE] = streaminfo
    return bytes(out)
