// realtime: STREAMS (100) concurrent 44.1 kHz 16-bit stereo streams, 20 ms
// chunks on schedule for DURATION (60) s; frame latency from the chunk that
// completes a 4096-sample block (92.9 ms of audio) to its FLAC frame.
import { liveScenario } from '../../lib/live.js';

const s = liveScenario({
  name: 'realtime', rate: 44100, channels: 2, pcmEnv: 'PCM_MUSIC',
  streams: 100, streamsPerVu: 1, durationS: 60, latP95Ms: 10, latP99Ms: 20,
});
export const options = s.options;
export const setup = s.setup;
export default s.run;
