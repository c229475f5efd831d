#!/usr/bin/env python3
"""The fault run: misbehaving clients by the hundred beside good streams.

    fault.py --target HOST:PORT --pid SERVER_PID --work-dir DIR
             [--seconds 60] [--out RESULT.json] [--audio-dir DIR]
             [--connection-timeout S] [--stall S] [--header-timeout S]
             [--session-resume S] [--max-message-bytes N]

Run by loadtest/fault.sh, which starts the server with the settings passed
here and checks its log for panics. Everything goes to loopback and the run
stops by itself: good streams last `--seconds` - 20 s, every bad client has
its own deadline, and the whole run is cut at `--seconds` + 60 s.

While 20 good streams run (12 on `/stream`, 8 recorded sessions on
`/api/ws/audio`, real-time paced, real audio from benches/audio.sh when it
is there), the bad clients are:

  garbage   200 connections, 12 kinds in turn: random bytes before any HTTP,
            a 1 MiB header, a bad query, a non-WAV `POST /convert`, a valid
            upgrade then a non-WAV body / an unmasked frame / a reserved
            opcode / invalid UTF-8 text / non-JSON text / random frames / an
            oversize ping, and a `wav` recorded session fed garbage
  flood     one client that sends a valid stream in 512 KiB messages as fast
            as the server takes them, and reads its output
  slow      100 clients that send audio as fast as the server takes it and
            never read (80 on `/stream`, 20 recorded sessions)
  idle      100 sockets that send nothing: 60 raw TCP connects, 10 half
            request lines, 20 upgraded `/stream`, 10 upgraded sessions
  midframe  40 clients that stop in the middle: half a frame header, half a
            payload (FIN or RST), half a session payload, half a request
  huge      frame headers that claim 4 GiB (and 2^63 - 1) bytes: one alone
            before everything else (its RSS cost measured), three mid-run

Every attempt is recorded with what it got (`http STATUS CODE`,
`close CODE ERROR`, `eof`, `reset`, `timeout`) and how long the server took
to cut it off, and checked against docs/protocol.md (the close codes and
error codes) and the limits in force (header deadline, idle timeout, outbound
stall). The good streams' FLAC (and each recorded session's stored file,
fetched over HTTP) is decoded with libFLAC's `flac -d` and compared sample
for sample with what was sent. The server's RSS is sampled every 100 ms from
/proc/PID/status and its peak (VmHWM) must stay under a bound derived from
the per-connection figures (printed with the derivation). At the end no
stream may be left open (GET /admin/drain) and the server's descriptors must
be back to where they started.

Exit status 0 when every check passed, 1 otherwise. Python 3.11, the
`websockets` package and `flac` on the PATH; standard library otherwise.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import hashlib
import json
import os
import random
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import wave

import websockets

# --- sizes of the run (the figures) ---------------------------------
GOOD_STREAMS = 12           # /stream, 44.1 kHz 16-bit stereo
GOOD_SESSIONS = 8           # /api/ws/audio, 16 kHz 16-bit mono, recorded
GARBAGE_CONNECTIONS = 200
SLOW_READERS = 100
SLOW_READER_SESSIONS = 20   # of SLOW_READERS, on /api/ws/audio
IDLE_SOCKETS = 100
MIDFRAME_CLIENTS = 40
# What --only can pick.
CLASSES = ('good', 'garbage', 'flood', 'slow', 'idle', 'midframe', 'huge')

# --- timing -----------------------------------------------------------------
# Audio per message sent by a good stream, in milliseconds.
CHUNK_MS = 50
# Seconds of the run that are not good-stream time: the start (baseline,
# the lone 4 GiB probe) and the end (flush, leak checks).
GOOD_MARGIN_SECONDS = 20
# Good streams never run shorter than this, in seconds.
MIN_GOOD_SECONDS = 15
# Bad clients start this many seconds after the good streams.
BAD_START_SECONDS = 2
# Time allowed beyond a documented limit before a cut-off counts as late, in
# seconds: the idle sweep runs every 0.5 s, and 200+ clients share 2 cores
# with the server.
SLACK_SECONDS = 3
# Extra slack for the slow readers' cut-off, in seconds: all 100 are cut in
# the same few seconds, and this client's own event loop, busy with them,
# lags by up to ~3 s there (measured: good-stream send lag 2.4-2.8 s).
SLOW_SLACK_SECONDS = 3
# The write loop's two tries at the final error text and the close frame
# (src/websocket/transport.rs, FINAL_MESSAGE_TIMEOUT_SECONDS), in seconds each.
FINAL_MESSAGE_SECONDS = 2
# A frame header claiming a huge payload must be refused this fast, in seconds.
HUGE_LIMIT_SECONDS = 1.0
# The lone 4 GiB probe may move RSS by at most this much, in KiB.
HUGE_RSS_LIMIT_KIB = 1024
# Seconds the flood client floods.
FLOOD_SECONDS = 8
# Bytes per flood message (under the 1 MiB message limit).
FLOOD_MESSAGE_BYTES = 512 * 1024
# Bytes per slow-reader message.
SLOW_MESSAGE_BYTES = 64 * 1024
# Receive buffer of a never-reading socket, in bytes: small, so it fills soon.
SLOW_RCVBUF_BYTES = 8192
# A slow reader's send that waits this long means the server stopped taking
# its input, in seconds.
BLOCKED_SECONDS = 1.0
# How often the RSS sampler reads /proc/PID/status, in seconds.
SAMPLE_SECONDS = 0.1
# Descriptors the server may hold beyond its baseline after the run (the
# SQLite WAL, a log file reopened, ...).
FD_SLACK = 8
# Seconds the leak checks wait for streams and descriptors to settle.
SETTLE_SECONDS = 15

# --- the RSS bound, per connection (BENCHMARKS.md, "Load"; README "Bounds") --
# An active stream whose client reads: measured 136-166 KiB; the issue-5
# target, 256 KiB, is the budget.
ACTIVE_STREAM_KIB = 256
# An idle connection: measured 22-28 KiB; the target, 64 KiB, is the budget.
IDLE_CONNECTION_KIB = 64
# A connection that dies within a second (garbage, mid-frame): its request
# buffers and one message at most.
SHORT_CONNECTION_KIB = 128
# A recorded session that receives audio measures it (issue 15): its
# loudness meter keeps two histograms (1000 bins of a count and an energy:
# 32 KiB) and 269 f32 of true-peak history and scratch per channel, plus the
# analysis' own buffers (a chunk's samples as i32: 100 ms). The rate is kept
# in the signature for that last part.
def loudness_meter_kib(rate: int, channels: int) -> float:
    return 32 + channels * 269 * 4 / 1024 + rate * channels * 4 * 0.1 / 1024 + 64


# Allocator and thread-stack slack on top of the sum, as a fraction.
ALLOCATOR_SLACK = 0.25

ZERO_MASK = b'\0\0\0\0'  # a legal mask key that leaves the payload as it is


# --- WebSocket framing over raw sockets ---------------------------------------

def no_sync(data: bytes) -> bytes:
    """Random bytes that are no audio: without 0xFF, no MP3 or ADTS frame
    sync can occur, so a decoder's probe cannot take them for audio (the
    other containers' magics are 4 bytes, as good as impossible by chance)."""
    return data.replace(b'\xff', b'\x00')


