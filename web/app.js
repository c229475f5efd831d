// flacstream's browser page: convert a WAV file over /stream (any other
// audio file with one POST /convert), and record the
// microphone into a recorded session over /api/ws/audio. No dependencies.
//
// The server is this page's origin. For trying the page from another origin
// (a static file server during development), `?server=host:port` (or a full
// http(s):// URL) points the WebSockets and HTTP requests elsewhere; the
// server must list that origin in --allowed-origins.
//
// With authentication on, open the page as `/#token=<token>` (a token from
// POST /api/tokens, scoped to a user; the fragment never reaches a server).
// The token goes in the WebSocket protocol list and in Authorization headers.

const CHUNK_BYTES = 64 * 1024;        // WAV bytes per binary message
const HIGH_WATER_BYTES = 1 << 20;     // wait while this much is queued in the socket
const CONNECT_TIMEOUT_MS = 15000;     // WebSocket open, first `session` message
const FINISH_TIMEOUT_MS = 120000;     // after the last byte: `done` and the close
const FLUSH_TIMEOUT_MS = 2000;        // the worklet handing over its last samples
const CLOSE_SESSION_TIMEOUT_MS = 30000;
const ANALYSIS_POLLS = 40;            // the final analysis is stored moments after `done`
const ANALYSIS_POLL_MS = 250;
const SILENCES_SHOWN = 5;

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- server URLs

function serverBase() {
  const param = new URLSearchParams(location.search).get('server');
  if (!param) return new URL('/', location.href);
  const text = /^[a-z][a-z0-9+.-]*:\/\//i.test(param) ? param : `${location.protocol}//${param}`;
  const url = new URL('/', text);
  if (url.protocol === 'ws:') url.protocol = 'http:';
  if (url.protocol === 'wss:') url.protocol = 'https:';
  return url;
}

const BASE = serverBase();
const TOKEN = new URLSearchParams(location.hash.slice(1)).get('token');
const SAME_ORIGIN = BASE.origin === location.origin;

function httpUrl(path) {
  return new URL(path, BASE).href;
}

/** Headers for the server's HTTP API: the token, if the page has one. */
function authHeaders() {
  return TOKEN ? { Authorization: `Bearer ${TOKEN}` } : {};
}

function wsUrl(path, params) {
  const url = new URL(path, BASE);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  for (const [key, value] of Object.entries(params || {})) url.searchParams.set(key, String(value));
  return url.href;
}

// ---------------------------------------------------------------- helpers

