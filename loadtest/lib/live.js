// A live scenario: N concurrent paced streams of one format (realtime and
// speech use it), STREAMS_PER_VU of them on each VU, each streaming for
// DURATION seconds. Thresholds: every stream exact, frame latency p95/p99
// under LAT_P95_MS/LAT_P99_MS, and the client itself on schedule (send_lag),
// since a late client makes every latency meaningless.

import exec from 'k6/execution';
import { envInt, envStr, excerptPath, SUMMARY_TREND_STATS, TARGET } from './env.js';
import { pacedStreams, plannedStreams, streamFailures } from './stream.js';

/** Default chunk length in milliseconds: what a live capture sends at a time. */
export const DEFAULT_CHUNK_MS = 20;

/** Client lateness beyond which the run says more about k6 than the server, in milliseconds (p99). */
export const SEND_LAG_P99_MS = 50;

/**
 * Builds `{options, setup, run}` for a live scenario. `defaults`: rate, channels,
 * streams, streamsPerVu, durationS, latP95Ms, latP99Ms, pcmEnv (the env
 * variable naming the excerpt), name.
 */
export function liveScenario(defaults) {
  const streams = envInt('STREAMS', defaults.streams);
  const perVu = Math.max(1, envInt('STREAMS_PER_VU', defaults.streamsPerVu));
  const durationS = envInt('DURATION', defaults.durationS);
  const spreadMs = envInt('START_SPREAD_MS', 1000);
  const vus = Math.ceil(streams / perVu);
  const pcm = open(excerptPath(defaults.pcmEnv), 'b');
  const stream = {
    target: TARGET,
    endpoint: envStr('ENDPOINT', 'stream'),
    record: envStr('RECORD', 'false') === 'true',
    pcm,
    rate: defaults.rate,
    channels: defaults.channels,
    durationS,
    chunkMs: envInt('CHUNK_MS', DEFAULT_CHUNK_MS),
    blockSize: envInt('BLOCK_SIZE', 0) || null,
    level: __ENV.LEVEL === undefined || __ENV.LEVEL === '' ? null : envInt('LEVEL', 5),
    // Latency is also kept per minute of the run, so a long run shows
    // whether it grows (thresholds below hold for every minute).
    minuteOf: () => Math.floor((Date.now() - exec.scenario.startTime) / 60000),
  };
  const latP95 = envInt('LAT_P95_MS', defaults.latP95Ms);
  const latP99 = envInt('LAT_P99_MS', defaults.latP99Ms);
  const minutes = Math.ceil((durationS + Math.ceil(spreadMs / 1000)) / 60);
  const perMinute = {};
  for (let m = 0; m < minutes; m++) perMinute[`frame_latency{minute:${m}}`] = [`p(99)<${latP99}`];
  const options = {
    scenarios: {
      [defaults.name]: {
        executor: 'per-vu-iterations',
        vus,
        iterations: 1,
        maxDuration: `${durationS + Math.ceil(spreadMs / 1000) + 90}s`,
      },
    },
    thresholds: {
      streams_ok: ['rate==1'],
      stream_failures: ['count==0'],
      frame_latency: [`p(95)<${latP95}`, `p(99)<${latP99}`],
      ...perMinute,
      send_lag: [`p(99)<${SEND_LAG_P99_MS}`],
    },
    summaryTrendStats: SUMMARY_TREND_STATS,
  };
  const run = async function () {
    const first = exec.scenario.iterationInTest * perVu; // one iteration per VU
    const count = Math.min(perVu, streams - first);
    if (count > 0) await pacedStreams(count, spreadMs, stream);
  };
  const setup = () => {
    plannedStreams.add(streams);
    streamFailures.add(0);
  };
  return { options, setup, run, streams, durationS };
}
