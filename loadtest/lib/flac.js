// Reading a FLAC stream's STREAMINFO and a WAV's PCM, to check conversions
// without a decoder: the server's MD5 covers the decoded samples, so a FLAC
// whose STREAMINFO carries the input's sample count and MD5 encodes that input
// (the server checks its own output against the same MD5 only if a decoder
// does; tests/ do that, the load tests check the totals).

import crypto from 'k6/crypto';

/** Bytes before the STREAMINFO body: `fLaC` and the metadata block header. */
const STREAMINFO_OFFSET = 8;

/** {samples, md5} from the STREAMINFO of a FLAC stream's first bytes (ArrayBuffer). */
export function streaminfo(buf) {
  const b = new Uint8Array(buf, 0, Math.min(buf.byteLength, 42));
  if (b.length < 42 || String.fromCharCode(b[0], b[1], b[2], b[3]) !== 'fLaC') return null;
  const o = STREAMINFO_OFFSET + 10; // sample rate (20 bits), channels (3), bits (5), total samples (36)
  const samples = (b[o + 3] & 0x0f) * 2 ** 32 + ((b[o + 4] << 24) >>> 0) + (b[o + 5] << 16) + (b[o + 6] << 8) + b[o + 7];
  let md5 = '';
  for (let i = STREAMINFO_OFFSET + 18; i < STREAMINFO_OFFSET + 34; i++) md5 += b[i].toString(16).padStart(2, '0');
  return { samples, md5 };
}

/** {samples, md5, rate} of a canonical 44-byte-header 16-bit WAV (as run.sh writes it). */
export function wavFacts(wav) {
  const v = new DataView(wav);
  const channels = v.getUint16(22, true);
  const rate = v.getUint32(24, true);
  const pcm = wav.slice(44, 44 + v.getUint32(40, true));
  return { samples: pcm.byteLength / (2 * channels), md5: crypto.md5(pcm, 'hex'), rate };
}