class ReadableError extends Error {}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves like `promise`, or rejects with `message` after `ms`. */
function withTimeout(promise, ms, message) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new ReadableError(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function describeError(error) {
  if (error instanceof ReadableError) return error.message;
  if (error && error.name === 'NotAllowedError') return 'Microphone access was denied. Allow it in the browser and try again.';
  if (error && error.name === 'NotFoundError') return 'No microphone was found.';
  if (error && error.name === 'NotReadableError') return 'The microphone is in use by another program or could not be opened.';
  return `Unexpected error: ${error && error.message ? error.message : error}`;
}

function serverError(message) {
  return `${message.code || 'error'}: ${message.message || 'no details'}`;
}

function closeText(event) {
  const reason = event.reason ? `: ${event.reason}` : '';
  if (event.code === 1006) return 'the connection to the server was lost';
  return `the server closed the connection (code ${event.code}${reason})`;
}

function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1024 * 1024)).toFixed(2)} MiB`;
}

function formatSeconds(seconds) {
  const tenths = Math.floor(seconds * 10);
  const minutes = Math.floor(tenths / 600);
  const rest = ((tenths % 600) / 10).toFixed(1).padStart(4, '0');
  return `${minutes}:${rest}`;
}

function setStatus(element, text, kind) {
  element.textContent = text;
  element.classList.toggle('error', kind === 'error');
  element.classList.toggle('ok', kind === 'ok');
}

function offerDownload(link, blob, filename, label) {
  if (link.href && link.href.startsWith('blob:')) URL.revokeObjectURL(link.href);
  link.href = URL.createObjectURL(blob);
  link.download = filename;
  link.textContent = `${label} (${filename}, ${formatBytes(blob.size)})`;
  link.hidden = false;
}

function hideDownload(link) {
  if (link.href && link.href.startsWith('blob:')) URL.revokeObjectURL(link.href);
  link.removeAttribute('href');
  link.hidden = true;
}

/** Opens a WebSocket; rejects readably if it does not open. */
function openSocket(url) {
  return new Promise((resolve, reject) => {
    // The server selects flacstream.v1; the token rides along as a protocol.
    const ws = TOKEN ? new WebSocket(url, ['flacstream.v1', `flacstream.token.${TOKEN}`])
      : new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    const timer = setTimeout(() => {
      ws.close();
      reject(new ReadableError('Could not connect to the server: no answer.'));
    }, CONNECT_TIMEOUT_MS);
    ws.addEventListener('open', () => {
      clearTimeout(timer);
      resolve(ws);
    }, { once: true });
    ws.addEventListener('close', () => {
      clearTimeout(timer);
      reject(new ReadableError('Could not connect to the server: it refused the connection ' +
        '(it may be busy or shutting down) or it is unreachable.'));
    }, { once: true });
  });
}

function base64Bytes(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

async function httpError(response) {
  try {
    const body = await response.json();
    if (body && body.code) return serverError(body);
  } catch (_) { /* not JSON */ }
  return `HTTP ${response.status} ${response.statusText}`.trim();
}

// ---------------------------------------------------------------- convert

const convertUi = {
  form: $('convert-form'),
  file: $('file'),
  level: $('compression'),
  button: $('convert'),
  progress: $('convert-progress'),
  bytes: $('convert-bytes'),
  status: $('convert-status'),
  download: $('convert-download'),
};

function flacName(name) {
  const stem = name.replace(/\.[A-Za-z0-9]{1,5}$/, '') || 'audio';
  return `${stem}.flac`;
}

/** Whether the file starts like a WAV (RIFF, RIFX or RF64): those stream
 *  over /stream as they are read; anything else goes to POST /convert,
 *  which recognises the format from the content and decodes it. */
async function looksLikeWav(file) {
  const head = new Uint8Array(await file.slice(0, 4).arrayBuffer());
  const magic = String.fromCharCode(...head);
  return magic === 'RIFF' || magic === 'RIFX' || magic === 'RF64';
}

/** Converts any other audio file with one POST /convert (XHR, for upload
 *  progress). The answer's STREAMINFO is final; its headers say what the
 *  source was and whether the FLAC holds it exactly. */
function convertUpload(file, level) {
  const ui = convertUi;
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', httpUrl(`/convert?level=${encodeURIComponent(level)}`));
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    xhr.responseType = 'arraybuffer';
    xhr.timeout = FINISH_TIMEOUT_MS;
    xhr.upload.addEventListener('progress', (event) => {
      ui.progress.value = event.total ? event.loaded / event.total : 0;
      ui.bytes.textContent = `Sent ${formatBytes(event.loaded)} of ${formatBytes(file.size)}`;
    });
    xhr.addEventListener('progress', (event) => {
      ui.bytes.textContent = `Sent ${formatBytes(file.size)} of ${formatBytes(file.size)} · ` +
        `FLAC received ${formatBytes(event.loaded)}`;
    });
    xhr.addEventListener('load', () => {
      if (xhr.status !== 200) {
        let message = { code: `HTTP ${xhr.status}`, message: 'no details' };
        try {
          message = JSON.parse(new TextDecoder().decode(xhr.response));
        } catch (_) { /* not JSON */ }
        reject(new ReadableError(serverError(message)));
        return;
      }
      resolve({
        flac: new Uint8Array(xhr.response),
        source: xhr.getResponseHeader('Flacstream-Source-Codec') || 'unknown',
        lossless: xhr.getResponseHeader('Flacstream-Lossless') === 'true',
      });
    });
    xhr.addEventListener('error', () => reject(new ReadableError('The connection to the server was lost.')));
    xhr.addEventListener('timeout', () => reject(new ReadableError('The server did not finish the conversion in time.')));
    setStatus(ui.status, `Sending ${file.name}…`);
    xhr.send(file);
  });
}

/** Sample rate, channels, bits and total samples from a FLAC's STREAMINFO. */
function streamInfo(flac) {
  if (flac.length < 42) throw new ReadableError('The server\'s answer is not a FLAC file.');
  const b = flac.subarray(18, 26);
  const rate = (b[0] << 12) | (b[1] << 4) | (b[2] >> 4);
  const channels = ((b[2] >> 1) & 7) + 1;
  const bits = (((b[2] & 1) << 4) | (b[3] >> 4)) + 1;
  const samples = (b[3] & 0x0f) * 2 ** 32 + ((b[4] << 24) >>> 0) + (b[5] << 16) + (b[6] << 8) + b[7];
  return { rate, channels, bits, samples };
}

async function convert(file, level) {
  const ui = convertUi;
  const total = file.size;
  let sent = 0;
  let flacBytes = 0;
  let flacMessages = 0;
  const parts = [];
  let done = null;
  let failure = null;

  const show = (ws) => {
    const left = ws ? ws.bufferedAmount : 0;
    const out = Math.max(0, sent - left);
    ui.progress.value = total ? out / total : 1;
    ui.bytes.textContent = `Sent ${formatBytes(out)} of ${formatBytes(total)} · ` +
      `FLAC received ${formatBytes(flacBytes)} in ${flacMessages} message${flacMessages === 1 ? '' : 's'}`;
  };

  setStatus(ui.status, `Connecting to ${BASE.host}…`);
  show(null);
  const ws = await openSocket(wsUrl('/stream', { level }));
  const closed = new Promise((resolve) => ws.addEventListener('close', resolve, { once: true }));
  ws.addEventListener('message', (event) => {
    if (typeof event.data !== 'string') {
      parts.push(new Uint8Array(event.data));
      flacBytes += event.data.byteLength;
      flacMessages += 1;
      show(ws);
      return;
    }
    let message;
    try {
      message = JSON.parse(event.data);
    } catch (_) {
      failure = `The server sent an unreadable message: ${event.data.slice(0, 200)}`;
      return;
    }
    if (message.type === 'done') done = message;
    else if (message.type === 'error') failure = serverError(message);
  });

  setStatus(ui.status, `Sending ${file.name}…`);
  for (let offset = 0; offset < total; offset += CHUNK_BYTES) {
    if (ws.readyState !== WebSocket.OPEN || done || failure) break;
    const chunk = await file.slice(offset, offset + CHUNK_BYTES).arrayBuffer();
    while (ws.readyState === WebSocket.OPEN && ws.bufferedAmount > HIGH_WATER_BYTES) {
      await sleep(10);
      show(ws);
    }
    if (ws.readyState !== WebSocket.OPEN) break;
    ws.send(chunk);
    sent += chunk.byteLength;
    show(ws);
  }
  if (ws.readyState === WebSocket.OPEN && !done && !failure) {
    ws.send(JSON.stringify({ type: 'end' }));
    setStatus(ui.status, 'All sent; waiting for the last FLAC frames…');
  }

  const drainTimer = setInterval(() => show(ws), 100);
  let closeEvent;
  try {
    closeEvent = await withTimeout(closed, FINISH_TIMEOUT_MS,
      'The server did not finish the conversion in time.');
  } catch (error) {
    ws.close();
    throw error;
  } finally {
    clearInterval(drainTimer);
    show(ws);
  }

  if (failure) throw new ReadableError(failure);
  if (!done) throw new ReadableError(`The conversion did not finish: ${closeText(closeEvent)}.`);

  const flac = new Uint8Array(flacBytes);
  let at = 0;
  for (const part of parts) {
    flac.set(part, at);
    at += part.length;
  }
  const info = base64Bytes(done.streaminfo || '');
  if (flac.length < 42 || info.length !== 34) {
    throw new ReadableError('The server\'s answer is incomplete: no FLAC header or STREAMINFO.');
  }
  flac.set(info, 8); // the final STREAMINFO: total samples and MD5
  return { flac, done };
}

function describeDone(done, inBytes, outBytes) {
  const seconds = done.sample_rate ? done.samples / done.sample_rate : 0;
  const ratio = inBytes ? ` (${Math.round((100 * outBytes) / inBytes)}% of the WAV)` : '';
  return `${seconds.toFixed(2)} s, ${done.sample_rate} Hz, ${done.channels} channel` +
    `${done.channels === 1 ? '' : 's'}, ${done.bits_per_sample}-bit; ` +
    `${formatBytes(inBytes)} → ${formatBytes(outBytes)}${ratio}`;
}

function setupConvert() {
  const ui = convertUi;
  let busy = false;
  ui.file.addEventListener('change', () => {
    ui.button.disabled = busy || ui.file.files.length === 0;
    if (!busy) {
      setStatus(ui.status, ui.file.files.length ? `Ready to convert ${ui.file.files[0].name}.` : 'Choose an audio file.');
    }
  });
  ui.form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const file = ui.file.files[0];
    if (!file || busy) return;
    busy = true;
    ui.button.disabled = true;
    ui.file.disabled = true;
    hideDownload(ui.download);
    ui.form.setAttribute('aria-busy', 'true');
    try {
      if (!(await looksLikeWav(file))) {
        const { flac, source, lossless } = await convertUpload(file, ui.level.value);
        const info = streamInfo(flac);
        const seconds = info.rate ? info.samples / info.rate : 0;
        offerDownload(ui.download, new Blob([flac], { type: 'audio/flac' }), flacName(file.name), 'Download FLAC');
        const exact = lossless
          ? 'lossless: the FLAC holds exactly its samples'
          : `lossy source: the FLAC holds its ${info.bits}-bit decode`;
        setStatus(ui.status, `Done: ${seconds.toFixed(2)} s, ${info.rate} Hz, ${info.channels} channel` +
          `${info.channels === 1 ? '' : 's'}, ${info.bits}-bit from ${source} (${exact}); ` +
          `${formatBytes(file.size)} → ${formatBytes(flac.length)}.`, 'ok');
        return;
      }
      const { flac, done } = await convert(file, ui.level.value);
      const name = flacName(file.name);
      offerDownload(ui.download, new Blob([flac], { type: 'audio/flac' }), name, 'Download FLAC');
      const note = done.reason === 'going_away'
        ? ' The server was shutting down: the file holds the audio sent until then.' : '';
      const dropped = done.dropped_bytes ? ` ${done.dropped_bytes} trailing byte(s) of a partial sample were dropped.` : '';
      setStatus(ui.status, `Done: ${describeDone(done, file.size, flac.length)}.${note}${dropped}`, 'ok');
    } catch (error) {
      setStatus(ui.status, describeError(error), 'error');
    } finally {
      busy = false;
      ui.file.disabled = false;
      ui.button.disabled = ui.file.files.length === 0;
      ui.form.removeAttribute('aria-busy');
    }
  });
}

// ---------------------------------------------------------------- record

const recordUi = {
  record: $('record'),
  stop: $('stop'),
  status: $('record-status'),
  download: $('record-download'),
  elapsed: $('elapsed'),
  figures: $('record-figures'),
  analysis: $('record-analysis'),
  level: $('level'),
};

/** The recording in progress, or null. */
let recording = null;

function meterValue(peak) {
  if (!(peak > 0)) return 0;
  return Math.max(0, Math.min(1, 1 + (20 * Math.log10(peak)) / 60)); // -60 dBFS .. 0 dBFS
}

function showLevel(peak) {
  const ui = recordUi;
  ui.level.value = meterValue(peak);
  const db = peak > 0 ? `${Math.round(20 * Math.log10(peak))} dBFS` : 'silence';
  ui.level.textContent = db;
  ui.level.title = db;
}

function showFigures(rec) {
  const sent = formatSeconds(rec.samplesSent / rec.rate);
  const durable = formatSeconds(rec.samplesDurable / rec.rate);
  recordUi.figures.textContent = `Sent ${sent} · saved on the server's disk ${durable}`;
}

