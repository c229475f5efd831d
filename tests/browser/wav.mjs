// Small WAV helpers for the browser test: deterministic test signals, a
// writer for integer and float PCM, and a reader that finds the `data` chunk.

import { writeFileSync } from 'node:fs';

/** A deterministic pseudo-random generator (mulberry32), values in [0, 1). */
export function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function clamp16(x) {
  return Math.max(-32768, Math.min(32767, Math.round(x)));
}

/**
 * Interleaved 16-bit samples: channel 0 a 440 Hz tone with noise, channel 1
 * a rising sweep with noise, a short full-scale stretch on every channel, and
 * a quiet tail.
 */
export function testSignal({ rate, channels, seconds, seed = 1 }) {
  const frames = Math.round(rate * seconds);
  const rnd = random(seed);
  const out = new Int16Array(frames * channels);
  let sweepPhase = 0;
  for (let i = 0; i < frames; i++) {
    const t = i / rate;
    const sweepHz = 100 + (4000 * i) / frames;
    sweepPhase += (2 * Math.PI * sweepHz) / rate;
    for (let c = 0; c < channels; c++) {
      const noise = (rnd() - 0.5) * 2000;
      let x = c % 2 === 0
        ? 12000 * Math.sin(2 * Math.PI * (440 + 110 * c) * t) + noise
        : 9000 * Math.sin(sweepPhase) + noise;
      if (i >= rate && i < rate + 64) x = (i & 1) ? 32767 : -32768; // extremes
      if (i > frames - rate / 4) x *= 0.01; // quiet tail
      out[i * channels + c] = clamp16(x);
    }
  }
  return { frames, samples: out };
}

/** A mono "microphone": a 330 Hz tone at about -12 dBFS with some noise. */
export function micSignal({ rate, seconds, seed = 7 }) {
  const frames = Math.round(rate * seconds);
  const rnd = random(seed);
  const out = new Int16Array(frames);
  for (let i = 0; i < frames; i++) {
    const t = i / rate;
    out[i] = clamp16(8000 * Math.sin(2 * Math.PI * 330 * t) + (rnd() - 0.5) * 3000);
  }
  return { frames, samples: out };
}

function header(format, rate, channels, bits, dataBytes) {
  const align = (channels * bits) / 8;
  const h = Buffer.alloc(44);
  h.write('RIFF', 0, 'ascii');
  h.writeUInt32LE(36 + dataBytes, 4);
  h.write('WAVE', 8, 'ascii');
  h.write('fmt ', 12, 'ascii');
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(format, 20);
  h.writeUInt16LE(channels, 22);
  h.writeUInt32LE(rate, 24);
  h.writeUInt32LE(rate * align, 28);
  h.writeUInt16LE(align, 32);
  h.writeUInt16LE(bits, 34);
  h.write('data', 36, 'ascii');
  h.writeUInt32LE(dataBytes, 40);
  return h;
}

/** Writes 16-bit integer PCM; returns the data bytes. */
export function writeWav16(path, { rate, channels, samples }) {
  const data = Buffer.alloc(samples.length * 2);
  for (let i = 0; i < samples.length; i++) data.writeInt16LE(samples[i], i * 2);
  writeFileSync(path, Buffer.concat([header(1, rate, channels, 16, data.length), data]));
  return data;
}

/** Writes 32-bit IEEE float PCM (which the server refuses). */
export function writeWavFloat(path, { rate, channels, frames }) {
  const data = Buffer.alloc(frames * channels * 4);
  for (let i = 0; i < frames * channels; i++) data.writeFloatLE(Math.sin(i / 10) * 0.5, i * 4);
  writeFileSync(path, Buffer.concat([header(3, rate, channels, 32, data.length), data]));
}

/** Reads a WAV: its format and its `data` chunk. */
export function readWav(buffer) {
  if (buffer.toString('ascii', 0, 4) !== 'RIFF' || buffer.toString('ascii', 8, 12) !== 'WAVE') {
    throw new Error('not a RIFF/WAVE file');
  }
  let offset = 12;
  let fmt = null;
  while (offset + 8 <= buffer.length) {
    const id = buffer.toString('ascii', offset, offset + 4);
    const size = buffer.readUInt32LE(offset + 4);
    const body = offset + 8;
    if (id === 'fmt ') {
      fmt = {
        format: buffer.readUInt16LE(body),
        channels: buffer.readUInt16LE(body + 2),
        rate: buffer.readUInt32LE(body + 4),
        bits: buffer.readUInt16LE(body + 14),
      };
    } else if (id === 'data') {
      if (!fmt) throw new Error('data before fmt');
      return { ...fmt, data: buffer.subarray(body, Math.min(buffer.length, body + size)) };
    }
    offset = body + size + (size & 1);
  }
  throw new Error('no data chunk');
}
