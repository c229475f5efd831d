#!/usr/bin/env python3
"""End-to-end client for flacstream (see docs/protocol.md).

Generates a set of WAV files, streams each one to the server over a real
WebSocket in randomly sized binary messages, collects the FLAC output, checks
the `done` message against what was sent, patches the final STREAMINFO into
the stream and writes `<name>.wav` / `<name>.flac` into --out-dir. Two error
cases check the error message code and the close code.

Usage:
    stream_client.py --url ws://127.0.0.1:PORT/stream --out-dir DIR
                     [--seed N] [--concurrency N] [--timeout S]

Prints one line per case and exits non-zero if any case failed.
Talks to the server through the `flacstream` package (clients/python:
`pip install ./clients/python`); found beside this file when not installed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import math
import os
import random
import struct
import sys
import time
from array import array
from dataclasses import dataclass, field
from typing import Iterator
from urllib.parse import urlsplit

try:
    import flacstream
except ImportError:  # not installed: the package beside this repository's tests
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                    "..", "..", "clients", "python", "src"))
    import flacstream

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_IEEE_FLOAT = 0x0003
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
KSDATAFORMAT_SUBTYPE_PCM = bytes.fromhex("0100000000001000800000aa00389b71")
STREAMING_SIZE = 0xFFFFFFFF
MAX_MESSAGE = 64 * 1024


class CaseFailure(Exception):
    pass


def check(cond: bool, what: str) -> None:
    if not cond:
        raise CaseFailure(what)


# --------------------------------------------------------------------------
# WAV generation
# --------------------------------------------------------------------------


def chunk(cid: bytes, body: bytes, size: int | None = None) -> bytes:
    """A RIFF chunk with its pad byte when the body length is odd."""
    assert len(cid) == 4
    declared = len(body) if size is None else size
    pad = b"\x00" if len(body) % 2 else b""
    return cid + struct.pack("<I", declared) + body + pad


def gen_samples(rng: random.Random, frames: int, channels: int, bits: int) -> list[int]:
    """Interleaved signed samples: tone + noise, with full-scale extremes,
    a silent stretch and a pure-noise stretch."""
    full = (1 << (bits - 1)) - 1
    lo, hi = -(1 << (bits - 1)), full
    out = [0] * (frames * channels)
    silent = range(frames // 5, frames // 5 + frames // 20)
    noisy = range(frames // 2, frames // 2 + frames // 20)
    for ch in range(channels):
        freq = 220.0 * (ch + 1) + rng.uniform(0, 50)
        step = 2 * math.pi * freq / 48000.0  # rate-independent pitch per sample
        amp = 0.6 * full
        for i in range(frames):
            if i in silent:
                v = 0
            elif i in noisy:
                v = rng.randint(lo, hi)
            else:
                v = int(amp * math.sin(step * i) + rng.gauss(0, full * 0.05))
                if i % 997 == 13:
                    v = hi
                elif i % 997 == 500:
                    v = lo
            out[i * channels + ch] = min(hi, max(lo, v))
    return out


def pack_pcm(samples: list[int], bits: int) -> bytes:
    """WAV sample bytes (8-bit unsigned, otherwise signed little-endian)."""
    if bits == 8:
        return bytes(s + 128 for s in samples)
    if bits == 16:
        a = array("h", samples)
        if sys.byteorder != "little":
            a.byteswap()
        return a.tobytes()
    if bits == 24:
        a = array("i", samples)
        if sys.byteorder != "little":
            a.byteswap()
        raw = a.tobytes()
        return b"".join(raw[i : i + 3] for i in range(0, len(raw), 4))
    raise ValueError(bits)


def md5_input(data: bytes, bits: int) -> bytes:
    """The bytes FLAC's MD5 covers: signed little-endian samples."""
    if bits == 8:
        return bytes((b - 128) & 0xFF for b in data)
    return data


def fmt_body(channels: int, rate: int, bits: int, tag: int = WAVE_FORMAT_PCM,
             mask: int | None = None) -> bytes:
    width = (bits + 7) // 8
    align = channels * width
    base = struct.pack("<HHIIHH", WAVE_FORMAT_EXTENSIBLE if mask is not None else tag,
                       channels, rate, rate * align, align, bits)
    if mask is None:
        return base
    return base + struct.pack("<HHI", 22, bits, mask) + KSDATAFORMAT_SUBTYPE_PCM