/** Resolves with the first `session` message; rejects on an error or close. */
function firstSession(ws) {
  return new Promise((resolve, reject) => {
    const onMessage = (event) => {
      if (typeof event.data !== 'string') return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      if (message.type === 'session') {
        cleanup();
        resolve(message);
      } else if (message.type === 'error') {
        cleanup();
        reject(new ReadableError(serverError(message)));
      }
    };
    const onClose = (event) => {
      cleanup();
      reject(new ReadableError(`No session: ${closeText(event)}.`));
    };
    const cleanup = () => {
      ws.removeEventListener('message', onMessage);
      ws.removeEventListener('close', onClose);
    };
    ws.addEventListener('message', onMessage);
    ws.addEventListener('close', onClose);
  });
}

function stopCapture(rec) {
  if (rec.captureStopped) return;
  rec.captureStopped = true;
  try { rec.source && rec.source.disconnect(); } catch (_) { /* already */ }
  try { rec.node && rec.node.disconnect(); } catch (_) { /* already */ }
  if (rec.stream) for (const track of rec.stream.getTracks()) track.stop();
  if (rec.ctx && rec.ctx.state !== 'closed') rec.ctx.close().catch(() => {});
  showLevel(0);
}

async function startRecording() {
  const ui = recordUi;
  if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new ReadableError('Recording needs a secure page (https://, or http://localhost) ' +
      'and a browser that allows microphone access.');
  }
  if (typeof AudioWorkletNode === 'undefined') {
    throw new ReadableError('This browser has no AudioWorklet; recording is not possible.');
  }
  const rec = {
    samplesSent: 0, samplesDurable: 0, rate: 0, sessionId: null, ws: null,
    ctx: null, stream: null, source: null, node: null, captureStopped: false,
    stopping: false, done: null, failure: null, flushed: null,
  };
  recording = rec;
  try {
    setStatus(ui.status, 'Asking for the microphone…');
    rec.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
      video: false,
    });
    rec.ctx = new AudioContext();
    rec.rate = Math.round(rec.ctx.sampleRate);
    await rec.ctx.audioWorklet.addModule(new URL('recorder-worklet.js', document.baseURI).href);

    setStatus(ui.status, `Connecting to ${BASE.host}…`);
    // The page chooses the id, so a proxy routing by session id sends this
    // open and the later close and download to the same server
    // (docs/protocol.md 9.1). randomUUID needs a secure context, as does
    // the microphone.
    // A session-scoped token names the id itself (the server uses it).
    const params = { sample_rate: rec.rate, channels: 1, format: 's16le' };
    if (!TOKEN) params.session_id = crypto.randomUUID();
    rec.ws = await openSocket(wsUrl('/api/ws/audio', params));
    const session = await withTimeout(firstSession(rec.ws), CONNECT_TIMEOUT_MS,
      'The server opened no session in time.');
    rec.sessionId = session.session_id;
    rec.done = watchSession(rec);
    rec.done.catch(() => {}); // handled where it is awaited, or by lostConnection

    rec.node = new AudioWorkletNode(rec.ctx, 'flacstream-recorder', {
      numberOfInputs: 1,
      numberOfOutputs: 1,
      outputChannelCount: [1],
      channelCount: 1,
      channelCountMode: 'explicit',
      channelInterpretation: 'speakers',
      processorOptions: { chunkFrames: Math.round(rec.rate / 10) },
    });
    rec.node.port.onmessage = (event) => onChunk(rec, event.data);
    rec.source = new MediaStreamAudioSourceNode(rec.ctx, { mediaStream: rec.stream });
    const mute = new GainNode(rec.ctx, { gain: 0 }); // keeps the worklet pulled, silently
    rec.source.connect(rec.node);
    rec.node.connect(mute).connect(rec.ctx.destination);
    await rec.ctx.resume();

    ui.stop.disabled = false;
    showFigures(rec);
    setStatus(ui.status, `Recording at ${rec.rate} Hz, 16-bit mono. Press Stop to finish.`);
  } catch (error) {
    rec.stopping = true; // the caller reports this error, not the socket's close
    stopCapture(rec);
    if (rec.ws) rec.ws.close();
    recording = null;
    throw error;
  }
}

