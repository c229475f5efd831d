// The multi-replica rehearsal's clients (deploy/local/run.sh runs this twice,
// through nginx): PHASE=spread, then PHASE=restart while run.sh restarts the
// replicas one at a time.
//
// * Producers: recorded sessions (/api/ws/audio, 16 kHz mono s16le, acks on)
//   whose id the client chooses (`session_id=<uuid>`), so the open hashes on
//   the same key as every later request for the session. They send speech
//   in CHUNK_MS chunks on a real-time schedule and end with `close_session`.
//   - spread: RESUME_FRACTION of them leave mid-stream (the WebSocket is
//     closed right after a chunk, before its ack, without close_session) and
//     resume through nginx by id (`/api/ws/audio/{id}`): the `session` message
//     must say `resumed: true`, and the producer continues from its
//     `samples_received`, resending what was not accepted.
//   - restart: a producer whose replica drains gets `done` (going_away) and a
//     close. It then does what a client should: it asks through nginx whether
//     its session is still live (`GET /api/audio/sessions/{id}`) and resumes if
//     so, retrying for RESUME_RETRY_SECONDS while the answer is not final
//     (502/503/404: the replica is restarting, or the request reached another
//     one); once the session is final (closed or failed) it opens a new
//     session for the rest of its audio, from the `done`'s sample count.
// * Streams: plain /stream conversions (44.1 kHz stereo music, streaming WAV
//   header), which cannot resume: they must end `complete`, or `going_away`.
//
// Every `done` is checked against what was sent (samples, and the MD5 of
// exactly those samples); a connection that ends without `done` is a bare
// disconnect, a failure. One JSON record per client is logged with the
// prefix `REHEARSAL ` for deploy/local/check.py, which finds each session on
// the replicas, decodes its recording and compares it with what was sent.

import { WebSocket } from 'k6/experimental/websockets';
import { setTimeout, clearTimeout } from 'k6/timers';
import http from 'k6/http';
import crypto from 'k6/crypto';
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';
import { envFloat, envInt, envStr, excerptPath, TARGET } from '../../loadtest/lib/env.js';
import { defaultBlockSize, STREAM_HEADER_BYTES, streamingWavHeader } from '../../loadtest/lib/stream.js';

/** Prefix of the per-client records check.py reads from k6's console output. */
const RECORD_PREFIX = 'REHEARSAL ';
/** How long a connection may take to open (upgrade and `session` message), in milliseconds. */
const OPEN_TIMEOUT_MS = 15000;
/** How long a client waits for `done` after its last audio, in milliseconds. */
const DONE_TIMEOUT_MS = 30000;
/** How long a client waits for the close after `done`, to read its code, in milliseconds. */
const CLOSE_WAIT_MS = 2000;
/** Pause between a producer leaving and resuming (spread), in milliseconds. */
const RESUME_GAP_MS = 300;
/** Pause between two attempts to resume or to open (restart), in milliseconds. */
const RETRY_PAUSE_MS = 1000;
/** Close codes a drained connection may get: 1001 going away, 1012 service restart. */
const DRAIN_CLOSE_CODES = [1001, 1012];

const PHASE = envStr('PHASE', 'spread');
if (PHASE !== 'spread' && PHASE !== 'restart') throw new Error(`PHASE must be spread or restart, got ${PHASE}`);
const SESSIONS = envInt('SESSIONS', 24);
const STREAMS = envInt('STREAMS', 6);
const PER_VU = Math.max(1, envInt('STREAMS_PER_VU', 10));
const CHUNK_MS = envInt('CHUNK_MS', 20);
const START_SPREAD_MS = envInt('START_SPREAD_MS', 1000);
// spread: every client streams SPREAD_SECONDS; RESUME_FRACTION of the producers leave and resume.
const SPREAD_SECONDS = envInt('SPREAD_SECONDS', 12);
const RESUME_FRACTION = envFloat('RESUME_FRACTION', 0.5);
// restart: each client streams a random length in [MIN_SECONDS, MAX_SECONDS].
const MIN_SECONDS = envInt('MIN_SECONDS', 8);
const MAX_SECONDS = envInt('MAX_SECONDS', 40);
const RESUME_RETRY_SECONDS = envInt('RESUME_RETRY_SECONDS', 20);
const OPEN_RETRIES = envInt('OPEN_RETRIES', 20);
const USER_ID = envStr('USER_ID', `rehearsal-${PHASE}`);