def frame(opcode: int, payload: bytes, *, fin: bool = True, masked: bool = True,
          mask: bytes = ZERO_MASK, rsv: int = 0, length: int | None = None) -> bytes:
    """A client frame; `length` overrides the declared payload length."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    bit = 0x80 if masked else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack('>H', n)
    else:
        head += bytes([bit | 127]) + struct.pack('>Q', n)
    if not masked:
        return head + payload
    if mask != ZERO_MASK:
        m = (mask * (len(payload) // 4 + 1))[:len(payload)]
        payload = (int.from_bytes(payload, 'little') ^ int.from_bytes(m, 'little')).to_bytes(len(payload), 'little')
    return head + mask + payload


def streaming_wav_header(rate: int, channels: int, bits: int = 16) -> bytes:
    """A WAV header with the streaming sizes (0xFFFFFFFF): length unknown."""
    align = channels * bits // 8
    return (b'RIFF' + struct.pack('<I', 0xFFFFFFFF) + b'WAVEfmt ' +
            struct.pack('<IHHIIHH', 16, 1, channels, rate, rate * align, align, bits) +
            b'data' + struct.pack('<I', 0xFFFFFFFF))


class Peer:
    """One raw connection to the server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, target: tuple[str, int], rcvbuf: int | None = None) -> 'Peer':
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, target)
        except BaseException:
            sock.close()
            raise
        reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def upgrade(self, path: str, host: str) -> tuple[int, str | None]:
        """Sends a WebSocket upgrade; (101, None) or (status, error code)."""
        key = base64.b64encode(os.urandom(16)).decode()
        await self.send((f'GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n'
                         f'Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n'
                         f'Sec-WebSocket-Version: 13\r\n\r\n').encode())
        return await self.read_http_head()

    async def read_http_head(self) -> tuple[int, str | None]:
        """Reads a response head (and a JSON error body if any)."""
        head = await self.reader.readuntil(b'\r\n\r\n')
        lines = head.decode('latin-1').split('\r\n')
        status = int(lines[0].split()[1])
        if status == 101:
            return status, None
        headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(':') for l in lines[1:] if l)}
        code = None
        n = int(headers.get('content-length', '0') or 0)
        if n:
            body = await self.reader.readexactly(min(n, 1 << 16))
            try:
                code = json.loads(body).get('code')
            except ValueError:
                pass
        return status, code

    async def read_frame(self) -> tuple[int, bytes]:
        b = await self.reader.readexactly(2)
        op, n = b[0] & 0x0F, b[1] & 0x7F
        if n == 126:
            n = struct.unpack('>H', await self.reader.readexactly(2))[0]
        elif n == 127:
            n = struct.unpack('>Q', await self.reader.readexactly(8))[0]
        return op, await self.reader.readexactly(n)

    async def outcome(self, timeout: float) -> tuple[str, float]:
        """Reads what the server sends until its close frame, EOF, a reset or
        `timeout`; (outcome, seconds it took)."""
        t0 = time.monotonic()
        error = None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    op, payload = await self.read_frame()
                    if op == 1:
                        try:
                            m = json.loads(payload)
                        except ValueError:
                            continue
                        if m.get('type') == 'error':
                            error = m.get('code')
                    elif op == 8:
                        code = struct.unpack('>H', payload[:2])[0] if len(payload) >= 2 else 1005
                        await self.close_politely(code)
                        return f'close {code} {error or "-"}', time.monotonic() - t0
        except TimeoutError:
            end = 'timeout'
        except asyncio.IncompleteReadError:
            end = 'eof'
        except OSError:
            end = 'reset'
        self.abort()
        return (f'error {error}, {end}' if error else end), time.monotonic() - t0

    async def http_outcome(self, timeout: float) -> tuple[str, float]:
        """Reads an HTTP answer, or EOF, a reset or `timeout`."""
        t0 = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                status, code = await self.read_http_head()
                result = f'http {status} {code or "-"}'
        except TimeoutError:
            result = 'timeout'
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            result = 'eof'
        except (OSError, ValueError, IndexError):
            result = 'reset'
        self.abort()
        return result, time.monotonic() - t0

    async def close_politely(self, code: int) -> None:
        try:
            await asyncio.wait_for(self.send(frame(8, struct.pack('>H', 1000 if code == 1005 else code))), 1)
        except (OSError, TimeoutError):
            pass
        self.abort()

    def abort(self, reset: bool = False) -> None:
        sock = self.writer.get_extra_info('socket')
        if reset and sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        self.writer.close()


# --- audio ------------------------------------------------------------------

def load_pcm(path: str, rate: int, channels: int) -> bytes | None:
    """16-bit PCM from a WAV of this format, or None."""
    try:
        with wave.open(path, 'rb') as w:
            if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (rate, channels, 2):
                return None
            return w.readframes(w.getnframes())
    except (OSError, wave.Error, EOFError):
        return None


def synthetic_pcm(rate: int, channels: int, seconds: int, seed: int) -> bytes:
    """Tones under noise, when the real audio is not rendered."""
    import math
    rng = random.Random(seed)
    out = bytearray()
    f = [rng.uniform(100, 2000) for _ in range(channels)]
    for i in range(rate * seconds):
        for c in range(channels):
            v = 12000 * math.sin(2 * math.pi * f[c] * i / rate) + rng.gauss(0, 800)
            out += struct.pack('<h', max(-32768, min(32767, int(v))))
    return bytes(out)


class Audio:
    """The audio the clients send: real music and speech when rendered."""

    def __init__(self, audio_dir: str):
        self.music = load_pcm(os.path.join(audio_dir, 'music-16.wav'), 44100, 2)
        self.speech = load_pcm(os.path.join(audio_dir, 'speech-16k.wav'), 16000, 1)
        self.synthetic = self.music is None or self.speech is None
        if self.music is None:
            self.music = synthetic_pcm(44100, 2, 10, 1)
        if self.speech is None:
            self.speech = synthetic_pcm(16000, 1, 10, 2)
        self.noise = random.Random(3).randbytes(4 << 20)

    @staticmethod
    def take(src: bytes, offset: int, n: int) -> bytes:
        """`n` bytes from `src` at `offset`, wrapping around."""
        offset %= len(src)
        out = src[offset:offset + n]
        while len(out) < n:
            out += src[:n - len(out)]
        return out