@dataclass
class WavCase:
    name: str
    wav: bytes  # exactly the bytes sent
    channels: int
    rate: int
    bits: int
    pcm: bytes  # the sample bytes the server should encode (whole frames)
    dropped: int = 0  # trailing partial-frame bytes the server should drop
    send_end: bool = False  # streaming header: client must send {"type":"end"}
    expect_error: tuple[str, int] | None = None  # (code, close code)
    extra: dict = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return len(self.pcm) // (self.channels * ((self.bits + 7) // 8))


def build_wav(rng: random.Random, name: str, *, channels: int, rate: int, bits: int,
              seconds: float, mask: int | None = None, before_fmt: bytes = b"",
              before_data: bytes = b"", after_data: bytes = b"",
              streaming: bool = False, trailing_partial: int = 0) -> WavCase:
    frames = int(rate * seconds)
    pcm = pack_pcm(gen_samples(rng, frames, channels, bits), bits)
    fmt = chunk(b"fmt ", fmt_body(channels, rate, bits, mask=mask))
    data_body = pcm + bytes(rng.randrange(256) for _ in range(trailing_partial))
    if streaming:
        data = b"data" + struct.pack("<I", STREAMING_SIZE) + data_body
        riff_size = STREAMING_SIZE
    else:
        data = chunk(b"data", data_body)
        riff_size = None
    body = b"WAVE" + before_fmt + fmt + before_data + data + after_data
    if riff_size is None:
        riff_size = len(body)
    wav = b"RIFF" + struct.pack("<I", riff_size) + body
    return WavCase(name, wav, channels, rate, bits, pcm, dropped=trailing_partial,
                   send_end=streaming)


def build_cases(seed: int) -> list[WavCase]:
    rng = random.Random(seed)
    cases = [
        build_wav(rng, "stereo16_44k", channels=2, rate=44100, bits=16, seconds=3.0),
        # 16001 one-byte frames: odd data size, so the data chunk has a pad byte
        # and a chunk follows it.
        build_wav(rng, "mono8_8k", channels=1, rate=8000, bits=8, seconds=16001 / 8000,
                  after_data=chunk(b"LIST", b"INFOISFT" + struct.pack("<I", 5) + b"test\x00")),
        build_wav(rng, "ext24_6ch_48k", channels=6, rate=48000, bits=24, seconds=1.0,
                  mask=0x00022C11),  # FL, BL, SR, TC, TFC, TBR: unusual on purpose
        build_wav(rng, "mono16_192k", channels=1, rate=192000, bits=16, seconds=1.0),
        # RIFF/data sizes 0xFFFFFFFF; ends with a partial stereo frame (3 bytes)
        # that the server must drop and report in dropped_bytes.
        build_wav(rng, "streaming16_16k", channels=2, rate=16000, bits=16, seconds=1.5,
                  streaming=True, trailing_partial=3),
        build_wav(rng, "chunks16_22k", channels=2, rate=22050, bits=16, seconds=1.0,
                  before_fmt=chunk(b"JUNK", bytes(28)),
                  before_data=(chunk(b"LIST", b"INFOINAM" + struct.pack("<I", 7) + b"flacst\x00"
                                     + b"\x00")  # odd sub-chunk + pad inside LIST
                               + chunk(b"JUNK", bytes(rng.randrange(256) for _ in range(37)))
                               + chunk(b"fact", struct.pack("<I", 22050))
                               + chunk(b"zzz ", b"odd")),
                  after_data=chunk(b"smpl", bytes(36)) + chunk(b"id3 ", b"ID3x!")),
        build_wav(rng, "empty16_44k", channels=2, rate=44100, bits=16, seconds=0.0),
    ]
    # Error case: IEEE float (format tag 3) with a fact chunk.
    floats = struct.pack("<%df" % 800, *(math.sin(i / 10) for i in range(800)))
    body = (b"WAVE" + chunk(b"fmt ", fmt_body(1, 8000, 32, tag=WAVE_FORMAT_IEEE_FLOAT))
            + chunk(b"fact", struct.pack("<I", 800)) + chunk(b"data", floats))
    cases.append(WavCase("err_float", b"RIFF" + struct.pack("<I", len(body)) + body,
                         1, 8000, 32, b"", expect_error=("unsupported_format", 1003)))
    # Not a WAV's first bytes: decoded as another container, and no
    # container begins like this (a RIFF that is not WAVE gets not_wav).
    cases.append(WavCase("err_garbage", b"hello world", 1, 8000, 16, b"", send_end=True,
                         expect_error=("unrecognized_format", 1003)))
    return cases


# --------------------------------------------------------------------------
# Protocol checks
# --------------------------------------------------------------------------


