// slow-reader: GOOD_STREAMS (20) live 44.1 kHz stereo streams for DURATION
// (40) s while loadtest/lib/badclient.py (started by run.sh beside k6, since
// k6 always reads its sockets) runs BAD_CLIENTS (10) connections that send
// as fast as the server takes input and never read. Thresholds here: every
// good stream exact, latency as in realtime. run.sh checks the rest: each bad
// client cut off (slow_reader, close 1008, then the socket shut down) within the outbound stall time
// (10 s) plus slack, and the server's memory flat.
import { envInt } from '../../lib/env.js';
import { liveScenario } from '../../lib/live.js';

const s = liveScenario({
  name: 'good', rate: 44100, channels: 2, pcmEnv: 'PCM_MUSIC',
  streams: envInt('GOOD_STREAMS', 20), streamsPerVu: 1, durationS: 40, latP95Ms: 100, latP99Ms: 250,
});
export const options = s.options;
export const setup = s.setup;
export default s.run;