# --- results ------------------------------------------------------------------

class Results:
    def __init__(self):
        self.attempts: list[dict] = []
        self.t0 = time.monotonic()

    def add(self, cls: str, kind: str, outcome: str, seconds: float | None,
            expect: tuple[str, ...], limit: float | None, **extra) -> None:
        ok = any(outcome.startswith(e) for e in expect) and (limit is None or seconds is None or seconds <= limit)
        self.attempts.append({'class': cls, 'kind': kind, 'outcome': outcome,
                              'seconds': None if seconds is None else round(seconds, 3),
                              'expect': list(expect), 'limit_s': limit, 'ok': ok,
                              'at_s': round(time.monotonic() - self.t0, 2), **extra})


# --- good streams -------------------------------------------------------------

async def paced_send(ws, pcm_src: bytes, offset: int, bytes_per_chunk: int, chunks: int,
                     sent_file, lag: list) -> tuple[int, str]:
    """Sends `chunks` chunks on a real-time schedule; (bytes, md5 of the PCM)."""
    md5 = hashlib.md5()
    start = time.monotonic()
    total = 0
    for k in range(chunks):
        due = start + k * CHUNK_MS / 1000
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            lag.append(-delay)
        chunk = Audio.take(pcm_src, offset + total, bytes_per_chunk)
        await ws.send(chunk)
        md5.update(chunk)
        sent_file.write(chunk)
        total += len(chunk)
    return total, md5.hexdigest()


async def good_stream(i: int, args, audio: Audio, results: Results, lag: list) -> dict:
    """A /stream client: 44.1 kHz stereo on schedule, FLAC kept for decoding."""
    rate, channels = 44100, 2
    per_chunk = rate * CHUNK_MS // 1000 * channels * 2
    chunks = int(args.good_seconds * 1000 / CHUNK_MS)
    name = f'stream-{i:02d}'
    pcm_path = os.path.join(args.work_dir, name + '.pcm')
    flac_path = os.path.join(args.work_dir, name + '.flac')
    rec = {'name': name, 'endpoint': '/stream', 'rate': rate, 'channels': channels}
    flac = bytearray()
    done = None
    try:
        async with websockets.connect(f'ws://{args.target}/stream', max_size=None, compression=None,
                                      ping_interval=None, open_timeout=30, close_timeout=10) as ws:
            async def receive():
                nonlocal done
                async for msg in ws:
                    if isinstance(msg, bytes):
                        flac.extend(msg)
                    else:
                        m = json.loads(msg)
                        if m['type'] == 'done':
                            done = m
                        else:
                            rec['error'] = m.get('code')
            receiver = asyncio.create_task(receive())
            with open(pcm_path, 'wb') as f:
                await ws.send(streaming_wav_header(rate, channels))
                rec['bytes'], rec['md5'] = await paced_send(ws, audio.music, i * 15 * rate * channels * 2,
                                                            per_chunk, chunks, f, lag)
            await ws.send(json.dumps({'type': 'end'}))
            await asyncio.wait_for(receiver, 60)
            rec['close'] = ws.close_code
    except (OSError, websockets.exceptions.WebSocketException, TimeoutError) as e:
        rec['exception'] = repr(e)
    if done:
        flac[8:42] = base64.b64decode(done['streaminfo'])
        rec['done'] = {k: done[k] for k in ('samples', 'md5', 'frames', 'reason')}
    with open(flac_path, 'wb') as f:
        f.write(flac)
    rec['flac'] = flac_path
    rec['pcm'] = pcm_path
    return rec


async def good_session(i: int, args, audio: Audio, results: Results, lag: list) -> dict:
    """A recorded session: 16 kHz mono s16le on schedule, acks, output=flac."""
    rate, channels = 16000, 1
    per_chunk = rate * CHUNK_MS // 1000 * channels * 2
    chunks = int(args.good_seconds * 1000 / CHUNK_MS)
    name = f'session-{i:02d}'
    pcm_path = os.path.join(args.work_dir, name + '.pcm')
    rec = {'name': name, 'endpoint': '/api/ws/audio', 'rate': rate, 'channels': channels}
    flac = bytearray()
    done = None
    last_ack = None
    url = (f'ws://{args.target}/api/ws/audio?sample_rate={rate}&channels={channels}'
           f'&format=s16le&output=flac&user_id=fault')
    try:
        async with websockets.connect(url, max_size=None, compression=None, ping_interval=None,
                                      open_timeout=30, close_timeout=10) as ws:
            first = json.loads(await ws.recv())
            rec['session_id'] = first.get('session_id')

            async def receive():
                nonlocal done, last_ack
                async for msg in ws:
                    if isinstance(msg, bytes):
                        flac.extend(msg)
                    else:
                        m = json.loads(msg)
                        if m['type'] == 'done':
                            done = m
                        elif m['type'] == 'ack':
                            last_ack = m
                        elif m['type'] == 'error':
                            rec['error'] = m.get('code')
            receiver = asyncio.create_task(receive())
            with open(pcm_path, 'wb') as f:
                rec['bytes'], rec['md5'] = await paced_send(ws, audio.speech, i * 13 * rate * 2,
                                                            per_chunk, chunks, f, lag)
            await ws.send(json.dumps({'type': 'control', 'action': 'close_session'}))
            await asyncio.wait_for(receiver, 60)
            rec['close'] = ws.close_code
    except (OSError, websockets.exceptions.WebSocketException, TimeoutError, ValueError) as e:
        rec['exception'] = repr(e)
    if done:
        flac[8:42] = base64.b64decode(done['streaminfo'])
        rec['done'] = {k: done[k] for k in ('samples', 'md5', 'frames', 'reason')}
    if last_ack:
        rec['acked_samples'] = last_ack.get('samples_received')
    live_path = os.path.join(args.work_dir, name + '.live.flac')
    with open(live_path, 'wb') as f:
        f.write(flac)
    rec['flac'] = live_path
    rec['pcm'] = pcm_path
    if rec.get('session_id'):
        stored = os.path.join(args.work_dir, name + '.stored.flac')
        try:
            data = await asyncio.to_thread(http_get, args.target, f'/api/audio/sessions/{rec["session_id"]}/audio')
            with open(stored, 'wb') as f:
                f.write(data)
            rec['stored'] = stored
        except (OSError, urllib.error.URLError) as e:
            rec['stored_error'] = repr(e)
    return rec


def http_get(target: str, path: str, timeout: float = 10) -> bytes:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f'http://{target}{path}', timeout=timeout) as r:
        return r.read()


