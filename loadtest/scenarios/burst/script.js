// burst: whole files converted as fast as the server goes. WS_VUS (4) VUs
// upload a 10 s WAV over /stream in 64 KiB messages without pacing, HTTP_VUS
// (2) VUs POST it to /convert, for DURATION (20) s. Every conversion is
// checked (sample count and MD5 of the result against the input's); the
// report gives conversions, failures, time per conversion and audio seconds
// converted per wall second. Thresholds: no failure, and each 10 s file
// converted within CONVERSION_P95_MS (10 s: faster than real time even in the
// burst).
import http from 'k6/http';
import { WebSocket } from 'k6/experimental/websockets';
import { Counter, Trend } from 'k6/metrics';
import { envInt, excerptPath, httpHeaders, SUMMARY_TREND_STATS, TARGET, wsParams } from '../../lib/env.js';
import { streaminfo, wavFacts } from '../../lib/flac.js';

/** Bytes per WebSocket message: the size docs/protocol.md recommends at most. */
const MESSAGE_BYTES = 64 * 1024;

const wav = open(excerptPath('WAV_MUSIC'), 'b');
const facts = wavFacts(wav);
const durationS = envInt('DURATION', 20);
const p95 = envInt('CONVERSION_P95_MS', 10000);

const conversions = new Counter('conversions');
const failures = new Counter('conversion_failures');
const convertedAudio = new Counter('converted_audio_seconds');
const conversionTime = new Trend('conversion_time', true);

export const options = {
  scenarios: {
    ws: { executor: 'constant-vus', vus: envInt('WS_VUS', 4), duration: `${durationS}s`, exec: 'viaStream' },
    convert: { executor: 'constant-vus', vus: envInt('HTTP_VUS', 2), duration: `${durationS}s`, exec: 'viaConvert' },
  },
  thresholds: {
    conversion_failures: ['count==0'],
    'conversions{api:ws}': ['count>0'],
    'conversions{api:convert}': ['count>0'],
    'conversion_failures{api:ws}': ['count==0'],
    'conversion_failures{api:convert}': ['count==0'],
    'conversion_time{api:ws}': [`p(95)<${p95}`],
    'conversion_time{api:convert}': [`p(95)<${p95}`],
  },
  summaryTrendStats: SUMMARY_TREND_STATS,
};

export function setup() {
  for (const api of ['ws', 'convert']) failures.add(0, { api });
}

function outcome(api, t0, got) {
  const tags = { api };
  if (got && got.samples === facts.samples && got.md5 === facts.md5) {
    conversions.add(1, tags);
    convertedAudio.add(facts.samples / facts.rate, tags);
    conversionTime.add(Date.now() - t0, tags);
  } else {
    failures.add(1, tags);
    console.warn(`${api} conversion failed: ${JSON.stringify(got)}`);
  }
}

/** One WAV over /stream: all of it at once (the server's backpressure paces it), then the done message. */
export function viaStream() {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const ws = new WebSocket(`ws://${TARGET}/stream`, null, wsParams());
    ws.binaryType = 'arraybuffer';
    let settled = false;
    const settle = (got) => {
      if (settled) return;
      settled = true;
      outcome('ws', t0, got);
      try { ws.close(); } catch (e) { /* closed */ }
      resolve();
    };
    ws.onopen = () => {
      for (let o = 0; o < wav.byteLength; o += MESSAGE_BYTES) ws.send(wav.slice(o, o + MESSAGE_BYTES));
    };
    ws.onmessage = (e) => {
      if (typeof e.data !== 'string') return;
      const m = JSON.parse(e.data);
      settle(m.type === 'done' ? { samples: m.samples, md5: m.md5 } : m);
    };
    ws.onerror = (e) => settle({ error: String(e.error) });
    ws.onclose = () => settle({ error: 'closed without done' });
  });
}

/** One WAV through POST /convert; the answer's STREAMINFO is final. */
export function viaConvert() {
  const t0 = Date.now();
  const r = http.post(`http://${TARGET}/convert`, wav, {
    headers: httpHeaders({ 'Content-Type': 'audio/wav' }), responseType: 'binary', timeout: '120s',
  });
  outcome('convert', t0, r.status === 200 ? streaminfo(r.body) : { status: r.status });
}
