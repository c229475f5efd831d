"""Test audio: WAV files made here, and an independent check of the server's
FLAC with the reference decoder (``flac -d``)."""

from __future__ import annotations

import hashlib
import math
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
from array import array


def pcm16(seconds: float, rate: int, channels: int, seed: int = 1) -> bytes:
    """Deterministic s16le audio: tones, noise and full-scale extremes."""
    rng = random.Random(seed)
    frames = int(seconds * rate)
    out = array("h", bytes(2 * frames * channels))
    for ch in range(channels):
        step = 2 * math.pi * (220.0 * (ch + 1)) / rate
        for i in range(frames):
            v = int(16000 * math.sin(step * i) + rng.gauss(0, 1500))
            if i % 997 == 13:
                v = 32767
            elif i % 997 == 500:
                v = -32768
            out[i * channels + ch] = max(-32768, min(32767, v))
    if sys.byteorder != "little":
        out.byteswap()
    return out.tobytes()


def wav(pcm: bytes, rate: int, channels: int, bits: int = 16) -> bytes:
    """A plain PCM WAV file around ``pcm``."""
    align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * align, align, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(pcm)) + pcm
    if len(pcm) % 2:
        body += b"\x00"
    return b"RIFF" + struct.pack("<I", len(body)) + body


def md5(pcm: bytes) -> str:
    """FLAC's MD5 of 16-bit (or 24-bit) PCM: the signed little-endian bytes."""
    return hashlib.md5(pcm).hexdigest()


def have_flac() -> bool:
    """Whether the reference ``flac`` tool is installed."""
    return shutil.which("flac") is not None


def decode_flac(flac: bytes) -> bytes:
    """The PCM samples of ``flac`` as decoded by ``flac -d`` (raw,
    little-endian, signed), after ``flac`` has checked every frame's CRC and
    the MD5 in STREAMINFO."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "in.flac")
        dst = os.path.join(tmp, "out.raw")
        with open(src, "wb") as f:
            f.write(flac)
        subprocess.run(["flac", "--silent", "--decode", "--force-raw-format", "--endian=little",
                        "--sign=signed", "--output-name", dst, src],
                       check=True, capture_output=True, timeout=60)
        with open(dst, "rb") as f:
            return f.read()


def first_difference(a: bytes, b: bytes, channels: int, width: int) -> str:
    """Where two PCM buffers first differ, as sample and channel."""
    n = min(len(a), len(b))
    at = next((i for i in range(n) if a[i] != b[i]), n)
    frame = at // (channels * width)
    return (f"lengths {len(a)} vs {len(b)} bytes; first difference at byte {at} "
            f"(sample {frame}, channel {(at // width) % channels})")