def base_url(stream_url: str) -> str:
    """http(s)://host:port from the ws(s)://host:port/stream of --url."""
    u = urlsplit(stream_url)
    return f"{'https' if u.scheme == 'wss' else 'http'}://{u.netloc}"


def default_block_size(rate: int) -> int:
    cap = 4096 if rate <= 48000 else 16384
    bs = 32
    while bs * 2 * 10 <= rate and bs * 2 <= cap:  # bs*2 samples <= 100 ms
        bs *= 2
    return bs


def parse_streaminfo(si: bytes) -> dict:
    check(len(si) == 34, f"STREAMINFO is {len(si)} bytes, want 34")
    min_bs, max_bs = struct.unpack(">HH", si[0:4])
    min_fs = int.from_bytes(si[4:7], "big")
    max_fs = int.from_bytes(si[7:10], "big")
    packed = int.from_bytes(si[10:18], "big")
    return {
        "min_block": min_bs,
        "max_block": max_bs,
        "min_frame": min_fs,
        "max_frame": max_fs,
        "sample_rate": packed >> 44,
        "channels": ((packed >> 41) & 0x7) + 1,
        "bits": ((packed >> 36) & 0x1F) + 1,
        "total": packed & ((1 << 36) - 1),
        "md5": si[18:34].hex(),
    }


def split_sizes(rng: random.Random, total: int) -> list[int]:
    """Message sizes from 1 byte to 64 KiB, log-uniform so tiny splits
    (inside the header, inside a sample) are common."""
    sizes = []
    left = total
    while left > 0:
        n = min(left, max(1, int(2 ** rng.uniform(0, 16))))
        sizes.append(n)
        left -= n
    return sizes


def pieces(payload: bytes, rng: random.Random) -> Iterator[bytes]:
    """`payload` in the random message sizes of split_sizes."""
    pos = 0
    for n in split_sizes(rng, len(payload)):
        yield payload[pos : pos + n]
        pos += n


