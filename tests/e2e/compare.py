#!/usr/bin/env python3
"""Compare the samples of two WAV files: compare.py ORIGINAL.wav DECODED.wav

Parses RIFF itself (the `wave` module rejects WAVE_FORMAT_EXTENSIBLE on older
Pythons): handles EXTENSIBLE, extra/odd-sized chunks, and streaming sizes
(RIFF/data size 0xFFFFFFFF or 0: data runs to the end of the file). A trailing
partial sample frame is ignored, as the server drops it. Exits 0 when channel
count, sample rate, bit depth and every sample value match.
"""

from __future__ import annotations

import struct
import sys

FORMAT_PCM = 0x0001
FORMAT_EXTENSIBLE = 0xFFFE


def read_wav(path: str) -> tuple[int, int, int, bytes]:
    """(channels, rate, bits, sample bytes of whole frames)."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a RIFF/WAVE file")
    pos = 12
    fmt = None
    while pos + 8 <= len(raw):
        cid = raw[pos : pos + 4]
        size = struct.unpack_from("<I", raw, pos + 4)[0]
        body_at = pos + 8
        if cid == b"fmt ":
            tag, channels, rate, _, align, bits = struct.unpack_from("<HHIIHH", raw, body_at)
            if tag == FORMAT_EXTENSIBLE:
                tag = struct.unpack_from("<H", raw, body_at + 24)[0]  # sub-format GUID's first 2 bytes
            if tag != FORMAT_PCM:
                raise ValueError(f"{path}: not integer PCM (format {tag:#x})")
            fmt = (channels, rate, bits, align)
        elif cid == b"data":
            if fmt is None:
                raise ValueError(f"{path}: data before fmt")
            channels, rate, bits, align = fmt
            if size in (0xFFFFFFFF, 0) and struct.unpack_from("<I", raw, 4)[0] in (0xFFFFFFFF, 0):
                end = len(raw)  # streaming header: data runs to end of file
            else:
                end = min(len(raw), body_at + size)
            data = raw[body_at:end]
            data = data[: len(data) - len(data) % align]
            return channels, rate, bits, data
        pos = body_at + size + (size & 1)
    raise ValueError(f"{path}: no data chunk")


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    a_path, b_path = sys.argv[1:]
    try:
        a = read_wav(a_path)
        b = read_wav(b_path)
    except (OSError, ValueError, struct.error) as e:
        print(f"compare: {e}")
        return 1
    if a[:3] != b[:3]:
        print(f"compare: format differs: {a_path} {a[:3]} vs {b_path} {b[:3]} (channels, rate, bits)")
        return 1
    # Same channels and bit depth in both files, so equal bytes <=> equal
    # sample values (8-bit is unsigned in both).
    if a[3] != b[3]:
        width = (a[2] + 7) // 8
        n = min(len(a[3]), len(b[3]))
        first = next((i for i in range(n) if a[3][i] != b[3][i]), n)
        print(f"compare: samples differ: {len(a[3]) // width} vs {len(b[3]) // width} samples, "
              f"first difference at sample {first // width}")
        return 1
    frames = len(a[3]) // ((a[2] + 7) // 8 * a[0])
    print(f"compare: {frames} frames x {a[0]} ch identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())
