#!/usr/bin/env python3
"""The two things k6 cannot do in the rehearsal, done beside it through nginx
(deploy/local/run.sh starts it next to each k6 phase):

* `abrupt` (spread phase): producers that drop their TCP connection without a
  close frame, mid-stream and mid-message (k6 can only close a WebSocket
  cleanly), then resume through nginx by id and finish the session;
* `drain` (restart phase): producers and /stream streams that run until a
  drain ends them and read the exact close code (k6's close event has no
  code: 1000 and 1001 look alike to it).

Every client writes one record in deploy/local/rehearsal.js's format (with
"witness": true), one JSON line each to --out, so deploy/local/check.py
verifies its recording, routing and acknowledgements like the k6 clients'.

    witness.py abrupt|drain --target HOST:PORT --pcm SPEECH.pcm --out FILE
               [--sessions N] [--streams N] [--seconds S] [--music MUSIC.pcm]

Needs the `websockets` package (as tests/e2e/ does); standard library otherwise.
"""
import argparse
import asyncio
import contextlib
import hashlib
import json
import random
import struct
import time
import uuid

import websockets
from websockets.exceptions import ConnectionClosed, WebSocketException

CHUNK_MS = 20
RATE, CHANNELS = 16000, 1
MUSIC_RATE, MUSIC_CHANNELS = 44100, 2
OPEN_TIMEOUT_SECONDS = 15
DONE_TIMEOUT_SECONDS = 30
DRAIN_CLOSE_CODES = (1001, 1012)