/** Follows the session's messages; resolves with `done`, rejects otherwise. */
function watchSession(rec) {
  return new Promise((resolve, reject) => {
    rec.ws.addEventListener('message', (event) => {
      if (typeof event.data !== 'string') return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      if (message.type === 'ack') {
        rec.samplesDurable = message.samples_durable || 0;
        showFigures(rec);
      } else if (message.type === 'done') {
        rec.doneMessage = message;
      } else if (message.type === 'error') {
        rec.failure = serverError(message);
      }
    });
    rec.ws.addEventListener('close', (event) => {
      if (rec.doneMessage) {
        resolve(rec.doneMessage);
        if (!rec.stopping) endedByServer(rec, rec.doneMessage);
        return;
      }
      const why = rec.failure || closeText(event);
      reject(new ReadableError(why));
      if (!rec.stopping) lostConnection(rec, why);
    }, { once: true });
  });
}

function onChunk(rec, data) {
  if (data.flushed) {
    if (rec.flushed) rec.flushed();
    return;
  }
  if (rec.ws && rec.ws.readyState === WebSocket.OPEN) {
    rec.ws.send(data.pcm);
    rec.samplesSent += data.frames;
  }
  recordUi.elapsed.textContent = formatSeconds(rec.samplesSent / rec.rate);
  showFigures(rec);
  showLevel(data.peak);
}

