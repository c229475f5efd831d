// ramp: live 44.1 kHz stereo streams added STEP_STREAMS (50) at a time every
// STEP_SECONDS (30) s for STEPS (6) steps; every stream runs to the end. Each
// latency sample and failure is tagged with the step in force when it
// happened, and run.sh's report shows per step the latency, failures, server
// CPU and RSS, and the knee: the first step whose p99 exceeds KNEE_P99_MS
// (250) or that has a failed stream. Only step 0 has a threshold that fails
// the run (the baseline must be healthy); beyond the knee failing is the point.
import exec from 'k6/execution';
import { Gauge } from 'k6/metrics';
import { envInt, envStr, excerptPath, SUMMARY_TREND_STATS, TARGET } from '../../lib/env.js';
import { DEFAULT_CHUNK_MS } from '../../lib/live.js';
import { pacedStreams, plannedStreams, streamFailures } from '../../lib/stream.js';

const steps = envInt('STEPS', 6);
const stepSeconds = envInt('STEP_SECONDS', 30);
const stepStreams = envInt('STEP_STREAMS', 50);
const perVu = Math.max(1, envInt('STREAMS_PER_VU', 2));
const spreadMs = envInt('START_SPREAD_MS', 1000);
const kneeMs = envInt('KNEE_P99_MS', 250);
const pcm = open(excerptPath('PCM_MUSIC'), 'b');

/** Wall-clock start of step 0 in ms since the epoch (the report splits server samples by it). */
const rampT0 = new Gauge('ramp_t0_ms');

const scenarios = {};
// k6 puts a sub-metric in the summary only when it has a threshold: these
// always-true ones are there to report every step.
const thresholds = {
  'frame_latency{step:0}': [`p(99)<${kneeMs}`],
  'stream_failures{step:0}': ['count==0'],
};
for (let i = 0; i < steps; i++) {
  scenarios[`step${i}`] = {
    executor: 'per-vu-iterations',
    vus: Math.ceil(stepStreams / perVu),
    iterations: 1,
    startTime: `${i * stepSeconds}s`,
    maxDuration: `${(steps - i) * stepSeconds + 90}s`,
    env: { STEP: String(i) },
  };
  if (i > 0) {
    thresholds[`frame_latency{step:${i}}`] = ['p(99)>=0'];
    thresholds[`stream_failures{step:${i}}`] = ['count>=0'];
  }
}

export const options = { scenarios, thresholds, summaryTrendStats: SUMMARY_TREND_STATS };

export function setup() {
  plannedStreams.add(steps * stepStreams);
  for (let i = 0; i < steps; i++) streamFailures.add(0, { step: String(i) });
}

export default async function () {
  const step = parseInt(__ENV.STEP, 10);
  const stepMs = stepSeconds * 1000;
  const t0 = exec.scenario.startTime - step * stepMs;
  rampT0.add(t0);
  const first = exec.scenario.iterationInTest * perVu; // one iteration per VU in each step
  const count = Math.min(perVu, stepStreams - first);
  if (count <= 0) return;
  await pacedStreams(count, spreadMs, {
    target: TARGET,
    endpoint: envStr('ENDPOINT', 'stream'),
    record: envStr('RECORD', 'false') === 'true',
    pcm,
    rate: 44100,
    channels: 2,
    durationS: (steps - step) * stepSeconds - spreadMs / 1000,
    chunkMs: envInt('CHUNK_MS', DEFAULT_CHUNK_MS),
    blockSize: envInt('BLOCK_SIZE', 0) || null,
    stepOf: () => Math.min(steps - 1, Math.max(0, Math.floor((Date.now() - t0) / stepMs))),
  });
}