const SPEECH = { pcm: open(excerptPath('PCM_SPEECH'), 'b'), rate: 16000, channels: 1 };
const MUSIC = { pcm: open(excerptPath('PCM_MUSIC'), 'b'), rate: 44100, channels: 2 };

/** Clients that broke an expectation (also in their records); the threshold makes k6 exit non-zero. */
const failures = new Counter('rehearsal_failures');

export const options = {
  scenarios: {
    [PHASE]: {
      executor: 'per-vu-iterations',
      vus: Math.max(1, Math.ceil((SESSIONS + STREAMS) / PER_VU)),
      iterations: 1,
      maxDuration: `${(PHASE === 'spread' ? SPREAD_SECONDS : MAX_SECONDS + RESUME_RETRY_SECONDS) + 120}s`,
    },
  },
  thresholds: { rehearsal_failures: ['count==0'] },
};

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A random version-4 UUID. */
function uuid4() {
  const b = new Uint8Array(crypto.randomBytes(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * A client's audio: the excerpt looped from a random frame-aligned offset.
 * Sample n of the stream is always the same bytes, so a resumed or continued
 * stream resends exactly what it sent before, and check.py can rebuild any
 * range from (offset, start, count).
 */
class Audio {
  constructor(src, seconds) {
    this.src = src;
    this.frameBytes = src.channels * 2;
    this.chunkFrames = Math.round((src.rate * CHUNK_MS) / 1000);
    this.total = Math.max(1, Math.ceil((seconds * 1000) / CHUNK_MS)) * this.chunkFrames;
    this.offset = Math.floor(Math.random() * (src.pcm.byteLength / this.frameBytes)) * this.frameBytes;
  }

  /** Bytes of samples [start, start + count). */
  slice(start, count) {
    const pcm = this.src.pcm;
    const length = count * this.frameBytes;
    const from = (this.offset + start * this.frameBytes) % pcm.byteLength;
    if (from + length <= pcm.byteLength) return pcm.slice(from, from + length);
    const out = new Uint8Array(length);
    let at = 0;
    let p = from;
    while (at < length) {
      const n = Math.min(length - at, pcm.byteLength - p);
      out.set(new Uint8Array(pcm, p, n), at);
      at += n;
      p = (p + n) % pcm.byteLength;
    }
    return out.buffer;
  }

  /** MD5 (hex) of samples [start, end): what FLAC's MD5 covers for 16-bit audio. */
  md5(start, end) {
    const h = crypto.createHash('md5');
    const step = Math.floor(65536 / this.frameBytes);
    for (let s = start; s < end; s += step) h.update(this.slice(s, Math.min(step, end - s)));
    return h.digest('hex');
  }

  /** Samples due by `now` on a real-time schedule that started at `t0`. */
  due(t0, now) {
    return Math.min(this.total, (Math.floor((now - t0) / CHUNK_MS) + 1) * this.chunkFrames);
  }
}

/** One WebSocket, with its end (close code, or error) kept for whoever asks. */
class Conn {
  constructor(url) {
    this.url = url;
    this.onMessage = null;
    this.onEnd = null;
    this.ended = false;
    this.closeCode = null;
    this.error = null;
    this.ws = new WebSocket(url);
    this.ws.binaryType = 'arraybuffer';
    this.ws.onmessage = (e) => { if (this.onMessage) this.onMessage(e); };
    // k6's close event carries no code. A close with 1000 or 1001 is clean
    // (no error event); any other code comes as an error "… close NNNN …".
    this.ws.onerror = (e) => {
      this.error = String((e && e.error) || 'error');
      const m = /close (\d{4})/.exec(this.error);
      if (m) this.closeCode = parseInt(m[1], 10);
      this.end();
    };
    this.ws.onclose = (e) => {
      if (e && typeof e.code === 'number') this.closeCode = e.code;
      this.end();
    };
  }

  end() {
    if (this.ended) return;
    this.ended = true;
    if (this.onEnd) this.onEnd();
  }

  send(data) {
    if (this.ended) return false;
    try { this.ws.send(data); return true; } catch (e) { this.error = String(e); this.end(); return false; }
  }

  close() {
    this.onMessage = null;
    this.onEnd = null;
    try { this.ws.close(); } catch (e) { /* already closed */ }
  }

  /** Resolves once the connection has ended, or after `ms`. */
  waitEnd(ms) {
    if (this.ended) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.onEnd = () => { clearTimeout(t); resolve(); };
    });
  }
}

/** Opens a recorded-session connection; resolves `{conn, hello}` or `{why}`. */
function openSession(url) {
  return new Promise((resolve) => {
    const c = new Conn(url);
    const settle = (v) => { clearTimeout(guard); c.onMessage = null; c.onEnd = null; resolve(v); };
    const guard = setTimeout(() => { c.close(); resolve({ why: 'open_timeout' }); }, OPEN_TIMEOUT_MS);
    c.onMessage = (e) => {
      if (typeof e.data !== 'string') return;
      let m;
      try { m = JSON.parse(e.data); } catch (err) { c.close(); return settle({ why: 'bad_json' }); }
      if (m.type === 'session') return settle({ conn: c, hello: m });
      c.close();
      settle({ why: `first_message_${m.type}${m.code ? `_${m.code}` : ''}` });
    };
    // k6 does not expose a refused upgrade's HTTP status, only its error text.
    c.onEnd = () => settle({ why: c.error ? `refused: ${c.error}` : `closed_${c.closeCode}` });
  });
}

/** GET through nginx; resolves `{status, body}` (body parsed when JSON). */
async function probe(path) {
  const r = await http.asyncRequest('GET', `http://${TARGET}${path}`, null, {
    tags: { name: 'probe' }, timeout: '5s', responseType: 'text',
  });
  let body = null;
  try { body = JSON.parse(r.body); } catch (e) { /* not JSON */ }
  return { status: r.status, body };
}

function openUrl(id) {
  return `ws://${TARGET}/api/ws/audio?session_id=${id}&format=s16le&sample_rate=${SPEECH.rate}` +
    `&channels=${SPEECH.channels}&acks=true&user_id=${USER_ID}`;
}

function joinUrl(id) {
  return `ws://${TARGET}/api/ws/audio/${id}?acks=true`;
}

/**
 * A producer: one logical stream of `audio`, carried by one session, or by
 * several in a row when a drain ends one (restart phase). Resolves with its
 * record.
 */
async function producer(index, audio, leaveAt) {
  const rec = {
    kind: 'producer', phase: PHASE, index, rate: audio.src.rate, channels: audio.src.channels,
    offset_bytes: audio.offset, total_samples: audio.total, segments: [], failures: [], outcome: null,
  };
  const fail = (what) => { rec.failures.push(what); console.warn(`producer ${index}: ${what}`); };
  let pos = 0; // next sample of the logical stream to send
  let t0 = 0; // the schedule's start
  let left = false;

  // Opens a new session for samples [start, total); retries with a fresh id
  // (a refused open created nothing, and a new id may hash to a live replica).
  const openSegment = async (start) => {
    const seg = {
      session_id: null, start_sample: start, open_failures: [], resumes: [],
      acked_received: 0, acked_durable: 0, done: null, close_code: null, end: null, after_end: [],
    };
    for (let attempt = 0; attempt <= OPEN_RETRIES; attempt++) {
      const id = uuid4();
      const r = await openSession(openUrl(id));
      if (r.conn) {
        if (r.hello.session_id !== id) fail(`asked for session ${id}, got ${r.hello.session_id}`);
        seg.session_id = r.hello.session_id;
        seg.opened_ms = Date.now();
        rec.segments.push(seg);
        return { seg, conn: r.conn };
      }
      seg.open_failures.push({ id, why: r.why, at_ms: Date.now() });
      await sleep(RETRY_PAUSE_MS);
    }
    rec.segments.push(seg);
    return { seg, conn: null };
  };

  // Streams on `conn` until the logical stream is done, the producer leaves
  // (spread), or the connection ends. Resolves 'done', 'left' or 'dropped'.
  const pump = (seg, conn) => new Promise((resolve) => {
    let timer = null;
    let finishing = false;
    const stop = (how) => {
      if (timer !== null) clearTimeout(timer);
      timer = null;
      resolve(how);
    };
    conn.onMessage = (e) => {
      if (typeof e.data !== 'string') return;
      let m;
      try { m = JSON.parse(e.data); } catch (err) { return; }
      if (m.type === 'ack') {
        seg.acked_received = Math.max(seg.acked_received, m.samples_received);
        seg.acked_durable = Math.max(seg.acked_durable, m.samples_durable);
      } else if (m.type === 'done') {
        finishing = true;
        if (timer !== null) clearTimeout(timer);
        timer = null;
        seg.done = m;
        seg.done_ms = Date.now();
        conn.onMessage = null;
        conn.waitEnd(CLOSE_WAIT_MS).then(() => { seg.close_code = conn.closeCode; conn.close(); stop('done'); });
      } else if (m.type === 'error') {
        seg.errors = (seg.errors || []).concat([m.code]);
      }
    };
    conn.onEnd = () => {
      if (seg.done) return;
      seg.close_code = conn.closeCode;
      seg.dropped = conn.error || `closed_${conn.closeCode}`;
      seg.dropped_ms = Date.now();
      stop('dropped');
    };
    const tick = () => {
      timer = null;
      if (finishing) return;
      const due = audio.due(t0, Date.now());
      while (pos < due) {
        const n = Math.min(audio.chunkFrames, due - pos);
        if (!conn.send(audio.slice(pos, n))) return;
        pos += n;
        if (leaveAt !== null && !left && pos >= leaveAt) {
          // Leave before the ack for this chunk arrives: what the session
          // has not accepted yet is resent after the resume.
          left = true;
          seg.left_at = pos - seg.start_sample;
          conn.close();
          return stop('left');
        }
      }
      if (pos >= audio.total) {
        finishing = true;
        conn.send(JSON.stringify({ type: 'control', action: 'close_session' }));
        timer = setTimeout(() => { conn.close(); seg.dropped = 'done_timeout'; stop('dropped'); }, DONE_TIMEOUT_MS);
        return;
      }
      timer = setTimeout(tick, Math.max(0, t0 + ((pos / audio.chunkFrames) * CHUNK_MS) - Date.now()));
    };
    tick();
  });

  // Checks a `done` against what this session was sent.
  const checkDone = (seg) => {
    const d = seg.done;
    const end = seg.start_sample + d.samples;
    if (d.reason === 'closed') {
      if (end !== audio.total) fail(`${seg.session_id}: done says ${d.samples} samples, sent ${audio.total - seg.start_sample}`);
    } else if (d.reason === 'going_away') {
      if (!DRAIN_CLOSE_CODES.includes(seg.close_code) && seg.close_code !== null) fail(`${seg.session_id}: going_away with close ${seg.close_code}`);
      if (end > pos) fail(`${seg.session_id}: done says ${d.samples} samples, only ${pos - seg.start_sample} sent`);
      if (d.samples < seg.acked_received) fail(`${seg.session_id}: done says ${d.samples} samples, ${seg.acked_received} were acknowledged`);
    } else {
      fail(`${seg.session_id}: done with reason ${d.reason}`);
    }
    if (d.md5 !== audio.md5(seg.start_sample, end)) fail(`${seg.session_id}: done's md5 is not that of the samples sent`);
  };

  let { seg, conn } = await openSegment(0);
  t0 = Date.now();
  while (conn) {
    const how = await pump(seg, conn);
    conn = null;
    if (how === 'left') {
      await sleep(RESUME_GAP_MS);
      const r = await openSession(joinUrl(seg.session_id));
      const resume = { left_at: seg.left_at, sent_ms: Date.now() };
      seg.resumes.push(resume);
      if (!r.conn) { resume.why = r.why; fail(`${seg.session_id}: resume refused (${r.why})`); break; }
      resume.resumed = r.hello.resumed;
      resume.samples_received = r.hello.samples_received;
      resume.samples_durable = r.hello.samples_durable;
      if (r.hello.resumed !== true) fail(`${seg.session_id}: resume says resumed=${r.hello.resumed}`);
      if (r.hello.samples_received > seg.left_at) fail(`${seg.session_id}: session holds ${r.hello.samples_received} samples, ${seg.left_at} were sent`);
      seg.acked_received = Math.max(seg.acked_received, r.hello.samples_received);
      seg.acked_durable = Math.max(seg.acked_durable, r.hello.samples_durable);
      pos = seg.start_sample + r.hello.samples_received;
      conn = r.conn;
      continue;
    }
    if (how === 'dropped') {
      seg.end = 'bare_disconnect';
      fail(`${seg.session_id}: connection ended without done (${seg.dropped})`);
      if (PHASE === 'spread') break;
    } else {
      checkDone(seg);
      seg.end = seg.done.reason === 'going_away' ? 'going_away' : 'completed';
      if (seg.end === 'completed') break;
    }
    if (PHASE === 'spread') { fail(`${seg.session_id}: ended ${seg.end} without a restart`); break; }
    // Drained (or dropped): resume while the session is live, else continue
    // in a new session from what this one holds.
    const deadline = Date.now() + RESUME_RETRY_SECONDS * 1000;
    let holds = seg.done ? seg.done.samples : seg.acked_received;
    let final = false;
    while (Date.now() < deadline) {
      const p = await probe(`/api/audio/sessions/${seg.session_id}`);
      const status = p.body && p.body.status ? p.body.status : null;
      const step = { at_ms: Date.now(), http: p.status, session: status };
      seg.after_end.push(step);
      if (p.status === 200 && status === 'live') {
        const r = await openSession(joinUrl(seg.session_id));
        step.resume = r.conn ? { resumed: r.hello.resumed, samples_received: r.hello.samples_received } : r.why;
        if (r.conn) {
          holds = r.hello.samples_received;
          pos = seg.start_sample + holds;
          conn = r.conn;
          break;
        }
      } else if (p.status === 200) {
        if (p.body.samples !== undefined) holds = seg.done ? holds : p.body.samples;
        final = true;
        break;
      }
      await sleep(RETRY_PAUSE_MS);
    }
    if (conn) continue;
    seg.final_seen = final;
    pos = seg.start_sample + holds;
    if (pos >= audio.total) break; // the drain's flush took the last samples: nothing left to send
    ({ seg, conn } = await openSegment(pos));
    if (!conn) fail(`no new session could be opened after ${OPEN_RETRIES + 1} attempts`);
  }
  const last = rec.segments[rec.segments.length - 1];
  const covered = last && last.done && last.start_sample + last.done.samples === audio.total;
  if (!covered) { rec.outcome = 'incomplete'; fail('the stream never reached its end in a session'); }
  else if (rec.segments.length > 1) rec.outcome = 'completed_after_continuation';
  else rec.outcome = last.end === 'completed' ? 'completed' : 'completed_at_drain';
  if (rec.failures.length) failures.add(1);
  return rec;
}

/** A /stream conversion; resolves with its record. */
function stream(index, audio) {
  const rec = {
    kind: 'stream', phase: PHASE, index, rate: audio.src.rate, channels: audio.src.channels,
    offset_bytes: audio.offset, total_samples: audio.total, failures: [], outcome: null,
  };
  const fail = (what) => { rec.failures.push(what); console.warn(`stream ${index}: ${what}`); };
  const block = defaultBlockSize(audio.src.rate);
  return new Promise((resolve) => {
    const c = new Conn(`ws://${TARGET}/stream`);
    let pos = 0;
    let t0 = 0;
    let timer = null;
    let header = false;
    let frames = 0;
    let bytes = 0;
    const finish = () => {
      if (timer !== null) clearTimeout(timer);
      timer = null;
      c.close();
      rec.sent_samples = pos;
      rec.frames = frames;
      if (rec.failures.length) failures.add(1);
      resolve(rec);
    };
    const tick = () => {
      timer = null;
      const due = audio.due(t0, Date.now());
      while (pos < due) {
        const n = Math.min(audio.chunkFrames, due - pos);
        if (!c.send(audio.slice(pos, n))) return;
        pos += n;
      }
      if (pos >= audio.total) { c.send(JSON.stringify({ type: 'end' })); return; }
      timer = setTimeout(tick, Math.max(0, t0 + ((pos / audio.chunkFrames) * CHUNK_MS) - Date.now()));
    };
    c.ws.onopen = () => {
      c.send(streamingWavHeader(audio.src.rate, audio.src.channels));
      t0 = Date.now();
      tick();
    };
    const guard = setTimeout(() => { rec.outcome = 'timeout'; fail('no done in time'); finish(); },
      (audio.total / audio.src.rate) * 1000 + OPEN_TIMEOUT_MS + DONE_TIMEOUT_MS);
    c.onMessage = (e) => {
      if (typeof e.data !== 'string') {
        bytes += e.data.byteLength;
        if (!header) { header = true; if (e.data.byteLength !== STREAM_HEADER_BYTES) fail('bad stream header'); } else frames += 1;
        return;
      }
      const m = JSON.parse(e.data);
      if (m.type === 'error') { rec.error = m.code; return; }
      if (m.type !== 'done') return;
      clearTimeout(guard);
      if (timer !== null) clearTimeout(timer);
      timer = null;
      rec.done = m;
      rec.session_id = m.session_id;
      if (m.samples > pos) fail(`done says ${m.samples} samples, ${pos} sent`);
      if (m.reason === 'complete' && m.samples !== audio.total) fail(`complete with ${m.samples} of ${audio.total} samples`);
      if (m.frames !== frames || frames !== Math.ceil(m.samples / block)) fail(`done says ${m.frames} frames, ${frames} received`);
      if (m.bytes_out !== bytes) fail(`done says ${m.bytes_out} bytes out, ${bytes} received`);
      if (m.md5 !== audio.md5(0, m.samples)) fail("done's md5 is not that of the samples sent");
      c.onMessage = null;
      c.waitEnd(CLOSE_WAIT_MS).then(() => {
        rec.close_code = c.closeCode;
        if (m.reason === 'complete') rec.outcome = 'completed';
        else if (m.reason === 'going_away') {
          rec.outcome = 'going_away';
          if (PHASE === 'spread') fail('going_away without a restart');
          if (c.closeCode !== null && !DRAIN_CLOSE_CODES.includes(c.closeCode)) fail(`going_away with close ${c.closeCode}`);
        } else { rec.outcome = m.reason; fail(`done with reason ${m.reason}`); }
        finish();
      });
    };
    c.onEnd = () => {
      clearTimeout(guard);
      rec.outcome = 'bare_disconnect';
      rec.close_code = c.closeCode;
      fail(`ended without done (${c.error || `close ${c.closeCode}`})`);
      finish();
    };
  });
}

function seconds() {
  if (PHASE === 'spread') return SPREAD_SECONDS;
  return MIN_SECONDS + Math.random() * Math.max(0, MAX_SECONDS - MIN_SECONDS);
}

async function client(i) {
  await sleep(Math.random() * START_SPREAD_MS);
  let rec;
  if (i < SESSIONS) {
    const audio = new Audio(SPEECH, seconds());
    const resumes = PHASE === 'spread' && i < Math.round(SESSIONS * RESUME_FRACTION);
    const leaveAt = resumes ? Math.floor(audio.total * (0.3 + 0.4 * Math.random())) : null;
    rec = await producer(i, audio, leaveAt);
  } else {
    rec = await stream(i - SESSIONS, new Audio(MUSIC, seconds()));
  }
  console.log(RECORD_PREFIX + JSON.stringify(rec));
}

export default async function () {
  const first = exec.scenario.iterationInTest * PER_VU;
  const all = [];
  for (let i = first; i < Math.min(first + PER_VU, SESSIONS + STREAMS); i++) all.push(client(i));
  await Promise.all(all);
}
