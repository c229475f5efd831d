#!/usr/bin/env python3
"""Cuts a short excerpt of a WAV for the load tests, as raw s16le PCM or as a WAV.

    excerpt.py SRC.wav OUT SECONDS --offset S --rate R --channels C [--wav]

The scenarios loop over the excerpt, and k6's open() copies it into every VU,
so it stays short (a few hundred KB). If SRC is missing, a synthetic excerpt
is written instead (pink-ish noise under a wandering two-tone melody: not a
pure sine, which FLAC would compress unrealistically well) so the load tests
still run on a machine without the rendered audio; the output says so.
"""
import argparse
import math
import random
import struct
import sys
import wave


def synthetic(seconds, rate, channels):
    rnd = random.Random(5)
    frames = int(seconds * rate)
    out = bytearray()
    noise = [0.0] * channels
    for i in range(frames):
        t = i / rate
        # A note change every 250 ms keeps the predictor from settling.
        note = 220.0 * 2 ** (((i // (rate // 4)) * 7 % 24) / 12)
        tone = 0.3 * math.sin(2 * math.pi * note * t) + 0.1 * math.sin(2 * math.pi * 1.5 * note * t)
        for c in range(channels):
            noise[c] = 0.95 * noise[c] + 0.05 * rnd.uniform(-1, 1)
            v = tone + 2.0 * noise[c] + 0.02 * rnd.uniform(-1, 1)
            out += struct.pack('<h', max(-32768, min(32767, int(v * 20000))))
    return bytes(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('src')
    ap.add_argument('out')
    ap.add_argument('seconds', type=float)
    ap.add_argument('--offset', type=float, default=0.0)
    ap.add_argument('--rate', type=int, required=True)
    ap.add_argument('--channels', type=int, required=True)
    ap.add_argument('--wav', action='store_true', help='write a WAV (header with sizes) instead of raw PCM')
    a = ap.parse_args()
    try:
        with wave.open(a.src, 'rb') as w:
            if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (a.rate, a.channels, 2):
                sys.exit(f'{a.src}: expected {a.rate} Hz, {a.channels} ch, 16-bit')
            start = min(int(a.offset * a.rate), max(0, w.getnframes() - int(a.seconds * a.rate)))
            w.setpos(start)
            pcm = w.readframes(int(a.seconds * a.rate))
        origin = f'{a.src} from {start / a.rate:.1f} s'
    except FileNotFoundError:
        pcm = synthetic(a.seconds, a.rate, a.channels)
        origin = 'SYNTHETIC noise and tones (real audio missing)'
    if a.wav:
        with wave.open(a.out, 'wb') as w:
            w.setnchannels(a.channels)
            w.setsampwidth(2)
            w.setframerate(a.rate)
            w.writeframes(pcm)
    else:
        with open(a.out, 'wb') as f:
            f.write(pcm)
    print(f'excerpt: {a.out}: {len(pcm) // (2 * a.channels) / a.rate:.1f} s of {origin}')


if __name__ == '__main__':
    main()
