#!/usr/bin/env python3
"""End-to-end client for flacstream's recorded sessions (/api/ws/audio and
/api/audio/sessions).

Cases, run in order against one server:
  record_resume  open a raw s16le session, send the first ~2.5 s in random
                 chunks ending inside a sample, wait for every ack, drop the
                 TCP connection without a close frame, rejoin as producer at
                 `samples_received` (the package resends the byte past the
                 last whole sample), send the rest, close_session; check the
                 `done`, the session JSON, the user's list and the download.
  listener       a listener joins before any audio; its FLAC bytes with the
                 final STREAMINFO patched in must equal the download.
  delete         DELETE the listener session (204), then GET answers 404
                 session_not_found.

Writes `<case>.flac` (downloaded) and `<case>.wav` (what was sent) into
--out-dir for .ci/run's `flac -t` + compare.py loop.

Usage:
    session_client.py --url-base http://127.0.0.1:PORT --out-dir DIR
                      [--seed N] [--timeout S]

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
import secrets
import struct
import sys
import time
from array import array
from dataclasses import dataclass

try:
    import flacstream
except ImportError:  # not installed: the package beside this repository's tests
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                    "..", "..", "clients", "python", "src"))
    import flacstream

RATE = 16000
CHANNELS = 1
BITS = 16
ALIGN = CHANNELS * BITS // 8
MAX_CHUNK = 32 * 1024


class CaseFailure(Exception):
    pass


def check(cond: bool, what: str) -> None:
    if not cond:
        raise CaseFailure(what)


# --------------------------------------------------------------------------
# Audio
# --------------------------------------------------------------------------


def gen_speech(rng: random.Random, frames: int) -> bytes:
    """Deterministic speech-like mono s16le: a voiced tone (gliding pitch,
    a few harmonics) under a syllable envelope, noisy "fricative" bursts,
    short pauses, background noise, and full-scale extremes."""
    hi, lo = 32767, -32768
    out = array("h", bytes(2 * frames))
    phase = 0.0
    f0 = 140.0
    i = 0
    while i < frames:
        # One syllable: 80-300 ms, voiced, fricative or a pause.
        n = min(frames - i, int(RATE * rng.uniform(0.08, 0.3)))
        kind = rng.choices(("voiced", "fricative", "pause"), (6, 2, 1))[0]
        target = rng.uniform(90.0, 240.0)
        peak = rng.uniform(0.3, 0.95) * hi
        for k in range(n):
            env = math.sin(math.pi * (k + 0.5) / n)  # attack and decay
            if kind == "voiced":
                f0 += (target - f0) * 0.0005
                phase += 2 * math.pi * f0 / RATE
                v = peak * env * (0.6 * math.sin(phase) + 0.25 * math.sin(2 * phase)
                                  + 0.15 * math.sin(3 * phase + 0.5))
                v += rng.gauss(0, 300)
            elif kind == "fricative":
                v = rng.gauss(0, peak * 0.3 * env)
            else:
                v = rng.gauss(0, 40)
            out[i + k] = int(min(hi, max(lo, v)))
        i += n
    # Full-scale extremes, in runs and alone.
    for j in range(0, frames, 3001):
        out[j] = hi
        if j + 1 < frames:
            out[j + 1] = lo
    if frames > 200:
        at = frames // 3
        for j in range(at, at + 50):
            out[j] = hi if (j // 10) % 2 else lo  # a clipped square burst
    if sys.byteorder != "little":
        out.byteswap()
    return out.tobytes()


def wav_file(pcm: bytes) -> bytes:
    """A plain 44-byte-header 16-bit WAV around `pcm`."""
    fmt = struct.pack("<HHIIHH", 1, CHANNELS, RATE, RATE * ALIGN, ALIGN, BITS)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(pcm)) + pcm
    return b"RIFF" + struct.pack("<I", len(body)) + body


def split_sizes(rng: random.Random, total: int) -> list[int]:
    """Message sizes from 1 byte to 32 KiB, log-uniform so splits inside a
    sample are common."""
    sizes = []
    left = total
    while left > 0:
        n = min(left, MAX_CHUNK, max(1, int(2 ** rng.uniform(0, 15.01))))
        sizes.append(n)
        left -= n
    return sizes


def parse_streaminfo(si: bytes) -> dict:
    check(len(si) == 34, f"STREAMINFO is {len(si)} bytes, want 34")
    packed = int.from_bytes(si[10:18], "big")
    return {
        "sample_rate": packed >> 44,
        "channels": ((packed >> 41) & 0x7) + 1,
        "bits": ((packed >> 36) & 0x1F) + 1,
        "total": packed & ((1 << 36) - 1),
        "md5": si[18:34].hex(),
    }


# --------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------


def check_session_msg(msg: dict, role: str, *, sid: str | None = None) -> str:
    check(msg.get("type") == "session", f"first message is not a session message: {msg}")
    check(msg.get("role") == role, f"session.role = {msg.get('role')!r}, want {role!r}")
    got = msg.get("session_id")
    check(isinstance(got, str) and got, f"session_id missing: {msg}")
    if sid is not None:
        check(got == sid, f"session_id {got} != {sid}")
    for k in ("samples_received", "samples_durable", "chunk_count", "connections"):
        check(isinstance(msg.get(k), int), f"session.{k} missing or not an integer: {msg}")
    return got


def cumulative(start: int, sizes: list[int]) -> list[int]:
    """Stream offsets after each message of `sizes`, from `start`."""
    out, pos = [], start
    for n in sizes:
        pos += n
        out.append(pos)
    return out


def check_acks(acks: list[dict], sid: str, first_chunk: int, cum_bytes: list[int]) -> None:
    """One ack per message, in order, counting chunks and whole samples."""
    check(len(acks) == len(cum_bytes), f"{len(acks)} acks for {len(cum_bytes)} messages")
    for i, (ack, sent) in enumerate(zip(acks, cum_bytes)):
        check(ack.get("type") == "ack", f"message {i} is not an ack: {ack}")
        check(ack.get("session_id") == sid, f"ack {i} session_id {ack.get('session_id')} != {sid}")
        want = {"chunk_count": first_chunk + i + 1, "samples_received": sent // ALIGN}
        for k, v in want.items():
            check(ack.get(k) == v, f"ack {i}: {k} = {ack.get(k)!r}, want {v!r} ({ack})")
        dur = ack.get("samples_durable")
        check(isinstance(dur, int) and 0 <= dur <= ack["samples_received"],
              f"ack {i}: samples_durable {dur!r} not in 0..samples_received")


def check_done(done: dict, sid: str, pcm: bytes) -> bytes:
    """Checks a `done` for the whole of `pcm`; returns its STREAMINFO."""
    total = len(pcm) // ALIGN
    want_md5 = hashlib.md5(pcm).hexdigest()
    expect = {
        "type": "done",
        "session_id": sid,
        "reason": "closed",
        "samples": total,
        "md5": want_md5,
        "dropped_bytes": 0,
        "sample_rate": RATE,
        "channels": CHANNELS,
        "bits_per_sample": BITS,
        "going_away": False,
    }
    for k, v in expect.items():
        check(done.get(k) == v, f"done.{k} = {done.get(k)!r}, want {v!r}")
    try:
        si = base64.b64decode(done.get("streaminfo", ""), validate=True)
    except ValueError as e:
        raise CaseFailure(f"done.streaminfo is not base64: {done.get('streaminfo')!r}") from e
    info = parse_streaminfo(si)
    check(info["total"] == total and info["md5"] == want_md5
          and (info["sample_rate"], info["channels"], info["bits"]) == (RATE, CHANNELS, BITS),
          f"done.streaminfo {info} does not describe the audio sent")
    return si


async def download(client: flacstream.AsyncClient, sid: str, si: bytes, total: int) -> bytes:
    flac = await client.session_audio(sid)
    check(len(flac) > 42 and flac[:4] == b"fLaC", f"download is not FLAC ({len(flac)} bytes)")
    check(flac[4] & 0x7F == 0 and int.from_bytes(flac[5:8], "big") == 34,
          "download's first metadata block is not a 34-byte STREAMINFO")
    check(flac[8:42] == si, f"download's STREAMINFO {parse_streaminfo(flac[8:42])} "
                            f"!= done.streaminfo {parse_streaminfo(si)}")
    check(parse_streaminfo(flac[8:42])["total"] == total, "download's STREAMINFO total")
    return flac


def save(out_dir: str, name: str, flac: bytes, pcm: bytes) -> None:
    with open(os.path.join(out_dir, f"{name}.wav"), "wb") as f:
        f.write(wav_file(pcm))
    with open(os.path.join(out_dir, f"{name}.flac"), "wb") as f:
        f.write(flac)


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------


@dataclass
class Context:
    client: flacstream.AsyncClient
    out_dir: str
    seed: int
    listener_sid: str | None = None


async def case_record_resume(ctx: Context) -> str:
    rng = random.Random(f"{ctx.seed}:record_resume")
    pcm = gen_speech(rng, 6 * RATE)
    total = len(pcm) // ALIGN
    cut = int(2.5 * RATE) * ALIGN + 1  # ends one byte into a sample
    user = f"e2e-{ctx.seed}-{secrets.token_hex(4)}"

    # First producer: send up to `cut`, collect every ack, then vanish.
    session = await ctx.client.open_session(format="s16le", sample_rate=RATE,
                                            channels=CHANNELS, user_id=user, max_resumes=0)
    hello = session.hello
    sid = check_session_msg(hello, "producer")
    check(hello["samples_received"] == 0 and hello["chunk_count"] == 0
          and hello.get("resumed") is False, f"new session is not empty: {hello}")
    sizes = split_sizes(rng, cut)
    pos = 0
    for n in sizes:
        await session.send(pcm[pos : pos + n])
        pos += n
    await session.wait_acks()
    check_acks(session.acks, sid, 0, cumulative(0, sizes))
    # Abrupt drop: no close frame, the TCP connection just goes.
    session.abort()

    # Second producer: the package rejoins and resends from where the
    # session stands (the odd byte past the last whole sample).
    hello2 = await session.resume()
    check_session_msg(hello2, "producer", sid=sid)
    at = hello2["samples_received"]
    check(at == cut // ALIGN, f"resume at sample {at}, want {cut // ALIGN} "
                              f"(whole samples of the {cut} bytes acked)")
    check(hello2.get("resumed") is True, f"session.resumed is not true on rejoin: {hello2}")
    check(hello2["chunk_count"] == len(sizes),
          f"chunk_count {hello2['chunk_count']} after {len(sizes)} messages")
    resent = cut - at * ALIGN
    rest = pcm[cut:]
    sizes2 = split_sizes(rng, len(rest))
    pos = cut
    for n in sizes2:
        await session.send(pcm[pos : pos + n])
        pos += n
    await session.wait_acks()
    done_msg = await session.close()
    done = done_msg.raw
    check(session.close_code == 1000, f"resumed producer: close code {session.close_code}, want 1000")
    check(not session.frames, f"producer got {len(session.frames)} binary messages without output=flac")
    check(not session.notices, f"producer got unexpected text messages: {session.notices}")
    check(session.resumes == 1, f"{session.resumes} resumes, want 1")
    check_acks(session.acks[len(sizes):], sid, len(sizes),
               cumulative(at * ALIGN, [resent] + sizes2))
    si = check_done(done, sid, pcm)
    messages = len(sizes) + 1 + len(sizes2)

    # HTTP: the session, the user's list, the file.
    sess = await ctx.client.get_session(sid)
    expect = {"session_id": sid, "status": "closed", "samples": total, "user_id": user,
              "format": "s16le", "sample_rate": RATE, "channels": CHANNELS,
              "bits_per_sample": BITS, "record": True, "connections": 0,
              "chunk_count": messages}
    for k, v in expect.items():
        check(sess.get(k) == v, f"GET session: {k} = {sess.get(k)!r}, want {v!r}")
    check(sess.get("audio_url") == f"/api/audio/sessions/{sid}/audio",
          f"GET session: audio_url {sess.get('audio_url')!r}")
    listed = [s.get("session_id") for s in (await ctx.client.list_sessions(user_id=user))["sessions"]]
    check(listed == [sid], f"list for user {user} = {listed}, want [{sid}]")
    flac = await download(ctx.client, sid, si, total)
    save(ctx.out_dir, "record_resume", flac, pcm)
    return (f"{total} samples, resumed at {at} after {len(sizes)} + 1 + {len(sizes2)} messages "
            f"(cut inside a sample, {resent} byte resent), {len(pcm)} -> {len(flac)} bytes, "
            f"md5 {done['md5']}")


async def case_listener(ctx: Context) -> str:
    rng = random.Random(f"{ctx.seed}:listener")
    pcm = gen_speech(rng, 3 * RATE)
    total = len(pcm) // ALIGN
    prod = await ctx.client.open_session(format="s16le", sample_rate=RATE, channels=CHANNELS,
                                         acks=False)
    sid = check_session_msg(prod.hello, "producer")
    ctx.listener_sid = sid
    lis = await ctx.client.listen(sid)
    hello = lis.hello
    check_session_msg(hello, "listener", sid=sid)
    check(hello["connections"] == 2, f"listener sees {hello['connections']} connections, want 2")
    heard = asyncio.create_task(lis.collect())
    sizes = split_sizes(rng, len(pcm))
    pos = 0
    for n in sizes:
        await prod.send(pcm[pos : pos + n])
        pos += n
    pdone = (await prod.close()).raw
    lout = await heard

    check(prod.close_code == 1000, f"producer: close code {prod.close_code}, want 1000")
    check(not prod.acks and not prod.notices and not prod.frames,
          f"producer with acks=false got {len(prod.acks)} acks, {prod.notices} "
          f"and {len(prod.frames)} binaries")
    si = check_done(pdone, sid, pcm)
    ldone = lout.done.raw
    check(lout.close_code == 1000, f"listener: close code {lout.close_code}, want 1000")
    check(not lis.notices, f"listener got extra text messages: {lis.notices}")
    check(ldone == pdone, f"listener's done differs from the producer's: {ldone} vs {pdone}")
    first = lout.header
    check(len(first) == 42 and first[:4] == b"fLaC",
          f"listener's first binary is not 42 bytes of fLaC+STREAMINFO ({len(first)} bytes)")
    prov = parse_streaminfo(first[8:42])
    check(prov["total"] == 0 and prov["md5"] == "0" * 32, f"provisional STREAMINFO not zeroed: {prov}")
    for i, fr in enumerate(lout.frames, 1):
        check(len(fr) >= 2 and fr[0] == 0xFF and (fr[1] & 0xFE) == 0xF8,
              f"listener binary {i} does not start with a FLAC frame sync code")
    live_len = len(first) + sum(len(f) for f in lout.frames)
    check(ldone.get("frames") == len(lout.frames) and ldone.get("bytes_out") == live_len,
          f"done frames/bytes_out {ldone.get('frames')}/{ldone.get('bytes_out')} vs listener's "
          f"{len(lout.frames)} frames, {live_len} bytes")
    check(lout.complete, "listener did not hear every frame")
    live = lout.flac  # final STREAMINFO patched in
    check(live[8:42] == si, "listener's patched STREAMINFO is not done.streaminfo")
    flac = await download(ctx.client, sid, si, total)
    if live != flac:
        n = min(len(live), len(flac))
        at = next((i for i in range(n) if live[i] != flac[i]), n)
        raise CaseFailure(f"listener's FLAC ({len(live)} bytes) != download ({len(flac)} bytes), "
                          f"first difference at byte {at}")
    save(ctx.out_dir, "listener", flac, pcm)
    return (f"{total} samples in {len(sizes)} messages, listener got {len(lout.frames)} frames, "
            f"{len(flac)} bytes identical to the download")


async def case_delete(ctx: Context) -> str:
    sid = ctx.listener_sid
    check(sid is not None, "no listener session to delete (listener case failed early)")
    check(os.path.exists(os.path.join(ctx.out_dir, "listener.flac")),
          "listener.flac was not saved; not deleting the only copy")
    await ctx.client.delete_session(sid)
    for what, get in (("session", ctx.client.get_session), ("audio", ctx.client.session_audio)):
        try:
            await get(sid)
        except flacstream.NotFoundError as e:
            check(e.code == "session_not_found",
                  f"GET {what} after DELETE: code {e.code!r}, want session_not_found")
        else:
            raise CaseFailure(f"GET {what} after DELETE answered 200, want 404")
    try:
        await ctx.client.delete_session(sid)
    except flacstream.NotFoundError:
        pass
    else:
        raise CaseFailure("second DELETE answered 204, want 404")
    return "204, then GET session/audio 404 session_not_found, second DELETE 404"


CASES = [("record_resume", case_record_resume), ("listener", case_listener),
         ("delete", case_delete)]


async def run_case(ctx: Context, name: str, fn, timeout: float) -> tuple[bool, str]:
    t0 = time.monotonic()
    try:
        detail = await asyncio.wait_for(fn(ctx), timeout)
        ms = (time.monotonic() - t0) * 1000
        return True, f"PASS {name}: {detail} ({ms:.0f} ms)"
    except asyncio.TimeoutError:
        return False, f"FAIL {name}: timed out after {timeout:.0f} s"
    except CaseFailure as e:
        return False, f"FAIL {name}: {e}"
    except flacstream.ServerError as e:
        if e.status is not None:
            return False, f"FAIL {name}: refused with HTTP {e.status}: {e.code}: {e.message}"
        return False, f"FAIL {name}: error {e.code} close {e.close_code}: {e.message}"
    except (OSError, flacstream.FlacstreamError) as e:
        return False, f"FAIL {name}: {type(e).__name__}: {e}"


async def main_async(args: argparse.Namespace) -> int:
    os.makedirs(args.out_dir, exist_ok=True)
    base = args.url_base.rstrip("/")
    client = flacstream.AsyncClient(base, retry=flacstream.NO_RETRY)
    ctx = Context(client=client, out_dir=args.out_dir, seed=args.seed)
    results = []
    for name, fn in CASES:
        ok, line = await run_case(ctx, name, fn, args.timeout)
        print(line, flush=True)
        results.append(ok)
    failed = results.count(False)
    print(f"session client: {len(results) - failed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url-base", required=True, help="http://HOST:PORT")
    p.add_argument("--out-dir", required=True, help="where <case>.wav and <case>.flac go")
    p.add_argument("--seed", type=int, default=1, help="seed for audio and message splits")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per case")
    return asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