def decode_and_compare(flac_path: str, pcm_path: str, channels: int) -> str | None:
    """None if libFLAC decodes `flac_path` to exactly `pcm_path`; else why not."""
    raw = flac_path + '.raw'
    p = subprocess.run(['flac', '--silent', '--decode', '--force', '--force-raw-format',
                        '--endian=little', '--sign=signed', '-o', raw, flac_path],
                       capture_output=True, text=True)
    if p.returncode != 0:
        return f'flac -d: {p.stderr.strip()[:200]}'
    try:
        with open(raw, 'rb') as a, open(pcm_path, 'rb') as b:
            pos = 0
            while True:
                x, y = a.read(1 << 20), b.read(1 << 20)
                if x != y:
                    n = min(len(x), len(y))
                    k = next((j for j in range(n) if x[j] != y[j]), n)
                    sample = (pos + k) // 2
                    if k == n and len(x) != len(y):
                        return f'length differs: decoded ends at sample {sample // channels}' \
                               if len(x) < len(y) else f'decoded longer than sent, from sample {sample // channels}'
                    return f'sample {sample // channels}, channel {sample % channels} differs'
                if not x:
                    return None
                pos += len(x)
    finally:
        os.unlink(raw)


def check_good(rec: dict) -> list[str]:
    """Why a good stream is not exact (empty if it is)."""
    why = []
    for k in ('exception', 'error'):
        if k in rec:
            why.append(f'{k}: {rec[k]}')
    frame_bytes = rec['channels'] * 2
    samples = rec.get('bytes', 0) // frame_bytes
    done = rec.get('done')
    if not done:
        why.append('no done')
    else:
        if done['samples'] != samples:
            why.append(f'done.samples {done["samples"]} != sent {samples}')
        if done['md5'] != rec.get('md5'):
            why.append('done.md5 differs from the MD5 of what was sent')
    if rec.get('close') != 1000:
        why.append(f'close {rec.get("close")}')
    if 'acked_samples' in rec and rec['acked_samples'] != samples:
        why.append(f'acked {rec["acked_samples"]} != sent {samples}')
    if done:
        bad = decode_and_compare(rec['flac'], rec['pcm'], rec['channels'])
        if bad:
            why.append(f'live FLAC: {bad}')
    if rec['endpoint'] == '/api/ws/audio':
        if 'stored' not in rec:
            why.append(f'stored file: {rec.get("stored_error", "not fetched")}')
        else:
            bad = decode_and_compare(rec['stored'], rec['pcm'], rec['channels'])
            if bad:
                why.append(f'stored FLAC: {bad}')
            with open(rec['stored'], 'rb') as a, open(rec['flac'], 'rb') as b:
                if a.read() != b.read():
                    why.append('stored file differs from the live FLAC patched with done.streaminfo')
    return why


# --- the bad clients ------------------------------------------------------------