/** The socket closed while recording: keep what the server has. */
async function lostConnection(rec, why) {
  rec.stopping = true;
  stopCapture(rec);
  recordUi.stop.disabled = true;
  setStatus(recordUi.status, `Recording stopped: ${why}. Saving what the server received…`, 'error');
  try {
    await closeByHttp(rec);
    await fetchRecording(rec, `Recording stopped: ${why}. The part the server received is saved.`);
  } catch (error) {
    setStatus(recordUi.status, `Recording stopped: ${why}. ${describeError(error)} ` +
      `The session is ${rec.sessionId}.`, 'error');
  } finally {
    finishUi();
  }
}

/** The server finalized the session by itself (drain, maximum length). */
async function endedByServer(rec, done) {
  rec.stopping = true;
  stopCapture(rec);
  recordUi.stop.disabled = true;
  const seconds = done.sample_rate ? done.samples / done.sample_rate : 0;
  try {
    await fetchRecording(rec, `Recording stopped: the server ended the session (${done.reason}) ` +
      `after ${seconds.toFixed(2)} s. The recording is saved.`);
  } catch (error) {
    setStatus(recordUi.status, `Recording stopped: the server ended the session (${done.reason}). ` +
      `${describeError(error)} The session is ${rec.sessionId}.`, 'error');
  } finally {
    finishUi();
  }
}

