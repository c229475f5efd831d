// The shared live-stream client: sends raw s16le audio in fixed chunks on a
// real-time schedule, either to /stream (after a streaming WAV header) or to a
// recorded session (/api/ws/audio?…&output=flac), and measures, per FLAC
// frame, the time from sending the chunk that completed its block to
// receiving the frame. Several streams can share one VU: each runs on the
// VU's event loop (k6/experimental/websockets and k6/timers), which is how one
// k6 process goes past the ~250 VUs it can keep on time.
//
// Wire facts this relies on (docs/protocol.md, sections 4 and 9): the first
// binary message is the 42-byte `fLaC` + STREAMINFO header; then exactly one
// binary message per frame, in stream order, every frame `block_size`
// samples but the last; then a text `done` whose samples, frames, bytes_out
// and md5 describe what the server received and sent. A recorded session
// first sends a text `session` message (and `ack`s unless acks=false).

import { WebSocket } from 'k6/experimental/websockets';
import { setTimeout, clearTimeout } from 'k6/timers';
import { Counter, Gauge, Rate, Trend } from 'k6/metrics';
import crypto from 'k6/crypto';
import { wsParams } from './env.js';

/** Bytes of the `fLaC` marker plus the STREAMINFO block: the first binary message. */
export const STREAM_HEADER_BYTES = 42;

/** How long a stream waits for `done` after sending its end, in milliseconds. */
export const DONE_TIMEOUT_MS = 30000;

/** How long a connection may take to open before the stream counts as failed, in milliseconds. */
export const OPEN_TIMEOUT_MS = 15000;

/** Time from sending the chunk that completes a block to receiving its FLAC frame. */
export const frameLatency = new Trend('frame_latency', true);
/** How late the client itself sent chunks against their schedule (client health, not server). */
export const sendLag = new Trend('send_lag', true);
/** Streams that ended exactly as sent (done, samples, frames, bytes, MD5). */
export const streamsOk = new Rate('streams_ok');
/** Streams that did not; tagged with `reason`. */
export const streamFailures = new Counter('stream_failures');
/** Seconds of audio sent by streams, whatever their outcome. */
export const audioSeconds = new Counter('audio_seconds');
/** Streams the scenario keeps open at its peak, set once in setup() (run.sh divides memory by it). */
export const plannedStreams = new Gauge('planned_streams');
/** FLAC frames received. */
export const framesReceived = new Counter('frames_received');

/**
 * A 44-byte WAV header with the streaming sizes (RIFF and data 0xFFFFFFFF):
 * the length is unknown, so the stream ends with {"type":"end"}.
 */
export function streamingWavHeader(rate, channels) {
  const b = new DataView(new ArrayBuffer(44));
  const tag = (o, s) => { for (let i = 0; i < 4; i++) b.setUint8(o + i, s.charCodeAt(i)); };
  tag(0, 'RIFF'); b.setUint32(4, 0xffffffff, true); tag(8, 'WAVE');
  tag(12, 'fmt '); b.setUint32(16, 16, true); b.setUint16(20, 1, true);
  b.setUint16(22, channels, true); b.setUint32(24, rate, true);
  b.setUint32(28, rate * channels * 2, true); b.setUint16(32, channels * 2, true);
  b.setUint16(34, 16, true);
  tag(36, 'data'); b.setUint32(40, 0xffffffff, true);
  return b.buffer;
}

/** The server's default block size for a rate: the largest power of two within 100 ms, 32..4096 up to 48 kHz. */
export function defaultBlockSize(rate) {
  const max = rate <= 48000 ? 4096 : 16384;
  let b = 32;
  while (b * 2 <= max && b * 2 <= rate / 10) b *= 2;
  return b;
}

/** `length` bytes of `pcm` from `offset`, wrapping round to its start. */
function loopSlice(pcm, offset, length) {
  if (offset + length <= pcm.byteLength) return pcm.slice(offset, offset + length);
  const out = new Uint8Array(length);
  const head = pcm.byteLength - offset;
  out.set(new Uint8Array(pcm, offset, head), 0);
  out.set(new Uint8Array(pcm, 0, length - head), head);
  return out.buffer;
}

/**
 * Runs one paced stream and resolves with `{ok, reason}` once it ended.
 *
 * opts: target (host:port), endpoint ('stream' | 'session'), pcm (ArrayBuffer
 * of s16le frames, looped), rate, channels, durationS, chunkMs, blockSize
 * (null: the server default), record (sessions), tags (added to every
 * sample), stepOf (optional: () => tag value for `step`, read at sample time).
 */
