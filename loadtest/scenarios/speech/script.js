// speech: STREAMS (300) concurrent 16 kHz 16-bit mono streams, 20 ms chunks
// on schedule for DURATION (60) s, four streams per VU; frame latency from the
// chunk that completes a 1024-sample block (64 ms of audio) to its frame.
import { liveScenario } from '../../lib/live.js';

const s = liveScenario({
  name: 'speech', rate: 16000, channels: 1, pcmEnv: 'PCM_SPEECH',
  streams: 300, streamsPerVu: 4, durationS: 60, latP95Ms: 10, latP99Ms: 20,
});
export const options = s.options;
export const setup = s.setup;
export default s.run;