async function closeByHttp(rec) {
  let response;
  try {
    response = await withTimeout(
      fetch(httpUrl(`/api/audio/sessions/${rec.sessionId}/close`),
        { method: 'POST', headers: authHeaders() }),
      CLOSE_SESSION_TIMEOUT_MS, 'The server did not close the session in time.');
  } catch (error) {
    if (error instanceof ReadableError) throw error;
    if (SAME_ORIGIN) throw new ReadableError('The server cannot be reached to close the session.');
    return; // another origin (?server=) hides the answer; the request was still made
  }
  if (!response.ok && response.status !== 409) { // 409 session_closed: already finished
    throw new ReadableError(`Closing the session failed: ${await httpError(response)}`);
  }
}

async function fetchRecording(rec, prefix) {
  const url = httpUrl(`/api/audio/sessions/${rec.sessionId}/audio`);
  const kind = prefix.startsWith('Recording stopped') ? 'error' : 'ok';
  let response;
  try {
    response = await withTimeout(fetch(url, { headers: authHeaders() }), CLOSE_SESSION_TIMEOUT_MS,
      'The recording did not download in time.');
  } catch (error) {
    if (error instanceof ReadableError) throw error;
    if (SAME_ORIGIN) throw new ReadableError('The server cannot be reached to download the recording.');
    // The server is another origin (?server=) and answers without CORS:
    // link the file itself; the server names it `<id>.flac`.
    hideDownload(recordUi.download);
    const link = new URL(url);
    if (TOKEN) link.searchParams.set('access_token', TOKEN); // a link has no headers
    recordUi.download.href = link.href;
    recordUi.download.download = `${rec.sessionId}.flac`;
    recordUi.download.textContent = `Download recording (${rec.sessionId}.flac)`;
    recordUi.download.hidden = false;
    setStatus(recordUi.status, prefix, kind);
    return;
  }
  if (!response.ok) throw new ReadableError(`Downloading the recording failed: ${await httpError(response)}`);
  const blob = await response.blob();
  const stamp = new Date().toISOString().replace(/\..*$/, '').replace(/[-:]/g, '').replace('T', '-');
  offerDownload(recordUi.download, new Blob([blob], { type: 'audio/flac' }), `recording-${stamp}.flac`,
    'Download recording');
  setStatus(recordUi.status, prefix, kind);
}