export function pacedStream(opts) {
  const frameBytes = opts.channels * 2;
  const chunkFrames = Math.round((opts.rate * opts.chunkMs) / 1000);
  const chunkBytes = chunkFrames * frameBytes;
  const totalChunks = Math.max(1, Math.ceil((opts.durationS * 1000) / opts.chunkMs));
  const totalSamples = totalChunks * chunkFrames;
  const blockSize = opts.blockSize || defaultBlockSize(opts.rate);
  const expectedFrames = Math.ceil(totalSamples / blockSize);
  const baseTags = opts.tags || {};
  const tags = () => {
    const t = Object.assign({}, baseTags);
    if (opts.stepOf) t.step = String(opts.stepOf());
    if (opts.minuteOf) t.minute = String(opts.minuteOf());
    return t;
  };

  const query = (opts.blockSize ? `&block_size=${opts.blockSize}` : '')
    + (opts.level !== null && opts.level !== undefined ? `&level=${opts.level}` : '');
  const url = opts.endpoint === 'session'
    ? `ws://${opts.target}/api/ws/audio?format=s16le&sample_rate=${opts.rate}&channels=${opts.channels}` +
      `&output=flac&acks=false&record=${opts.record ? 'true' : 'false'}${query}`
    : `ws://${opts.target}/stream?${query.slice(1)}`;

  // Random, frame-aligned start inside the excerpt, so streams differ.
  let offset = Math.floor(Math.random() * (opts.pcm.byteLength / frameBytes)) * frameBytes;
  const md5 = crypto.createHash('md5');

  return new Promise((resolve) => {
    let finished = false;
    let sent = 0; // chunks sent
    let t0 = 0;
    let timer = null;
    let guard = null;
    let headerSeen = false;
    let frames = 0;
    let bytesOut = 0;
    let sessionSeen = opts.endpoint !== 'session';
    // Send time of the chunk that completed each block not yet received, in order.
    const blockDue = [];
    let nextBlockEnd = blockSize;
    let endSentAt = 0;

    const ws = new WebSocket(url, null, wsParams());
    ws.binaryType = 'arraybuffer';

    const finish = (reason, detail) => {
      if (finished) return;
      finished = true;
      if (timer !== null) clearTimeout(timer);
      if (guard !== null) clearTimeout(guard);
      audioSeconds.add((sent * chunkFrames) / opts.rate, baseTags);
      const ok = reason === null;
      streamsOk.add(ok, baseTags);
      if (!ok) {
        streamFailures.add(1, Object.assign({ reason }, tags()));
        console.warn(`stream failed: ${reason}${detail ? ` (${detail})` : ''}`);
      }
      try { ws.close(); } catch (e) { /* already closed */ }
      resolve({ ok, reason });
    };

    guard = setTimeout(() => finish('open_timeout'), OPEN_TIMEOUT_MS);

    const sendDue = () => {
      timer = null;
      if (finished) return;
      const now = Date.now();
      const due = Math.min(totalChunks, Math.floor((now - t0) / opts.chunkMs) + 1);
      if (sent < due) sendLag.add(now - (t0 + sent * opts.chunkMs), tags());
      while (sent < due) {
        const chunk = loopSlice(opts.pcm, offset, chunkBytes);
        offset = (offset + chunkBytes) % opts.pcm.byteLength;
        md5.update(chunk);
        ws.send(chunk);
        sent += 1;
        const samples = sent * chunkFrames;
        const at = Date.now();
        while (nextBlockEnd <= samples) { blockDue.push(at); nextBlockEnd += blockSize; }
      }
      if (sent < totalChunks) {
        timer = setTimeout(sendDue, Math.max(0, t0 + sent * opts.chunkMs - Date.now()));
      } else {
        ws.send(JSON.stringify({ type: 'end' }));
        endSentAt = Date.now();
        if (nextBlockEnd - blockSize < totalSamples) blockDue.push(endSentAt); // the last, partial block
        guard = setTimeout(() => finish('done_timeout'), DONE_TIMEOUT_MS);
      }
    };

    ws.onopen = () => {
      clearTimeout(guard);
      guard = null;
      if (opts.endpoint !== 'session') ws.send(streamingWavHeader(opts.rate, opts.channels));
      t0 = Date.now();
      sendDue();
    };

    ws.onmessage = (e) => {
      if (finished) return;
      const now = Date.now();
      if (typeof e.data !== 'string') {
        bytesOut += e.data.byteLength;
        if (!headerSeen) {
          headerSeen = true;
          if (e.data.byteLength !== STREAM_HEADER_BYTES) {
            console.warn(`first FLAC message is ${e.data.byteLength} bytes, not ${STREAM_HEADER_BYTES}`);
            finish('bad_header');
          }
          return;
        }
        const due = blockDue.shift();
        if (due === undefined) return finish('frame_before_block_complete');
        frameLatency.add(now - due, tags());
        framesReceived.add(1, baseTags);
        frames += 1;
        return;
      }
      let m;
      try { m = JSON.parse(e.data); } catch (err) { return finish('bad_json'); }
      if (m.type === 'session' || m.type === 'ack') { sessionSeen = true; return; }
      if (m.type === 'error') return finish(`error_${m.code}`, m.message);
      if (m.type !== 'done') return finish(`unexpected_${m.type}`);
      if (!sessionSeen) return finish('no_session_message');
      if (m.samples !== totalSamples) return finish('samples_mismatch', `${m.samples} of ${totalSamples}`);
      if (m.frames !== frames || frames !== expectedFrames) return finish('frames_mismatch');
      if (m.bytes_out !== bytesOut) return finish('bytes_out_mismatch');
      if (m.md5 !== md5.digest('hex')) return finish('md5_mismatch');
      finish(null);
    };

    ws.onerror = (e) => finish('ws_error', e.error);
    ws.onclose = () => finish('closed_without_done');
  });
}

/**
 * Runs `count` paced streams on this VU's event loop, each starting after a
 * random delay below `spreadMs` (so blocks do not all complete at the same
 * instant), and resolves when all have ended.
 */
export function pacedStreams(count, spreadMs, opts) {
  const all = [];
  for (let i = 0; i < count; i++) {
    all.push(new Promise((resolve) => {
      setTimeout(() => pacedStream(opts).then(resolve), Math.random() * spreadMs);
    }));
  }
  return Promise.all(all);
}