class Bad:
    """Every misbehaving client, with the settings the server runs with."""

    def __init__(self, args, audio: Audio, results: Results):
        self.args = args
        host, port = args.target.rsplit(':', 1)
        self.addr = (host, int(port))
        self.host = args.target
        self.audio = audio
        self.results = results
        self.wav_header = streaming_wav_header(44100, 2)
        self.flood_report: dict = {}
        # A connection refused before it could misbehave is a result too.
        self.connect_failures = collections.Counter()

    async def peer(self, rcvbuf: int | None = None) -> Peer:
        return await Peer.connect(self.addr, rcvbuf)

    async def upgraded(self, path: str = '/stream', rcvbuf: int | None = None) -> Peer:
        p = await self.peer(rcvbuf)
        status, code = await p.upgrade(path, self.host)
        if status != 101:
            p.abort()
            raise ConnectionError(f'http {status} {code or "-"}')
        return p

    def record(self, cls, kind, outcome, seconds, expect, limit, **extra):
        self.results.add(cls, kind, outcome, seconds, expect, limit, **extra)

    async def guarded(self, cls: str, kind: str, coro, expect, limit):
        """Runs one attempt; a failure to connect or upgrade is its outcome."""
        try:
            await coro
        except (OSError, ConnectionError, asyncio.IncompleteReadError, TimeoutError, ValueError) as e:
            self.record(cls, kind, f'setup failed: {e!r}'[:160], None, expect, limit)

    # ---- garbage ----
    def garbage_kinds(self):
        a = self.args
        idle_limit = a.connection_timeout + SLACK_SECONDS
        head_limit = a.header_timeout + SLACK_SECONDS
        quick = 1 + SLACK_SECONDS
        bad_message = ('close 1008 bad_message',)
        return [
            # (kind, coroutine factory, expected outcomes, limit in seconds)
            ('tcp_random_bytes', self.g_tcp_random, ('http 400', 'eof', 'reset'), head_limit),
            ('http_1MiB_header', self.g_huge_header, ('http 431', 'eof', 'reset'), quick),
            ('http_bad_query', self.g_bad_query, ('http 400 bad_parameter',), quick),
            ('convert_not_wav', self.g_convert_not_wav, ('http 415 unrecognized_format',), quick),
            ('ws_not_wav', self.g_ws_not_wav, ('close 1003 unrecognized_format',), quick),
            ('ws_unmasked_frame', self.g_ws_unmasked, bad_message, quick),
            ('ws_reserved_opcode', self.g_ws_bad_opcode, bad_message, quick),
            ('ws_invalid_utf8_text', self.g_ws_bad_utf8, bad_message, quick),
            ('ws_non_json_text', self.g_ws_bad_text, bad_message, quick),
            ('ws_oversize_ping', self.g_ws_big_ping, bad_message, quick),
            # Random bytes parse as some frame: not WAV, too large, a protocol
            # error, or a frame still waiting for its payload (the idle timeout).
            ('ws_random_frames', self.g_ws_random_frames,
             ('close 1007', 'close 1008', 'close 1009'), idle_limit),
            ('session_wav_garbage', self.g_session_garbage, ('close 1007 not_wav',), quick),
        ]

    async def g_tcp_random(self, expect, limit):
        p = await self.peer()
        await p.send(os.urandom(random.randint(64, 4096)))
        out, s = await p.http_outcome(limit + 5)
        self.record('garbage', 'tcp_random_bytes', out, s, expect, limit)

    async def g_huge_header(self, expect, limit):
        p = await self.peer()
        try:
            await p.send(b'GET /stream HTTP/1.1\r\nHost: x\r\nX-Junk: ' + b'a' * (1 << 20) + b'\r\n\r\n')
        except OSError:
            pass  # the server may stop reading and reset before the end
        out, s = await p.http_outcome(limit + 5)
        self.record('garbage', 'http_1MiB_header', out, s, expect, limit)

    async def g_bad_query(self, expect, limit):
        p = await self.peer()
        t0 = time.monotonic()
        status, code = await p.upgrade('/api/ws/audio?format=s99le&sample_rate=x&bogus=1', self.host)
        p.abort()
        self.record('garbage', 'http_bad_query', f'http {status} {code or "-"}', time.monotonic() - t0, expect, limit)

    async def g_convert_not_wav(self, expect, limit):
        p = await self.peer()
        body = no_sync(os.urandom(65536))
        await p.send(b'POST /convert HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n'
                     b'Content-Length: %d\r\n\r\n' % len(body) + body)
        out, s = await p.http_outcome(limit + 5)
        self.record('garbage', 'convert_not_wav', out, s, expect, limit)

    async def ws_then(self, kind, payload, expect, limit, path='/stream'):
        p = await self.upgraded(path)
        await p.send(payload)
        out, s = await p.outcome(limit + 5)
        self.record('garbage', kind, out, s, expect, limit)

    async def g_ws_not_wav(self, expect, limit):
        await self.ws_then('ws_not_wav', frame(2, no_sync(os.urandom(4096)), mask=os.urandom(4)),
                           expect, limit)

    async def g_ws_unmasked(self, expect, limit):
        await self.ws_then('ws_unmasked_frame', frame(2, self.wav_header, masked=False), expect, limit)

    async def g_ws_bad_opcode(self, expect, limit):
        await self.ws_then('ws_reserved_opcode', frame(2, self.wav_header) + frame(3, b'x' * 10), expect, limit)

    async def g_ws_bad_utf8(self, expect, limit):
        await self.ws_then('ws_invalid_utf8_text',
                           frame(2, self.wav_header) + frame(1, b'{"type":"\xff\xfe\x80"}'), expect, limit)

    async def g_ws_bad_text(self, expect, limit):
        pcm = Audio.take(self.audio.music, 0, 8192)
        await self.ws_then('ws_non_json_text', frame(2, self.wav_header + pcm) + frame(1, b'hello'), expect, limit)

    async def g_ws_big_ping(self, expect, limit):
        await self.ws_then('ws_oversize_ping', frame(9, b'p' * 200), expect, limit)

    async def g_ws_random_frames(self, expect, limit):
        await self.ws_then('ws_random_frames', os.urandom(4096), expect, limit)

    async def g_session_garbage(self, expect, limit):
        await self.ws_then('session_wav_garbage', frame(2, os.urandom(8192)), expect, limit,
                           path='/api/ws/audio?format=wav&record=false')

    async def garbage(self, window: float):
        kinds = self.garbage_kinds()
        tasks = []
        start = time.monotonic()
        for n in range(GARBAGE_CONNECTIONS):
            due = start + window * n / GARBAGE_CONNECTIONS
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            kind, fn, expect, limit = kinds[n % len(kinds)]
            tasks.append(asyncio.create_task(self.guarded('garbage', kind, fn(expect, limit), expect, limit)))
        await asyncio.gather(*tasks)

    # ---- flood ----
    async def flood(self, seconds: float):
        """A valid stream as fast as the server takes it; its output is read
        and checked (samples, MD5, `flac -t` on the patched FLAC)."""
        expect, limit = ('done exact',), None
        flac_path = os.path.join(self.args.work_dir, 'flood.flac')
        try:
            p = await self.upgraded('/stream')
        except (OSError, ConnectionError) as e:
            self.record('flood', 'fast_sender', f'setup failed: {e!r}', None, expect, limit)
            return
        md5 = hashlib.md5()
        sent = 0
        flac = open(flac_path, 'wb')
        done = {}
        error = close = None

        async def read():
            nonlocal error, close
            while True:
                op, payload = await p.read_frame()
                if op == 2:
                    flac.write(payload)
                elif op == 1:
                    m = json.loads(payload)
                    if m['type'] == 'done':
                        done.update(m)
                    else:
                        error = m.get('code')
                elif op == 8:
                    close = struct.unpack('>H', payload[:2])[0]
                    await p.close_politely(close)
                    return
        reader = asyncio.create_task(read())
        t0 = time.monotonic()
        try:
            await p.send(frame(2, self.wav_header))
            src = self.audio.music
            while time.monotonic() - t0 < seconds and not reader.done():
                chunk = Audio.take(src, sent, FLOOD_MESSAGE_BYTES)
                await p.send(frame(2, chunk))
                md5.update(chunk)
                sent += len(chunk)
            flood_s = time.monotonic() - t0
            await p.send(frame(1, b'{"type":"end"}'))
            await asyncio.wait_for(reader, 60)
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as e:
            error = error or repr(e)
            flood_s = time.monotonic() - t0
        flac.close()
        samples = sent // 4
        why = []
        if not done:
            why.append(f'no done (error {error}, close {close})')
        else:
            if done['samples'] != samples:
                why.append(f'samples {done["samples"]} != sent {samples}')
            if done['md5'] != md5.hexdigest():
                why.append('MD5 differs')
            with open(flac_path, 'r+b') as f:
                f.seek(8)
                f.write(base64.b64decode(done['streaminfo']))
            t = subprocess.run(['flac', '--silent', '--test', flac_path], capture_output=True, text=True)
            if t.returncode != 0:
                why.append(f'flac -t: {t.stderr.strip()[:200]}')
        os.unlink(flac_path)
        audio_s = samples / 44100
        self.flood_report = {'sent_mib': round(sent / 2**20, 1), 'flood_s': round(flood_s, 1),
                             'audio_seconds': round(audio_s, 1),
                             'x_realtime': round(audio_s / flood_s, 1) if flood_s else None,
                             'close': close, 'problems': why}
        self.record('flood', 'fast_sender', 'done exact' if not why else '; '.join(why),
                    None, expect, limit, **self.flood_report)

    # ---- slow readers ----
    async def slow_reader(self, n: int):
        """Sends audio as fast as the server takes it, never reads; the server
        must cut it within the stall time (+ its two 2-s tries at the final
        message and the close frame) of no longer taking its input. A
        recorded session may be cut sooner by the input rate limit
        (`input_too_fast`, 1008: its burst is 60 s of audio, about what fills
        the buffers)."""
        session = n < SLOW_READER_SESSIONS
        kind = 'session' if session else 'stream'
        limit = self.args.stall + 2 * FINAL_MESSAGE_SECONDS + SLACK_SECONDS + SLOW_SLACK_SECONDS
        expect = ('reset', 'eof', 'close 1008 slow_reader', 'error slow_reader')
        if session:
            expect += ('close 1008 input_too_fast', 'error input_too_fast')
        path = ('/api/ws/audio?format=s16le&sample_rate=44100&channels=2&output=flac&acks=false&record=false'
                if session else '/stream')
        try:
            p = await self.upgraded(path, rcvbuf=SLOW_RCVBUF_BYTES)
        except (OSError, ConnectionError) as e:
            self.record('slow', kind, f'setup failed: {e!r}', None, expect, limit)
            return
        p.writer.transport.set_write_buffer_limits(high=SLOW_MESSAGE_BYTES)
        # Never read: pause the transport so the kernel's buffers fill.
        p.writer.transport.pause_reading()
        t0 = time.monotonic()
        # When the server stopped taking input: the start of the longest
        # wait for a send (a busy server makes a client wait now and then;
        # the stall is the wait that ends in the cut, or the longest).
        blocked_at, longest = None, BLOCKED_SECONDS
        sent = 0
        deadline = t0 + self.args.good_seconds + 30
        first = b'' if session else frame(2, self.wav_header)
        outcome = 'timeout'
        started = t0
        try:
            while time.monotonic() < deadline:
                chunk = Audio.take(self.audio.noise, sent, SLOW_MESSAGE_BYTES)
                p.writer.write(first + frame(2, chunk))
                first = b''
                started = time.monotonic()
                await asyncio.wait_for(p.writer.drain(), deadline - started)
                if time.monotonic() - started > longest:
                    blocked_at, longest = started, time.monotonic() - started
                sent += len(chunk)
        except (ConnectionResetError, BrokenPipeError):
            outcome = 'reset'
        except OSError as e:
            outcome = f'reset ({e.errno})'
        except TimeoutError:
            outcome = 'timeout'
        cut = time.monotonic()
        error = None
        if cut - started > longest:
            blocked_at = started
        if outcome.startswith('reset'):
            # What reached the socket before the cut (the error and close
            # frame get through only if the buffers had room): read it now.
            p.writer.transport.resume_reading()
            try:
                async with asyncio.timeout(1):
                    while True:
                        op, payload = await p.read_frame()
                        if op == 1 and b'"error"' in payload:
                            error = json.loads(payload).get('code')
                            outcome = f'error {error}, reset'
                        if op == 8:
                            outcome = f'close {struct.unpack(">H", payload[:2])[0]} {error}'
                            break
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                pass
        p.abort()
        if blocked_at is None and error is None:
            outcome = 'input never stopped; ' + outcome
        self.record('slow', kind, outcome, cut - (blocked_at or t0), expect, limit,
                    sent_mib=round(sent / 2**20, 1),
                    blocked_after_s=None if blocked_at is None else round(blocked_at - t0, 1))

    # ---- idle ----
    async def idle(self, n: int):
        a = self.args
        if n < 60:
            kind, expect, limit = 'tcp_silent', ('http 408', 'eof', 'reset'), a.header_timeout + SLACK_SECONDS
        elif n < 70:
            kind, expect, limit = 'half_request_line', ('http 408', 'eof', 'reset'), a.header_timeout + SLACK_SECONDS
        elif n < 90:
            kind, expect, limit = 'ws_stream_silent', ('close 1008 idle_timeout',), a.connection_timeout + SLACK_SECONDS
        else:
            kind, expect, limit = 'ws_session_silent', ('close 1008 idle_timeout',), a.connection_timeout + SLACK_SECONDS
        if kind.startswith('ws_'):
            path = ('/stream' if kind == 'ws_stream_silent'
                    else '/api/ws/audio?format=s16le&sample_rate=16000&channels=1&record=false')
            p = await self.upgraded(path)
            out, s = await p.outcome(limit + 10)
        else:
            p = await self.peer()
            if kind == 'half_request_line':
                await p.send(b'GET /stream HT')
            out, s = await p.http_outcome(limit + 10)
        self.record('idle', kind, out, s, expect, limit)

    # ---- mid-frame disconnects ----
    async def midframe(self, n: int):
        kinds = ['half_frame_header', 'half_payload_fin', 'half_payload_rst', 'session_half_payload',
                 'half_request']
        kind = kinds[n % len(kinds)]
        start = frame(2, self.wav_header + Audio.take(self.audio.music, n * 4096, 44100 * 4))
        partial = frame(2, b'', length=65536)  # 65536 bytes promised
        if kind == 'half_request':
            p = await self.peer()
            await p.send(b'GET /stream HTTP/1.1\r\nHost: x\r\nUpgrade: webso')
        elif kind == 'session_half_payload':
            p = await self.upgraded('/api/ws/audio?format=s16le&sample_rate=44100&channels=2&record=false')
            await p.send(frame(2, Audio.take(self.audio.music, 0, 65536)) + partial + os.urandom(10000))
        else:
            p = await self.upgraded('/stream')
            if kind == 'half_frame_header':
                await p.send(start + b'\x82')
            else:
                await p.send(start + partial + Audio.take(self.audio.music, 0, 10000))
        await asyncio.sleep(0.05)
        p.abort(reset=kind == 'half_payload_rst')
        # Nothing to hear back: what the server did with it shows in the leak
        # checks at the end (no stream left open, descriptors back).
        self.record('midframe', kind, 'sent', None, ('sent',), None)

    # ---- huge frame claims ----
    async def huge(self, kind: str):
        expect, limit = ('close 1009 message_too_large',), HUGE_LIMIT_SECONDS
        length = {'4GiB_stream': 1 << 32, '2^63-1_stream': (1 << 63) - 1, '4GiB_session': 1 << 32}[kind]
        path = ('/api/ws/audio?format=s16le&sample_rate=16000&channels=1&record=false'
                if kind.endswith('session') else '/stream')
        p = await self.upgraded(path)
        # The header only, then a few bytes of the "payload"; the server must
        # refuse on the header and allocate nothing for the claim.
        await p.send(frame(2, b'', length=length) + b'\0' * 1024)
        out, s = await p.outcome(limit + 10)
        self.record('huge', kind, out, s, expect, limit)