async function stopRecording(rec) {
  const ui = recordUi;
  rec.stopping = true;
  ui.stop.disabled = true;
  setStatus(ui.status, 'Finishing: sending the last samples…');
  try {
    const flushed = new Promise((resolve) => { rec.flushed = resolve; });
    rec.node.port.postMessage('flush');
    await withTimeout(flushed, FLUSH_TIMEOUT_MS, 'The recorder did not hand over its last samples.')
      .catch(() => {}); // a lost tail of < 100 ms is not worth failing for
    stopCapture(rec);
    if (rec.ws.readyState !== WebSocket.OPEN) {
      await rec.done; // rejects with the reason
    }
    rec.ws.send(JSON.stringify({ type: 'control', action: 'close_session' }));
    setStatus(ui.status, 'Finishing: the server is writing the last frames…');
    const done = await withTimeout(rec.done, CLOSE_SESSION_TIMEOUT_MS,
      'The server did not finish the session in time.');
    rec.samplesDurable = done.samples; // finalized: the whole recording is on disk
    showFigures(rec);
    const seconds = done.sample_rate ? done.samples / done.sample_rate : 0;
    await fetchRecording(rec, `Recorded ${seconds.toFixed(2)} s at ${done.sample_rate} Hz ` +
      `(${formatBytes(done.bytes_out || 0)} of FLAC).`);
    await showAnalysis(rec);
  } catch (error) {
    stopCapture(rec);
    if (rec.ws) rec.ws.close();
    setStatus(ui.status, `Recording failed: ${describeError(error)}`, 'error');
  } finally {
    finishUi();
  }
}

/** Shows the finished session's loudness and silences (GET …/analysis). */
async function showAnalysis(rec) {
  const url = httpUrl(`/api/audio/sessions/${rec.sessionId}/analysis`);
  for (let i = 0; i < ANALYSIS_POLLS; i += 1) {
    let response;
    try {
      response = await withTimeout(fetch(url, { headers: authHeaders() }), CLOSE_SESSION_TIMEOUT_MS,
        'The analysis did not arrive in time.');
    } catch {
      return; // another origin without CORS, or the server is gone: the recording is what matters
    }
    if (response.ok) {
      const analysis = await response.json();
      if (analysis.complete) {
        recordUi.analysis.textContent = describeAnalysis(analysis);
        recordUi.analysis.hidden = false;
        return;
      }
    }
    await new Promise((resolve) => { setTimeout(resolve, ANALYSIS_POLL_MS); });
  }
}

function describeAnalysis(analysis) {
  const l = analysis.loudness;
  const fixed = (v, unit) => (v === null || v === undefined ? 'n/a' : `${v.toFixed(1)} ${unit}`);
  const loudness = `Loudness ${fixed(l.integrated_lufs, 'LUFS')} integrated, ` +
    `range ${fixed(l.loudness_range_lu, 'LU')}, true peak ${fixed(l.true_peak_dbtp, 'dBTP')}.`;
  const silences = analysis.silences || [];
  const shown = silences.slice(0, SILENCES_SHOWN)
    .map((s) => `${(s.start_ms / 1000).toFixed(1)}–${(s.end_ms / 1000).toFixed(1)} s`).join(', ');
  const more = silences.length > SILENCES_SHOWN ? ` and ${silences.length - SILENCES_SHOWN} more` : '';
  const silence = silences.length === 0
    ? `No silences (below ${analysis.silence_threshold_dbfs} dBFS for ${analysis.silence_min_ms / 1000} s).`
    : `Silences: ${shown}${more}.`;
  const clipped = analysis.clipped_samples ? ` ${analysis.clipped_samples} samples clipped.` : '';
  return `${loudness} ${silence}${clipped}`;
}

function finishUi() {
  recording = null;
  recordUi.record.disabled = false;
  recordUi.stop.disabled = true;
}

function setupRecord() {
  const ui = recordUi;
  ui.record.addEventListener('click', async () => {
    if (recording) return;
    ui.record.disabled = true;
    hideDownload(ui.download);
    ui.analysis.hidden = true;
    ui.elapsed.textContent = formatSeconds(0);
    try {
      await startRecording();
    } catch (error) {
      setStatus(ui.status, `Cannot record: ${describeError(error)}`, 'error');
      finishUi();
    }
  });
  ui.stop.addEventListener('click', () => {
    if (recording && !recording.stopping) stopRecording(recording);
  });
}

// ---------------------------------------------------------------- start

if (new URLSearchParams(location.search).has('server')) $('server').textContent = BASE.host;
setupConvert();
setupRecord();