def check_success(case: WavCase, out: flacstream.StreamResult, sent: int) -> tuple[bytes, dict]:
    check(out.close_code == 1000, f"close code {out.close_code}, want 1000")
    check(not out.notices, f"want exactly one text message (done), also got {out.notices}")
    done = out.done.raw
    check(done.get("type") == "done", f"text message is not done: {done}")
    binaries = [out.header, *out.frames]
    first = out.header
    check(len(first) == 42 and first[:4] == b"fLaC",
          f"first message is not 42 bytes of fLaC+STREAMINFO ({len(first)} bytes, {first[:8]!r})")
    check(first[4] == 0x80 and int.from_bytes(first[5:8], "big") == 34,
          "first metadata block is not a 34-byte STREAMINFO flagged last")
    prov = parse_streaminfo(first[8:42])
    check(prov["total"] == 0 and prov["md5"] == "0" * 32 and prov["min_frame"] == 0
          and prov["max_frame"] == 0, f"provisional STREAMINFO not zeroed: {prov}")
    for i, fr in enumerate(out.frames, 1):
        check(len(fr) >= 2 and fr[0] == 0xFF and (fr[1] & 0xFE) == 0xF8,
              f"binary message {i} does not start with a FLAC frame sync code")

    flac = bytearray(b"".join(binaries))
    want_md5 = hashlib.md5(md5_input(case.pcm, case.bits)).hexdigest()
    expect = {
        "samples": case.frames,
        "md5": want_md5,
        "dropped_bytes": case.dropped,
        "frames": len(out.frames),
        "bytes_out": len(flac),
        "sample_rate": case.rate,
        "channels": case.channels,
        "bits_per_sample": case.bits,
        "going_away": False,
    }
    for k, v in expect.items():
        check(done.get(k) == v, f"done.{k} = {done.get(k)!r}, want {v!r}")
    for k in ("verbatim_frames", "bytes_in"):
        check(isinstance(done.get(k), int) and not isinstance(done.get(k), bool),
              f"done.{k} missing or not an integer: {done.get(k)!r}")
    check(0 <= done["verbatim_frames"] <= done["frames"], "verbatim_frames > frames")
    check(0 < done["bytes_in"] <= sent, f"bytes_in {done['bytes_in']} not in 1..{sent}")

    si = base64.b64decode(done.get("streaminfo", ""), validate=True)
    info = parse_streaminfo(si)
    check(info["total"] == case.frames, f"STREAMINFO total {info['total']} != {case.frames}")
    check(info["md5"] == want_md5, f"STREAMINFO md5 {info['md5']} != {want_md5}")
    check((info["sample_rate"], info["channels"], info["bits"]) == (case.rate, case.channels, case.bits),
          f"STREAMINFO format {info} does not match the WAV")
    bs = default_block_size(case.rate)
    if case.frames >= bs:
        check(info["max_block"] == bs, f"max block size {info['max_block']}, want default {bs}")
        check(done["frames"] == -(-case.frames // bs), f"frames {done['frames']} for block size {bs}")
    check(out.flac == bytes(flac[:8]) + si + bytes(flac[42:]),
          "the package's patched FLAC differs from the stream with done.streaminfo at 8..42")
    return out.flac, done


def check_error(case: WavCase, err: flacstream.ServerError) -> None:
    code, close = case.expect_error
    check(err.status is None, f"refused before the upgrade with HTTP {err.status}: {err}")
    check(not err.partial, f"{len(err.partial)} FLAC bytes sent for input rejected at the header")
    check(err.code == code, f"got error code {err.code} ({err.message}), want {code}")
    check(bool(err.message), "error message text missing")
    check(err.close_code == close, f"close code {err.close_code}, want {close}")


async def run_case(client: flacstream.AsyncClient, case: WavCase, name: str, seed: int,
                   out_dir: str, timeout: float) -> tuple[bool, str]:
    rng = random.Random(f"{seed}:{name}")
    t0 = time.monotonic()
    try:
        try:
            out = await asyncio.wait_for(
                client.stream(pieces(case.wav, rng), send_end=case.send_end), timeout)
        except flacstream.ServerError as err:
            if not case.expect_error or err.status is not None:
                raise
            check_error(case, err)
            ms = (time.monotonic() - t0) * 1000
            return True, f"PASS {name}: error {err.code} close {err.close_code} ({ms:.0f} ms)"
        ms = (time.monotonic() - t0) * 1000
        check(not case.expect_error, f"want error {case.expect_error}, got done {out.done}")
        flac, done = check_success(case, out, len(case.wav))
        with open(os.path.join(out_dir, f"{name}.wav"), "wb") as f:
            f.write(case.wav)
        with open(os.path.join(out_dir, f"{name}.flac"), "wb") as f:
            f.write(flac)
        ratio = len(flac) / max(1, len(case.wav))
        return True, (f"PASS {name}: {done['samples']} samples, {done['frames']} frames "
                      f"({done['verbatim_frames']} verbatim), {len(case.wav)} -> {len(flac)} bytes "
                      f"({ratio:.2f}), md5 {done['md5']} ({ms:.0f} ms)")
    except asyncio.TimeoutError:
        hint = "" if case.send_end else " (server did not finish on its own after the data chunk)"
        return False, f"FAIL {name}: timed out after {timeout:.0f} s{hint}"
    except CaseFailure as e:
        return False, f"FAIL {name}: {e}"
    except flacstream.ServerError as e:
        if e.status is not None:
            return False, f"FAIL {name}: handshake refused with HTTP {e.status}: {e.code}: {e.message}"
        return False, f"FAIL {name}: error {e.code} close {e.close_code}: {e.message}"
    except (OSError, flacstream.FlacstreamError) as e:
        return False, f"FAIL {name}: {type(e).__name__}: {e}"


async def main_async(args: argparse.Namespace) -> int:
    os.makedirs(args.out_dir, exist_ok=True)
    cases = build_cases(args.seed)
    client = flacstream.AsyncClient(base_url(args.url), retry=flacstream.NO_RETRY)
    results: list[tuple[bool, str]] = []
    stereo = cases[0]
    for case in cases:
        ok, line = await run_case(client, case, case.name, args.seed, args.out_dir, args.timeout)
        print(line, flush=True)
        results.append((ok, line))
    if args.concurrency > 0:
        t0 = time.monotonic()
        conc = await asyncio.gather(*(
            run_case(client, stereo, f"{stereo.name}_c{i}", args.seed, args.out_dir, args.timeout)
            for i in range(args.concurrency)))
        for ok, line in conc:
            print(line, flush=True)
        results.extend(conc)
        print(f"concurrent: {args.concurrency} streams in {time.monotonic() - t0:.2f} s", flush=True)
    failed = sum(1 for ok, _ in results if not ok)
    print(f"client: {len(results) - failed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True, help="ws://HOST:PORT/stream")
    p.add_argument("--out-dir", required=True, help="where <name>.wav and <name>.flac go")
    p.add_argument("--seed", type=int, default=1, help="seed for audio and message splits")
    p.add_argument("--concurrency", type=int, default=8,
                   help="concurrent copies of the stereo case (0 to skip)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per stream")
    return asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
