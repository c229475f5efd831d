// flood: GOOD_STREAMS (20) live 44.1 kHz stereo streams for DURATION (40) s,
// while flooders, one VU of each kind, start after 5 s and misbehave again
// and again until 10 s before the end:
//   oversize  one 2 MiB message (over FLACSTREAM_MAX_MESSAGE_SIZE_BYTES, 1 MiB): message_too_large, close 1009
//   garbage   64 KiB messages that are not a WAV: not_wav, close 1007
//   bad_text  a valid stream, then text that is not {"type":"end"}: bad_message, close 1008
//   fast      a valid streaming WAV in 512 KiB messages as fast as the server
//             takes them (hundreds of times real time) for FAST_SECONDS (8)
//             s, then end: must be slowed down, not failed, and end exact
// Thresholds: every good stream exact with latency as in realtime, every
// flooder answered as documented (docs/protocol.md section 5); run.sh checks
// the server's memory stays flat.
import ws from 'k6/ws';
import { WebSocket } from 'k6/experimental/websockets';
import crypto from 'k6/crypto';
import { setTimeout } from 'k6/timers';
import { Rate, Trend } from 'k6/metrics';
import { envInt, excerptPath, TARGET, wsParams } from '../../lib/env.js';
import { liveScenario } from '../../lib/live.js';
import { streamingWavHeader } from '../../lib/stream.js';

/** Larger than the server's default message limit (1 MiB). */
const OVERSIZE_BYTES = 2 * 1024 * 1024;
/** Message size of the fast flooder, in bytes (below the 1 MiB limit). */
const FAST_MESSAGE_BYTES = 512 * 1024;
/** The fast flooder keeps at most this much queued in k6, in bytes; the rest waits for the server. */
const FAST_QUEUE_BYTES = 2 * 1024 * 1024;
/** Seconds after the start before flooders begin, and before the end when they stop. */
const FLOOD_START_S = 5;
const FLOOD_STOP_BEFORE_END_S = 10;

const durationS = envInt('DURATION', 40);
const good = liveScenario({
  name: 'good', rate: 44100, channels: 2, pcmEnv: 'PCM_MUSIC',
  streams: envInt('GOOD_STREAMS', 20), streamsPerVu: 1, durationS, latP95Ms: 100, latP99Ms: 250,
});
const pcm = open(excerptPath('PCM_MUSIC'), 'b');
const fastSeconds = envInt('FAST_SECONDS', 8);
const floodOk = new Rate('flood_ok');
/** How many times faster than real time the fast flooder's streams went (audio seconds per wall second). */
const fastSpeed = new Trend('flood_fast_speed');

const kinds = ['oversize', 'garbage', 'bad_text', 'fast'];
const floodDuration = `${Math.max(1, durationS - FLOOD_START_S - FLOOD_STOP_BEFORE_END_S)}s`;
const scenarios = Object.assign({}, good.options.scenarios);
const thresholds = Object.assign({}, good.options.thresholds);
for (const kind of kinds) {
  scenarios[kind] = {
    executor: 'constant-vus', vus: 1, duration: floodDuration, startTime: `${FLOOD_START_S}s`,
    exec: kind === 'fast' ? 'fast' : 'misbehave', env: { KIND: kind }, gracefulStop: '30s',
  };
  thresholds[`flood_ok{kind:${kind}}`] = ['rate==1'];
}
export const options = { scenarios, thresholds, summaryTrendStats: good.options.summaryTrendStats };
export const setup = good.setup;
export default good.run;

/** What each kind expects: the error code and the close code. */
const EXPECTED = {
  oversize: ['message_too_large', 1009],
  garbage: ['not_wav', 1007],
  bad_text: ['bad_message', 1008],
};

/** One misbehaving connection (k6/ws: it reports the close code). */
export function misbehave() {
  const kind = __ENV.KIND;
  let error = null;
  let code = null;
  ws.connect(`ws://${TARGET}/stream`, wsParams(), (socket) => {
    socket.on('open', () => {
      if (kind === 'oversize') {
        socket.sendBinary(new ArrayBuffer(OVERSIZE_BYTES));
      } else if (kind === 'garbage') {
        for (let i = 0; i < 16; i++) socket.sendBinary(crypto.randomBytes(64 * 1024));
      } else {
        socket.sendBinary(streamingWavHeader(44100, 2));
        socket.sendBinary(pcm.slice(0, 64 * 1024));
        for (let i = 0; i < 16; i++) socket.send('{"type":"flood"}');
      }
    });
    socket.on('message', (m) => {
      const msg = JSON.parse(m);
      if (msg.type === 'error') error = msg.code;
    });
    socket.on('close', (c) => { code = c; });
    socket.setTimeout(() => socket.close(), 15000);
  });
  const [wantError, wantCode] = EXPECTED[kind];
  const ok = error === wantError && code === wantCode;
  if (!ok) console.warn(`flood ${kind}: got ${error}/${code}, expected ${wantError}/${wantCode}`);
  floodOk.add(ok, { kind });
}

/** A valid stream sent as fast as the server takes it; must end exact. */
export function fast() {
  return new Promise((resolve) => {
    const sock = new WebSocket(`ws://${TARGET}/stream`, null, wsParams());
    sock.binaryType = 'arraybuffer';
    const md5 = crypto.createHash('md5');
    const frameBytes = 4;
    let offset = 0;
    let samples = 0;
    let ended = false;
    let settled = false;
    let t0 = 0;
    const settle = (ok, why) => {
      if (settled) return;
      settled = true;
      if (!ok) console.warn(`flood fast: ${why}`);
      floodOk.add(ok, { kind: 'fast' });
      try { sock.close(); } catch (e) { /* closed */ }
      resolve();
    };
    const pump = () => {
      if (settled || ended) return;
      while (sock.bufferedAmount < FAST_QUEUE_BYTES) {
        if (Date.now() - t0 > fastSeconds * 1000) {
          sock.send(JSON.stringify({ type: 'end' }));
          ended = true;
          return;
        }
        const n = Math.min(FAST_MESSAGE_BYTES, pcm.byteLength - offset);
        const chunk = pcm.slice(offset, offset + n);
        offset = (offset + n) % pcm.byteLength;
        md5.update(chunk);
        samples += n / frameBytes;
        sock.send(chunk);
      }
      setTimeout(pump, 5);
    };
    sock.onopen = () => {
      sock.send(streamingWavHeader(44100, 2));
      t0 = Date.now();
      pump();
    };
    sock.onmessage = (e) => {
      if (typeof e.data !== 'string') return;
      const m = JSON.parse(e.data);
      if (m.type !== 'done') return settle(false, `${m.type} ${m.code}`);
      fastSpeed.add(samples / 44100 / ((Date.now() - t0) / 1000));
      settle(m.samples === samples && m.md5 === md5.digest('hex'), `done with ${m.samples} of ${samples} samples`);
    };
    sock.onerror = (e) => settle(false, `error ${e.error}`);
    sock.onclose = () => settle(false, 'closed without done');
  });
}