class Audio:
    """The excerpt looped from a random frame-aligned offset, as in rehearsal.js."""

    def __init__(self, pcm, channels):
        self.pcm = pcm
        self.frame = 2 * channels
        self.offset = random.randrange(len(pcm) // self.frame) * self.frame

    def slice(self, start, count):
        n = len(self.pcm)
        p = (self.offset + start * self.frame) % n
        out = bytearray()
        left = count * self.frame
        while left:
            take = min(left, n - p)
            out += self.pcm[p:p + take]
            left -= take
            p = (p + take) % n
        return bytes(out)

    def md5(self, start, end):
        return hashlib.md5(self.slice(start, end - start)).hexdigest()


def segment(session_id):
    return {'session_id': session_id, 'start_sample': 0, 'open_failures': [], 'resumes': [],
            'acked_received': 0, 'acked_durable': 0, 'done': None, 'close_code': None, 'end': None,
            'after_end': []}


async def stop(task):
    """Cancels a reader and waits for it, so that the next one reads alone."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def read_until_done(ws, seg):
    """Reads acks until `done` and the close; returns the done (or None)."""
    try:
        async for msg in ws:
            if isinstance(msg, bytes):
                continue
            m = json.loads(msg)
            if m['type'] == 'ack':
                seg['acked_received'] = max(seg['acked_received'], m['samples_received'])
                seg['acked_durable'] = max(seg['acked_durable'], m['samples_durable'])
            elif m['type'] == 'done':
                seg['done'] = m
            elif m['type'] == 'error':
                seg.setdefault('errors', []).append(m['code'])
    except ConnectionClosed:
        pass
    seg['close_code'] = ws.close_code
    return seg['done']


async def abrupt_producer(i, args, pcm):
    """Streams, drops the TCP connection mid-message, resumes by id, finishes."""
    audio = Audio(pcm, CHANNELS)
    chunk = RATE * CHUNK_MS // 1000
    total = int(args.seconds * 1000 / CHUNK_MS) * chunk
    leave_at = int(total * random.uniform(0.3, 0.7))
    sid = str(uuid.uuid4())
    seg = segment(sid)
    rec = {'kind': 'producer', 'phase': 'spread', 'witness': True, 'index': i, 'rate': RATE,
           'channels': CHANNELS, 'offset_bytes': audio.offset, 'total_samples': total,
           'segments': [seg], 'failures': [], 'outcome': None}
    base = f'ws://{args.target}/api/ws/audio'
    url = f'{base}?session_id={sid}&format=s16le&sample_rate={RATE}&channels={CHANNELS}&acks=true&user_id=witness'
    t0 = time.monotonic()
    pos = 0

    async def pump(ws, until):
        nonlocal pos
        reader = asyncio.create_task(read_acks(ws))
        while pos < until:
            due = min(until, (int((time.monotonic() - t0) * 1000 / CHUNK_MS) + 1) * chunk)
            while pos < due:
                n = min(chunk, due - pos)
                await ws.send(audio.slice(pos, n))
                pos += n
            await asyncio.sleep(CHUNK_MS / 1000)
        return reader

    async def read_acks(ws):
        try:
            async for msg in ws:
                if isinstance(msg, str):
                    m = json.loads(msg)
                    if m['type'] == 'ack':
                        seg['acked_received'] = max(seg['acked_received'], m['samples_received'])
                        seg['acked_durable'] = max(seg['acked_durable'], m['samples_durable'])
                    elif m['type'] == 'done':
                        seg['done'] = m
                        return
        except ConnectionClosed:
            return

    try:
        ws = await websockets.connect(url, open_timeout=OPEN_TIMEOUT_SECONDS, max_size=None, proxy=None)
        hello = json.loads(await ws.recv())
        if hello.get('session_id') != sid:
            rec['failures'].append(f'asked for {sid}, got {hello.get("session_id")}')
        reader = await pump(ws, leave_at)
        # Half a chunk and one odd byte, then the TCP connection goes: no close frame.
        await ws.send(audio.slice(pos, chunk // 2) + b'\x01')
        sent = pos + chunk // 2
        ws.transport.abort()
        await stop(reader)
        seg['left_at'] = sent
        await asyncio.sleep(0.3)
        ws = await websockets.connect(f'{base}/{sid}?acks=true', open_timeout=OPEN_TIMEOUT_SECONDS, max_size=None, proxy=None)
        hello = json.loads(await ws.recv())
        seg['resumes'].append({'left_at': sent, 'resumed': hello.get('resumed'),
                               'samples_received': hello.get('samples_received'),
                               'samples_durable': hello.get('samples_durable')})
        if hello.get('resumed') is not True:
            rec['failures'].append(f'{sid}: resume says resumed={hello.get("resumed")}')
        if hello['samples_received'] > sent:
            rec['failures'].append(f'{sid}: session holds {hello["samples_received"]} samples, {sent} were sent')
        seg['acked_received'] = max(seg['acked_received'], hello['samples_received'])
        seg['acked_durable'] = max(seg['acked_durable'], hello['samples_durable'])
        pos = hello['samples_received']
        reader = await pump(ws, total)
        await stop(reader)
        await ws.send(json.dumps({'type': 'control', 'action': 'close_session'}))
        await asyncio.wait_for(read_until_done(ws, seg), DONE_TIMEOUT_SECONDS)
    except (OSError, asyncio.TimeoutError, WebSocketException) as e:
        rec['failures'].append(f'{sid}: {type(e).__name__}: {e}')
    d = seg['done']
    if d is None:
        seg['end'] = 'bare_disconnect'
        rec['failures'].append(f'{sid}: no done')
    else:
        seg['end'] = 'completed' if d['reason'] == 'closed' else d['reason']
        if d['samples'] != total or d['md5'] != audio.md5(0, total):
            rec['failures'].append(f'{sid}: done says {d["samples"]} samples (md5 {d["md5"]}), sent {total}')
        if seg['close_code'] != 1000:
            rec['failures'].append(f'{sid}: closed with {seg["close_code"]}')
    rec['outcome'] = 'completed' if not rec['failures'] else 'incomplete'
    return rec


async def drained_producer(i, args, pcm):
    """Streams until a drain ends the session; records the done and the close code."""
    audio = Audio(pcm, CHANNELS)
    chunk = RATE * CHUNK_MS // 1000
    sid = str(uuid.uuid4())
    seg = segment(sid)
    rec = {'kind': 'producer', 'phase': 'restart', 'witness': True, 'index': i, 'rate': RATE,
           'channels': CHANNELS, 'offset_bytes': audio.offset, 'total_samples': None,
           'segments': [seg], 'failures': [], 'outcome': None}
    url = (f'ws://{args.target}/api/ws/audio?session_id={sid}&format=s16le&sample_rate={RATE}'
           f'&channels={CHANNELS}&acks=true&user_id=witness')
    pos = 0
    try:
        ws = await websockets.connect(url, open_timeout=OPEN_TIMEOUT_SECONDS, max_size=None, proxy=None)
        await ws.recv()
        reader = asyncio.create_task(read_until_done(ws, seg))
        t0 = time.monotonic()
        deadline = t0 + args.seconds
        while not reader.done() and time.monotonic() < deadline:
            due = (int((time.monotonic() - t0) * 1000 / CHUNK_MS) + 1) * chunk
            try:
                while pos < due:
                    await ws.send(audio.slice(pos, chunk))
                    pos += chunk
            except ConnectionClosed:
                break
            await asyncio.sleep(CHUNK_MS / 1000)
        if not reader.done():
            rec['failures'].append(f'{sid}: not drained within {args.seconds} s')
            await ws.send(json.dumps({'type': 'control', 'action': 'close_session'}))
        await asyncio.wait_for(reader, DONE_TIMEOUT_SECONDS)
    except (OSError, asyncio.TimeoutError, WebSocketException) as e:
        rec['failures'].append(f'{sid}: {type(e).__name__}: {e}')
    d = seg['done']
    if d is None:
        seg['end'] = 'bare_disconnect'
        rec['failures'].append(f'{sid}: no done (close {seg["close_code"]})')
        rec['total_samples'] = seg['acked_received']
    else:
        seg['end'] = 'going_away' if d['reason'] == 'going_away' else 'completed'
        rec['total_samples'] = d['samples']
        if d['samples'] > pos or d['md5'] != audio.md5(0, d['samples']):
            rec['failures'].append(f'{sid}: done says {d["samples"]} samples (md5 {d["md5"]}), sent {pos}')
        if d['reason'] == 'going_away' and seg['close_code'] not in DRAIN_CLOSE_CODES:
            rec['failures'].append(f'{sid}: going_away with close {seg["close_code"]}')
    rec['outcome'] = seg['end']
    return rec


def wav_header(rate, channels):
    return (b'RIFF' + struct.pack('<I', 0xFFFFFFFF) + b'WAVEfmt ' +
            struct.pack('<IHHIIHH', 16, 1, channels, rate, rate * channels * 2, channels * 2, 16) +
            b'data' + struct.pack('<I', 0xFFFFFFFF))


async def drained_stream(i, args, pcm):
    """A /stream conversion that runs until a drain ends it."""
    audio = Audio(pcm, MUSIC_CHANNELS)
    chunk = MUSIC_RATE * CHUNK_MS // 1000
    rec = {'kind': 'stream', 'phase': 'restart', 'witness': True, 'index': i, 'rate': MUSIC_RATE,
           'channels': MUSIC_CHANNELS, 'offset_bytes': audio.offset, 'failures': [], 'outcome': None}
    pos = 0
    done = None
    try:
        ws = await websockets.connect(f'ws://{args.target}/stream', open_timeout=OPEN_TIMEOUT_SECONDS, max_size=None, proxy=None)

        async def read():
            nonlocal done
            try:
                async for msg in ws:
                    if isinstance(msg, str) and json.loads(msg)['type'] == 'done':
                        done = json.loads(msg)
            except ConnectionClosed:
                pass

        reader = asyncio.create_task(read())
        await ws.send(wav_header(MUSIC_RATE, MUSIC_CHANNELS))
        t0 = time.monotonic()
        while not reader.done() and time.monotonic() < t0 + args.seconds:
            due = (int((time.monotonic() - t0) * 1000 / CHUNK_MS) + 1) * chunk
            try:
                while pos < due:
                    await ws.send(audio.slice(pos, chunk))
                    pos += chunk
            except ConnectionClosed:
                break
            await asyncio.sleep(CHUNK_MS / 1000)
        if not reader.done():
            rec['failures'].append(f'not drained within {args.seconds} s')
            await ws.send(json.dumps({'type': 'end'}))
        await asyncio.wait_for(reader, DONE_TIMEOUT_SECONDS)
        rec['close_code'] = ws.close_code
    except (OSError, asyncio.TimeoutError, WebSocketException) as e:
        rec['failures'].append(f'{type(e).__name__}: {e}')
    rec['done'] = done
    rec['sent_samples'] = pos
    if done is None:
        rec['outcome'] = 'bare_disconnect'
        rec['failures'].append(f'no done (close {rec.get("close_code")})')
    else:
        rec['session_id'] = done['session_id']
        rec['outcome'] = 'going_away' if done['reason'] == 'going_away' else 'completed'
        if done['samples'] > pos or done['md5'] != audio.md5(0, done['samples']):
            rec['failures'].append(f'done says {done["samples"]} samples (md5 {done["md5"]}), sent {pos}')
        if done['reason'] == 'going_away' and rec.get('close_code') not in DRAIN_CLOSE_CODES:
            rec['failures'].append(f'going_away with close {rec.get("close_code")}')
    return rec


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('mode', choices=['abrupt', 'drain'])
    ap.add_argument('--target', required=True)
    ap.add_argument('--pcm', required=True, help='16 kHz mono s16le excerpt')
    ap.add_argument('--music', help='44.1 kHz stereo s16le excerpt (drain: /stream streams)')
    ap.add_argument('--sessions', type=int, default=6)
    ap.add_argument('--streams', type=int, default=3)
    ap.add_argument('--seconds', type=float, default=12,
                    help='abrupt: each stream\'s length; drain: the longest a stream waits for its drain')
    ap.add_argument('--out', required=True)
    args = ap.parse_args()
    pcm = open(args.pcm, 'rb').read()
    if args.mode == 'abrupt':
        clients = [abrupt_producer(i, args, pcm) for i in range(args.sessions)]
    else:
        music = open(args.music, 'rb').read()
        clients = [drained_producer(i, args, pcm) for i in range(args.sessions)]
        clients += [drained_stream(i, args, music) for i in range(args.streams)]
    records = await asyncio.gather(*clients)
    with open(args.out, 'w') as f:
        for r in records:
            f.write('REHEARSAL ' + json.dumps(r) + '\n')


if __name__ == '__main__':
    asyncio.run(main())