# --- the server's side: RSS, descriptors, open streams ------------------------------

class Sampler(threading.Thread):
    """Reads VmRSS every SAMPLE_SECONDS in a thread of its own (the event
    loop may be busy)."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.samples: list[tuple[float, int]] = []
        self.stop = threading.Event()

    def run(self):
        t0 = time.monotonic()
        while not self.stop.is_set():
            rss = status_kib(self.pid, 'VmRSS')
            if rss is None:
                break
            self.samples.append((round(time.monotonic() - t0, 2), rss))
            self.stop.wait(SAMPLE_SECONDS)


def status_kib(pid: int, field: str) -> int | None:
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def fd_count(pid: int) -> int | None:
    try:
        return len(os.listdir(f'/proc/{pid}/fd'))
    except OSError:
        return None


def open_streams(target: str) -> int | None:
    """Streams and live recorded sessions, from GET /admin/drain (loopback)."""
    try:
        return json.loads(http_get(target, '/admin/drain', 5))['streams']
    except (OSError, ValueError, KeyError, urllib.error.URLError):
        return None


def rss_bound(baseline_kib: int, args) -> tuple[int, list[str]]:
    """The peak RSS the run may reach, in KiB, with its derivation.

    A slow reader holds at most: the message being staged, the staging ring
    (2 blocks of 4096 stereo samples, 4 bytes each), the frames encoding or
    queued (--max-blocks-in-flight + 1 being handed over), 32 frames in
    actix-ws's channel and up to 32 more that actix-ws encoded into one chunk
    of the HTTP layer's write buffer (it hands over everything queued at
    once), every frame verbatim as noise makes it (4096 x 2 x 2 bytes +
    header), plus the HTTP layer's read buffer (one message) and an idle
    connection's own cost. Measured: 1.48 MiB each with 50 of them."""
    block, channels = 4096, 2
    verbatim_frame_kib = (block * channels * 2 + 32) / 1024
    actix_ws_queue = 32
    frames = args.blocks_in_flight + 1 + 2 * actix_ws_queue
    slow_kib = (SLOW_MESSAGE_BYTES / 1024 + 2 * block * channels * 4 / 1024
                + frames * verbatim_frame_kib
                + SLOW_MESSAGE_BYTES / 1024 + IDLE_CONNECTION_KIB)
    # The flood client: a message being staged, one in the read buffer, and
    # a reading client's frames (an active stream's budget).
    flood_kib = 2 * FLOOD_MESSAGE_BYTES / 1024 + ACTIVE_STREAM_KIB
    # Garbage and mid-frame connections live for about a second; at most
    # this many are open at once (one started every window/200 s).
    concurrent_short = 40
    parts = [
        ('good streams', GOOD_STREAMS + GOOD_SESSIONS, ACTIVE_STREAM_KIB),
        ('slow readers', SLOW_READERS, slow_kib),
        ('flood', 1, flood_kib),
        ('idle sockets', IDLE_SOCKETS, IDLE_CONNECTION_KIB),
        ('garbage/mid-frame open at once', concurrent_short, SHORT_CONNECTION_KIB),
        ('loudness meters, good sessions (16 kHz mono)', GOOD_SESSIONS,
         loudness_meter_kib(16_000, 1)),
        ('loudness meters, slow-reader sessions (44.1 kHz stereo)', SLOW_READER_SESSIONS,
         loudness_meter_kib(44_100, 2)),
    ]
    total = sum(n * kib for _, n, kib in parts)
    bound = int(baseline_kib + total * (1 + ALLOCATOR_SLACK))
    lines = [f'baseline {baseline_kib / 1024:.1f} MiB'] + [
        f'{name}: {n} x {kib:.0f} KiB = {n * kib / 1024:.1f} MiB' for name, n, kib in parts]
    lines.append(f'sum {total / 1024:.1f} MiB, +{ALLOCATOR_SLACK:.0%} allocator slack: '
                 f'bound {bound / 1024:.1f} MiB')
    return bound, lines


