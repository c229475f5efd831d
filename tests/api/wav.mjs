// A small WAV for the live checks: a 16-bit PCM tone, and a header that
// states its lengths or, as a live source would, leaves them unknown.

/** Interleaved 16-bit little-endian samples: a tone per channel, `frames` sample frames. */
export function tonePcm16({ rate, channels, frames, hz = 440, amplitude = 12000 }) {
  const pcm = Buffer.alloc(frames * channels * 2);
  for (let i = 0; i < frames; i++) {
    for (let c = 0; c < channels; c++) {
      const x = Math.round(amplitude * Math.sin((2 * Math.PI * hz * (c + 1) * i) / rate));
      pcm.writeInt16LE(x, (i * channels + c) * 2);
    }
  }
  return pcm;
}

/** Value of the RIFF and `data` sizes in a streaming header: the length is unknown. */
export const UNKNOWN_LENGTH = 0xffffffff;

/**
 * A canonical 44-byte WAV header for 16-bit PCM. `dataBytes` null writes
 * the streaming form (both sizes 0xFFFFFFFF): the sender ends with `end`.
 */
export function wavHeader16({ rate, channels, dataBytes = null }) {
  const h = Buffer.alloc(44);
  h.write('RIFF', 0, 'ascii');
  h.writeUInt32LE(dataBytes === null ? UNKNOWN_LENGTH : 36 + dataBytes, 4);
  h.write('WAVE', 8, 'ascii');
  h.write('fmt ', 12, 'ascii');
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20); // WAVE_FORMAT_PCM
  h.writeUInt16LE(channels, 22);
  h.writeUInt32LE(rate, 24);
  h.writeUInt32LE(rate * channels * 2, 28);
  h.writeUInt16LE(channels * 2, 32);
  h.writeUInt16LE(16, 34);
  h.write('data', 36, 'ascii');
  h.writeUInt32LE(dataBytes === null ? UNKNOWN_LENGTH : dataBytes, 40);
  return h;
}
