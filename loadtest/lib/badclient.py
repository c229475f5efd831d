#!/usr/bin/env python3
"""Misbehaving WebSocket clients that k6 cannot play: a client that never reads.

    badclient.py slow-reader --target HOST:PORT --clients N --start-after S
                 --duration S --out RESULT.json [--pcm FILE]

k6 reads every socket it opens, so it cannot leave the server's output unread.
This client speaks WebSocket over a raw socket (handshake, masked frames) with
a small receive buffer, sends a streaming WAV (PCM from $PCM_MUSIC, looped) as
fast as the server takes it, and never reads. The server's output buffers
fill, it stops reading input (its backpressure), and after
FLACSTREAM_OUTBOUND_STALL_SECONDS (10 s) it must cut the client off with
`slow_reader`, close 1008, and shut the connection down (docs/protocol.md,
section 5). Once the connection
is cut (the peer half-closes or resets it) the client reads what is left to
find the error message and the close code. Each client reconnects and does it
again until the duration is over, so the server sees stalled readers all run.

RESULT.json: every attempt with its outcome, a summary, and `ok`: every attempt
that had time to be cut off was cut off within the stall time plus
SLACK_SECONDS of its input stopping (the slow_reader error and close 1008 are
counted when they get through; a client whose buffers are full cannot take
them). Outcomes: `cut` (the server
closed the connection; `error` and `close_code` say what it sent last, if it
got through), `drained_not_closed` (the server started reading the input again
after the stall but kept the connection open for SLACK_SECONDS more: it gave up
on the output without closing), `not_cut`.
"""
import argparse
import base64
import json
import os
import select
import socket
import struct
import threading
import time

# The server's default outbound stall time, in seconds (FLACSTREAM_OUTBOUND_STALL_SECONDS).
DEFAULT_STALL_SECONDS = 10
# Extra time allowed, beyond the stall time, from the moment the server stopped
# taking input to the cut, in seconds: its buffers fill a little after that.
SLACK_SECONDS = 10
# Receive buffer of the never-reading socket, in bytes: small, so the stall shows soon.
RCVBUF_BYTES = 8192
# Bytes of PCM per WebSocket message.
MESSAGE_BYTES = 64 * 1024
# The server counts as no longer reading once a send has made no progress this long, in seconds.
BLOCKED_SECONDS = 1.0


def streaming_wav_header(rate=44100, channels=2):
    return (b'RIFF' + struct.pack('<I', 0xFFFFFFFF) + b'WAVEfmt ' +
            struct.pack('<IHHIIHH', 16, 1, channels, rate, rate * channels * 2, channels * 2, 16) +
            b'data' + struct.pack('<I', 0xFFFFFFFF))