# --- the run --------------------------------------------------------------------

async def run(args) -> dict:
    results = Results()
    audio = Audio(args.audio_dir)
    bad = Bad(args, audio, results)
    pid = args.pid
    base_fds = fd_count(pid)
    base_rss = status_kib(pid, 'VmRSS') or 0
    sampler = Sampler(pid)
    sampler.start()
    report: dict = {'synthetic_audio': audio.synthetic, 'baseline_rss_kib': base_rss, 'baseline_fds': base_fds}

    # The lone 4 GiB probe, before anything else: its own RSS cost.
    await asyncio.sleep(0.5)
    before = status_kib(pid, 'VmRSS') or 0
    await bad.guarded('huge', '4GiB_stream', bad.huge('4GiB_stream'), ('close 1009',), HUGE_LIMIT_SECONDS)
    await asyncio.sleep(0.5)
    after = status_kib(pid, 'VmRSS') or 0
    report['huge_alone_rss_delta_kib'] = after - before

    lag: list[float] = []
    runs = args.only
    good = []
    if 'good' in runs:
        good = [asyncio.create_task(good_stream(i, args, audio, results, lag)) for i in range(GOOD_STREAMS)]
        good += [asyncio.create_task(good_session(i, args, audio, results, lag)) for i in range(GOOD_SESSIONS)]
    await asyncio.sleep(BAD_START_SECONDS)

    window = max(5.0, args.good_seconds - 8)
    tasks = []
    if 'garbage' in runs:
        tasks.append(asyncio.create_task(bad.garbage(window)))
    for n in range(SLOW_READERS if 'slow' in runs else 0):
        tasks.append(asyncio.create_task(bad.slow_reader(n)))
    for n in range(IDLE_SOCKETS if 'idle' in runs else 0):
        tasks.append(asyncio.create_task(bad.guarded('idle', 'idle', bad.idle(n), ('-',), None)))

    async def later(delay, coro):
        await asyncio.sleep(delay)
        await coro

    if 'flood' in runs:
        tasks.append(asyncio.create_task(later(3, bad.flood(min(FLOOD_SECONDS, window / 2)))))
    for n in range(MIDFRAME_CLIENTS if 'midframe' in runs else 0):
        tasks.append(asyncio.create_task(later(window * n / MIDFRAME_CLIENTS, bad.guarded(
            'midframe', 'midframe', bad.midframe(n), ('sent',), None))))
    for kind in ('4GiB_stream', '2^63-1_stream', '4GiB_session') if 'huge' in runs else ():
        tasks.append(asyncio.create_task(later(window / 2, bad.guarded(
            'huge', kind, bad.huge(kind), ('close 1009',), HUGE_LIMIT_SECONDS))))

    good_recs = await asyncio.gather(*good)
    await asyncio.gather(*tasks)

    # Leak checks: every stream over, descriptors back.
    t_settle = time.monotonic()
    streams = fds = None
    while time.monotonic() - t_settle < SETTLE_SECONDS + args.session_resume:
        streams, fds = open_streams(args.target), fd_count(pid)
        if streams == 0 and fds is not None and base_fds is not None and fds <= base_fds + FD_SLACK:
            break
        await asyncio.sleep(0.5)
    sampler.stop.set()
    sampler.join()
    hwm = status_kib(pid, 'VmHWM')
    alive = open_streams(args.target) is not None

    # Good streams: decode everything.
    good_report = []
    for rec in good_recs:
        why = await asyncio.to_thread(check_good, rec)
        good_report.append({'name': rec['name'], 'ok': not why, 'problems': why,
                            'samples': rec.get('bytes', 0) // (rec['channels'] * 2)})
    bound, derivation = rss_bound(base_rss, args)
    peak_sample = max((s for _, s in sampler.samples), default=0)
    report.update({
        'good': good_report,
        'good_send_lag_max_ms': round(max(lag, default=0) * 1000),
        'attempts': results.attempts,
        'flood': bad.flood_report,
        'rss_peak_sampled_kib': peak_sample,
        'rss_hwm_kib': hwm,
        'rss_bound_kib': bound,
        'rss_bound_derivation': derivation,
        'rss_samples': len(sampler.samples),
        'open_streams_after': streams,
        'fds_after': fds,
        'server_alive_after': alive,
    })
    return report


def summarize(report: dict, args, wall: float) -> bool:
    """Prints the figures; True when every check passed."""
    ok = True
    lines = []

    def check(cond: bool, text: str):
        nonlocal ok
        ok &= bool(cond)
        lines.append(('ok   ' if cond else 'FAIL ') + text)

    good = report['good']
    bad_good = [g for g in good if not g['ok']]
    total_s = sum(g['samples'] for g in good)
    check(not bad_good, f'good streams: {len(good) - len(bad_good)}/{len(good)} exact '
          f'({GOOD_STREAMS} /stream + {GOOD_SESSIONS} recorded sessions, live FLAC and stored files '
          f'decoded by flac -d, {total_s} sample frames; client send lag max {report["good_send_lag_max_ms"]} ms)')
    for g in bad_good:
        lines.append(f'       {g["name"]}: {"; ".join(g["problems"])}')

    by_class = collections.OrderedDict()
    for a in report['attempts']:
        by_class.setdefault((a['class'], a['kind']), []).append(a)
    lines.append('')
    lines.append(f'{"class":9} {"kind":22} {"n":>4}  {"cut-off s min/med/max":>22}  {"limit":>6}  outcomes')
    for (cls, kind), atts in by_class.items():
        secs = [a['seconds'] for a in atts if a['seconds'] is not None]
        span = (f'{min(secs):.2f}/{statistics.median(secs):.2f}/{max(secs):.2f}' if secs else '-')
        limit = atts[0]['limit_s']
        outs = collections.Counter(a['outcome'] for a in atts)
        failed = [a for a in atts if not a['ok']]
        mark = 'ok  ' if not failed else 'FAIL'
        ok &= not failed
        lim = f'{limit:.0f} s' if limit else '-'
        lines.append(f'{mark} {cls:9} {kind:22} {len(atts):4}  {span:>22}  {lim:>6}  '
                     + ', '.join(f'{o} x{c}' for o, c in outs.most_common()))
        for a in failed[:3]:
            lines.append(f'       expected {" | ".join(a["expect"])} within {lim}: got {a["outcome"]} '
                         f'after {a["seconds"]} s')
    counts = collections.Counter(a['class'] for a in report['attempts'])
    lines.append('')
    expected_counts = {'garbage': GARBAGE_CONNECTIONS, 'slow': SLOW_READERS, 'idle': IDLE_SOCKETS,
                       'midframe': MIDFRAME_CLIENTS, 'huge': 4, 'flood': 1}
    check(all(counts[c] == n for c, n in expected_counts.items()),
          'every bad client ran: ' + ', '.join(f'{c} {counts[c]}/{n}' for c, n in expected_counts.items()))
    fl = report['flood']
    if fl:
        lines.append(f'     flood: {fl["sent_mib"]} MiB in {fl["flood_s"]} s, {fl["audio_seconds"]} s of audio '
                     f'({fl["x_realtime"]}x real time), output exact: {not fl["problems"]}')
    lines.append(f'     4 GiB claim alone: RSS moved {report["huge_alone_rss_delta_kib"]} KiB')
    check(report['huge_alone_rss_delta_kib'] <= HUGE_RSS_LIMIT_KIB,
          f'4 GiB claim costs no memory (<= {HUGE_RSS_LIMIT_KIB} KiB)')
    hwm = report['rss_hwm_kib'] or report['rss_peak_sampled_kib']
    check(hwm <= report['rss_bound_kib'],
          f'server RSS peak {hwm / 1024:.1f} MiB (VmHWM; sampled peak '
          f'{report["rss_peak_sampled_kib"] / 1024:.1f} MiB over {report["rss_samples"]} samples) '
          f'<= bound {report["rss_bound_kib"] / 1024:.1f} MiB')
    lines.extend('       ' + d for d in report['rss_bound_derivation'])
    check(report['open_streams_after'] == 0,
          f'no stream left open afterwards (GET /admin/drain: {report["open_streams_after"]})')
    check(report['fds_after'] is not None and report['baseline_fds'] is not None
          and report['fds_after'] <= report['baseline_fds'] + FD_SLACK,
          f'server descriptors back: {report["baseline_fds"]} before, {report["fds_after"]} after')
    check(report['server_alive_after'], 'server still answering')
    lines.append(f'     wall time {wall:.1f} s; audio {"SYNTHETIC" if report["synthetic_audio"] else "real"}')
    print('\n'.join(lines))
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--target', required=True, help='HOST:PORT of the server')
    ap.add_argument('--pid', type=int, required=True, help="the server's PID (RSS, descriptors)")
    ap.add_argument('--work-dir', required=True)
    ap.add_argument('--seconds', type=float, default=60, help='length of the run (default 60)')
    ap.add_argument('--out', help='write the full result as JSON here')
    ap.add_argument('--audio-dir', default='target/bench-audio')
    # The limits the server was started with (loadtest/fault.sh passes them).
    ap.add_argument('--connection-timeout', type=float, default=30)
    ap.add_argument('--stall', type=float, default=10)
    ap.add_argument('--header-timeout', type=float, default=5,
                    help="the server's deadline for a request head, s (actix-web's default: 5)")
    ap.add_argument('--session-resume', type=float, default=60)
    ap.add_argument('--blocks-in-flight', type=int, default=4)
    ap.add_argument('--only', default=','.join(CLASSES),
                    help='run only these classes, comma-separated (to investigate one; the '
                         'counts and the RSS bound still assume all): ' + ','.join(CLASSES))
    args = ap.parse_args()
    args.only = set(args.only.split(','))
    if not args.only <= set(CLASSES):
        ap.error(f'--only takes {",".join(CLASSES)}')
    args.good_seconds = max(MIN_GOOD_SECONDS, args.seconds - GOOD_MARGIN_SECONDS)
    os.makedirs(args.work_dir, exist_ok=True)
    t0 = time.monotonic()

    async def bounded():
        return await asyncio.wait_for(run(args), args.seconds + 60)
    try:
        report = asyncio.run(bounded())
    except TimeoutError:
        print(f'FAIL the run did not finish within {args.seconds + 60:.0f} s')
        return 1
    wall = time.monotonic() - t0
    report['wall_seconds'] = round(wall, 1)
    ok = summarize(report, args, wall)
    report['ok'] = ok
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(report, f, indent=1)
    print(f'fault: {"PASS" if ok else "FAIL"}')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
