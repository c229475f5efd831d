// idle: CONNECTIONS (1000) WebSocket connections that open and then send
// nothing for DURATION (30) s, CONNECTIONS_PER_VU (50) of them on each VU.
// What it measures is memory: run.sh reports the server's RSS growth per
// connection (the target is 64 KiB at most). ENDPOINT=stream (default) holds
// `/stream` connections that have not sent their WAV header yet;
// ENDPOINT=session holds recorded sessions (`/api/ws/audio`, record=false)
// whose producer has said its format and got its `session` message but sends
// no audio. run.sh raises the server's idle timeout above DURATION.
// Thresholds: every connection opened (and, for sessions, got its session
// message) and stayed open for the whole hold.
import exec from 'k6/execution';
import { WebSocket } from 'k6/experimental/websockets';
import { setTimeout } from 'k6/timers';
import { Counter, Rate } from 'k6/metrics';
import { envInt, envStr, TARGET, wsParams } from '../../lib/env.js';
import { plannedStreams } from '../../lib/stream.js';

const connections = envInt('CONNECTIONS', 1000);
const perVu = Math.max(1, envInt('CONNECTIONS_PER_VU', 50));
const holdS = envInt('DURATION', 30);
const endpoint = envStr('ENDPOINT', 'stream');
/** Connections are opened over this long, so the server is not hit by one burst, in milliseconds. */
const OPEN_SPREAD_MS = 5000;

const idleOk = new Rate('idle_ok');
const idleFailures = new Counter('idle_failures');

export const options = {
  scenarios: {
    idle: {
      executor: 'per-vu-iterations',
      vus: Math.ceil(connections / perVu),
      iterations: 1,
      maxDuration: `${holdS + OPEN_SPREAD_MS / 1000 + 60}s`,
    },
  },
  thresholds: { idle_ok: ['rate==1'], idle_failures: ['count==0'] },
};

export function setup() {
  plannedStreams.add(connections);
  idleFailures.add(0);
}

const url = endpoint === 'session'
  ? `ws://${TARGET}/api/ws/audio?format=s16le&sample_rate=44100&channels=2&record=false&acks=false`
  : `ws://${TARGET}/stream`;

function hold(delayMs) {
  return new Promise((resolve) => {
    setTimeout(() => {
      let done = false;
      let ready = false;
      const finish = (reason) => {
        if (done) return;
        done = true;
        idleOk.add(reason === null);
        if (reason !== null) {
          idleFailures.add(1, { reason });
          console.warn(`idle connection failed: ${reason}`);
        }
        try { ws.close(); } catch (e) { /* already closed */ }
        resolve();
      };
      const ws = new WebSocket(url, null, wsParams());
      ws.onopen = () => {
        if (endpoint !== 'session') ready = true;
        // Held from the moment of opening, so every connection is open
        // during the last seconds of the run, when memory peaks.
        setTimeout(() => finish(ready ? null : 'no_session_message'), holdS * 1000 - delayMs);
      };
      ws.onmessage = (e) => {
        if (typeof e.data === 'string' && JSON.parse(e.data).type === 'session') ready = true;
        else finish('unexpected_message');
      };
      ws.onerror = (e) => finish(`ws_error ${e.error}`);
      ws.onclose = () => finish('closed_by_server');
    }, delayMs);
  });
}

export default async function () {
  const first = exec.scenario.iterationInTest * perVu;
  const count = Math.min(perVu, connections - first);
  const all = [];
  for (let i = 0; i < count; i++) all.push(hold(Math.random() * OPEN_SPREAD_MS));
  await Promise.all(all);
}