def frame(opcode, payload):
    """A masked client frame."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack('>H', n)
    else:
        head += bytes([0x80 | 127]) + struct.pack('>Q', n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) if n < 4096 else _mask_fast(payload, mask)
    return head + mask + masked


def _mask_fast(payload, mask):
    n = len(payload)
    m = int.from_bytes(mask * (n // 4 + 1), 'little') & ((1 << (8 * n)) - 1)
    return (int.from_bytes(payload, 'little') ^ m).to_bytes(n, 'little')


def handshake(target, path):
    host, port = target.rsplit(':', 1)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
    s.settimeout(10)
    s.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f'GET {path} HTTP/1.1\r\nHost: {target}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
               f'Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n').encode())
    resp = b''
    while b'\r\n\r\n' not in resp:
        chunk = s.recv(1)  # byte by byte: nothing past the handshake is read here
        if not chunk:
            raise ConnectionError('closed during handshake')
        resp += chunk
    status = resp.split(b'\r\n', 1)[0]
    if b' 101 ' not in status:
        raise ConnectionError(status.decode(errors='replace'))
    s.setblocking(False)
    return s


def parse_server_frames(data):
    """(error code or None, close code or None, binary message count) from server frames."""
    i, error, close, binary = 0, None, None, 0
    while i + 2 <= len(data):
        op, n = data[i] & 0x0F, data[i + 1] & 0x7F
        i += 2
        if n == 126:
            n = struct.unpack('>H', data[i:i + 2])[0]
            i += 2
        elif n == 127:
            n = struct.unpack('>Q', data[i:i + 8])[0]
            i += 8
        payload = data[i:i + n]
        i += n
        if op == 2:
            binary += 1
        elif op == 1:
            try:
                m = json.loads(payload)
                if m.get('type') == 'error':
                    error = m.get('code')
            except ValueError:
                pass
        elif op == 8 and len(payload) >= 2:
            close = struct.unpack('>H', payload[:2])[0]
    return error, close, binary


def never_read(target, pcm, deadline, stall_s):
    """One connection that sends and never reads; returns its outcome."""
    t_start = time.time()
    try:
        s = handshake(target, '/stream')
    except (OSError, ConnectionError) as e:
        return {'outcome': 'connect_failed', 'detail': str(e)}
    pending = frame(2, streaming_wav_header())
    pos, sent, last_progress, blocked_at, resumed_at = 0, 0, time.time(), None, None
    poller = select.poll()
    hangup = select.POLLRDHUP | select.POLLHUP | select.POLLERR
    poller.register(s, select.POLLOUT | hangup)
    cut_at = None
    while time.time() < deadline + stall_s + SLACK_SECONDS:
        events = poller.poll(200)
        ev = events[0][1] if events else 0
        if ev & hangup:
            cut_at = time.time()
            break
        if ev & select.POLLOUT:
            if not pending:
                chunk = pcm[pos:pos + MESSAGE_BYTES]
                pos = (pos + MESSAGE_BYTES) % (len(pcm) - MESSAGE_BYTES)
                pending = frame(2, chunk)
            try:
                n = s.send(pending)
            except (BrokenPipeError, ConnectionResetError):
                cut_at = time.time()
                break
            pending = pending[n:]
            sent += n
            now = time.time()
            if blocked_at is not None and resumed_at is None:
                # The server reads again after a stall: it gave up on the
                # output but keeps the connection and swallows the input.
                resumed_at = now
            last_progress = now
            if resumed_at is not None and now - resumed_at > SLACK_SECONDS:
                break
        elif blocked_at is None and time.time() - last_progress > BLOCKED_SECONDS:
            blocked_at = last_progress
    result = {'sent_bytes': sent, 'seconds_to_block': round(blocked_at - t_start, 1) if blocked_at else None}
    if resumed_at is not None:
        result['input_read_again_after_block_s'] = round(resumed_at - blocked_at, 1)
    if cut_at is None:
        result['outcome'] = 'drained_not_closed' if resumed_at is not None else 'not_cut'
        cut_at = time.time()
    else:
        result['outcome'] = 'cut'
    # Now read what is left: the error message and the close frame, if they got through.
    s.setblocking(True)
    s.settimeout(5)
    data = b''
    try:
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                result['read_end'] = 'eof'
                break
            data += chunk
    except socket.timeout:
        result['read_end'] = 'timeout'
    except OSError:
        result['read_end'] = 'reset'
    s.close()
    error, close, binary = parse_server_frames(data)
    result.update({'error': error, 'close_code': close, 'frames_unread': binary,
                   'cut_after_block_s': round(cut_at - blocked_at, 1) if blocked_at else None,
                   'cut_after_start_s': round(cut_at - t_start, 1)})
    return result


def expected(r, stall_s):
    """The documented outcome (docs/protocol.md, `slow_reader`): the connection
    is cut within the stall time (plus slack) of the client's input stopping.
    The slow_reader error and close 1008 are queued first but need room in the
    client's full buffers to arrive, so they are counted, not required."""
    return (r['outcome'] == 'cut'
            and (r.get('cut_after_block_s') is None or r['cut_after_block_s'] <= stall_s + SLACK_SECONDS))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('mode', choices=['slow-reader'])
    ap.add_argument('--target', required=True)
    ap.add_argument('--clients', type=int, default=10)
    ap.add_argument('--start-after', type=float, default=5)
    ap.add_argument('--duration', type=float, default=30)
    ap.add_argument('--stall-seconds', type=float,
                    default=float(os.environ.get('FLACSTREAM_OUTBOUND_STALL_SECONDS', DEFAULT_STALL_SECONDS)))
    ap.add_argument('--pcm', default=os.environ.get('PCM_MUSIC'))
    ap.add_argument('--out', required=True)
    a = ap.parse_args()
    pcm = open(a.pcm, 'rb').read() if a.pcm else os.urandom(1 << 20)
    time.sleep(a.start_after)
    deadline = time.time() + a.duration
    results, lock = [], threading.Lock()

    def client(i):
        # A new attempt only if it can still be cut before the deadline.
        while time.time() + a.stall_seconds + SLACK_SECONDS < deadline or not any(r['client'] == i for r in results):
            r = never_read(a.target, pcm, deadline, a.stall_seconds)
            r['client'] = i
            with lock:
                results.append(r)
            print(json.dumps(r), flush=True)
            if r['outcome'] == 'connect_failed':
                time.sleep(1)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = [r for r in results if expected(r, a.stall_seconds)]
    summary = {'attempts': len(results), 'cut_in_time': len(ok),
               'slow_reader_1008_received': sum(1 for r in results
                                                if r.get('error') == 'slow_reader' and r.get('close_code') == 1008),
               'other': sorted({f"{r['outcome']}:{r.get('error')}:{r.get('close_code')}"
                                for r in results if not expected(r, a.stall_seconds)})}
    with open(a.out, 'w') as f:
        json.dump({'mode': a.mode, 'ok': len(ok) == len(results) and len(results) > 0,
                   'summary': summary, 'attempts': results}, f, indent=2)


if __name__ == '__main__':
    main()
