// The server's OpenAPI document (`${FLACSTREAM_URL}openapi.json`, or
// FLACSTREAM_OPENAPI: a file or URL) against the official OpenAPI 3.1 JSON
// schema, and its examples against the live server.
//
//   FLACSTREAM_URL=http://127.0.0.1:8080/ node --test openapi.test.mjs
//
// Skipped with "SKIPPED: FLACSTREAM_URL unset" without a server (unless
// FLACSTREAM_OPENAPI names a file: then only the schema check runs), and
// with "SKIPPED: no /openapi.json" while the server answers 404 there.
//
// The examples: every `example`/`examples` of a parameter (its own, its
// schema's, its content's) and of a request body media type (its own and its
// schema's) is sent to the server in a request of its own, the other
// parameters as in a base request, and must not be refused with 400, 404,
// 405 or 422. How the requests are made, and what is left out and why:
//
// * Base request: path parameters and required query/header parameters
//   take a fixture when their name says what they name (a session, user,
//   phrase or chunk id: the test first uploads a WAV as a session and as a
//   phrase to have real ones), else their first example, else the schema's
//   default, const or first enum value. So a query example is tried against
//   a resource that exists, and reaches the server's parameter checks.
// * A path parameter's own example is sent as it is. The resource it names
//   does not exist on a fresh server: a 404 whose JSON body has a "not
//   found" code (RESOURCE_CODES) means the route matched and the id was
//   taken, and passes; a 404 without one (no route) fails.
// * Binary request bodies (audio/*, video/*, application/octet-stream,
//   application/ogg, and multipart file fields) are sent as a generated WAV
//   in place of the example: a document cannot hold a real audio file, so
//   its example is a placeholder that the server would rightly refuse.
// * 401 passes when no credential was given (FLACSTREAM_API_KEY unset) and
//   the server runs with --auth; `POST /api/tokens` answers 404
//   `auth_disabled` while auth is off, which RESOURCE_CODES lets pass.
// * The WebSocket handshakes (the GET of each path docs/asyncapi.yaml has a
//   channel for, whatever its placeholders are called) are sent as real
//   WebSocket handshakes, not plain GETs (which are 400 `not_websocket` by
//   design): the base query is the channel's AsyncAPI query example (with a
//   fresh `session_id`), since OpenAPI marks none of those parameters
//   required and an example alone would lack `format`; path parameters name
//   a live session the test keeps open. A new recorded session that opens is
//   closed again. A 400 `not_websocket` on any other path is noted, not
//   failed.
// * EXCLUDED below: other operations not sent at all, each with its reason.
// * DELETE operations run last, so the fixtures exist for the others.
// * The document's `servers` are not used (the requests go to FLACSTREAM_URL),
//   except that a server URL that is a path (`/v1`) prefixes every path.
// * A GET or HEAD with a request body example is sent without the body
//   (fetch cannot send one), noted in the output.
// * A request that gets no answer at all (the connection fails) fails.

import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';

import { asyncApiDocument } from './asyncapi.mjs';
import { CREDENTIAL, HandshakeRefused, SERVER, authHeaders, connect as rawConnect, queryString } from './live.mjs';
import { baseValue, exampleCases, loadOpenApi, validateOpenApi } from './openapi.mjs';
import { tonePcm16, wavHeader16 } from './wav.mjs';

const SOURCE = process.env.FLACSTREAM_OPENAPI
  || (SERVER ? new URL('openapi.json', SERVER.endsWith('/') ? SERVER : `${SERVER}/`).toString() : '');

/** Statuses that mean the server refused what the example says. */
const REFUSED = new Set([400, 404, 405, 422]);

/** 404 codes that name a missing resource (the route and the request were fine). */
const RESOURCE_CODES = new Set([
  'session_not_found', 'phrase_not_found', 'chunk_not_found', 'no_recording',
  'no_analysis', 'no_original', 'auth_disabled',
]);

/** Operations never sent, as `METHOD path`, with the reason. */
const EXCLUDED = new Map([
  ['POST /admin/drain', 'starts a drain: the server under test would refuse everything after and exit'],
]);

/** Longest one request may take, in milliseconds. */
const REQUEST_MS = 30_000;

let loaded;
let skipReason = false;

before(async () => {
  if (!SOURCE) {
    skipReason = 'SKIPPED: FLACSTREAM_URL unset';
    console.log(skipReason);
    return;
  }
  loaded = await loadOpenApi(SOURCE, { headers: authHeaders() });
  if (loaded.status === 404) {
    skipReason = 'SKIPPED: no /openapi.json';
    console.log(skipReason);
  }
});

test('the OpenAPI document is valid against the official OpenAPI 3.1 schema', async (t) => {
  if (skipReason) return t.skip(skipReason);
  assert.ok(loaded.document, `${SOURCE} answered HTTP ${loaded.status}`);
  const { valid, errors } = await validateOpenApi(loaded.document);
  assert.ok(valid, `not a valid OpenAPI 3.1 document:\n${errors.join('\n')}`);
});

/** A small WAV (16 kHz mono, 0.25 s) for bodies and fixtures. */
function testWav() {
  const pcm = tonePcm16({ rate: 16000, channels: 1, frames: 4000 });
  return Buffer.concat([wavHeader16({ rate: 16000, channels: 1, dataBytes: pcm.length }), pcm]);
}

function serverUrl(path) {
  return new URL(path.replace(/^\//, ''), SERVER.endsWith('/') ? SERVER : `${SERVER}/`);
}

/** Sends a request; answers `{ status, json }` (the body read whole, JSON if it is). */
async function request(method, url, { headers = {}, body } = {}) {
  const response = await fetch(url, {
    method: method.toUpperCase(),
    headers: { ...authHeaders(), ...headers },
    body,
    signal: AbortSignal.timeout(REQUEST_MS),
  });
  const text = await response.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // Not JSON (FLAC, an empty 404): judged by the status alone.
  }
  return { status: response.status, json };
}

/**
 * Real ids on the server: a session uploaded as a WAV, and a phrase. An
 * upload refused (say 401: --auth and no FLACSTREAM_API_KEY) leaves that
 * fixture out, and path parameters then take their examples; `notes` says so.
 */
async function makeFixtures(notes) {
  const user = 'contract-test';
  const session = randomUUID();
  const fixtures = {};
  const upload = await request('post', serverUrl(`/upload?session_id=${session}&user_id=${user}`), {
    headers: { 'Content-Type': 'audio/wav' },
    body: testWav(),
  });
  if (upload.status === 201) {
    Object.assign(fixtures, { session, user, chunk: `${session}.1` });
  } else {
    notes.push(`fixture session not made: POST /upload answered ${upload.status} ${JSON.stringify(upload.json)}`);
  }
  const phrase = `phrase-${session.slice(0, 8)}`;
  const stored = await request('post', serverUrl(`/audio/user/${user}/phrase/${phrase}`), {
    headers: { 'Content-Type': 'audio/wav' },
    body: testWav(),
  });
  if (stored.status === 201) {
    Object.assign(fixtures, { user, phrase });
  } else {
    notes.push(`fixture phrase not made: POST /audio/user/…/phrase/… answered ${stored.status} ${JSON.stringify(stored.json)}`);
  }
  return fixtures;
}

/** The fixture a parameter's name points at, if any. */
function fixtureFor(parameter, fixtures) {
  if (parameter.in !== 'path') return undefined;
  const name = parameter.name.toLowerCase();
  if (name.includes('chunk')) return fixtures.chunk;
  if (name.includes('phrase') || name === 'p') return fixtures.phrase;
  if (name.includes('user') || name === 'u') return fixtures.user;
  if (name.includes('session') || name === 'id') return fixtures.session;
  return undefined;
}

const isBinaryType = (type) => /^(audio|video)\//.test(type) || ['application/octet-stream', 'application/ogg'].includes(type);

/** A request body for media type `type` from an example `value`. */
function encodeBody(type, value, media) {
  if (isBinaryType(type)) {
    return { body: testWav(), contentType: type.includes('*') ? 'audio/wav' : type };
  }
  if (type === 'multipart/form-data') {
    const form = new FormData();
    const properties = media?.schema?.properties || {};
    const isFile = (name) => {
      const p = properties[name] || {};
      return p.format === 'binary' || typeof p.contentMediaType === 'string' || p.contentEncoding === 'base64';
    };
    const fields = value && typeof value === 'object' ? value : {};
    const names = new Set([...Object.keys(fields), ...(media?.schema?.required || []).filter(isFile)]);
    for (const name of names) {
      if (isFile(name)) form.append(name, new Blob([testWav()], { type: 'audio/wav' }), 'example.wav');
      else form.append(name, typeof fields[name] === 'string' ? fields[name] : JSON.stringify(fields[name]));
    }
    return { body: form, contentType: null }; // fetch sets the boundary
  }
  if (/json/.test(type)) return { body: JSON.stringify(value), contentType: type };
  return { body: typeof value === 'string' ? value : JSON.stringify(value), contentType: type };
}

/** The URL and headers of a request with `values` (a Map parameter -> value). */
function buildRequest(path, values) {
  let filled = path;
  const query = new URLSearchParams();
  const headers = {};
  for (const [parameter, value] of values) {
    if (value === undefined) continue;
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    if (parameter.in === 'path') filled = filled.replace(`{${parameter.name}}`, encodeURIComponent(text));
    else if (parameter.in === 'query') {
      if (Array.isArray(value)) for (const v of value) query.append(parameter.name, String(v));
      else query.set(parameter.name, typeof value === 'string' ? value : String(value));
    } else if (parameter.in === 'header') headers[parameter.name] = text;
    else if (parameter.in === 'cookie') headers.Cookie = `${parameter.name}=${encodeURIComponent(text)}`;
  }
  const url = serverUrl(filled);
  url.search = query.toString();
  return { url, headers, unfilled: filled.match(/\{[^}]+\}/g) };
}

/** Judges one answer: a failure line, a note, or nothing. */
function judge(where, status, json, { failures, notes }) {
  if (status === 401 && !CREDENTIAL) {
    notes.push(`${where}: 401 (the server runs with --auth and no FLACSTREAM_API_KEY was given)`);
  } else if (status === 400 && json?.code === 'not_websocket') {
    notes.push(`${where}: 400 not_websocket (a WebSocket endpoint that docs/asyncapi.yaml does not list at this path)`);
  } else if (status === 404 && RESOURCE_CODES.has(json?.code)) {
    notes.push(`${where}: 404 ${json.code} (the resource does not exist here; the request was understood)`);
  } else if (REFUSED.has(status)) {
    failures.push(`${where}: HTTP ${status} ${JSON.stringify(json)}`);
  }
}

/**
 * A WebSocket handshake with one parameter example: the base query is the
 * AsyncAPI binding's example for the channel (a query the server takes
 * whole; OpenAPI marks no parameter of it required, so one example alone
 * would miss `format`), with a fresh `session_id`; path parameters name the
 * live fixture session. Upgraded is accepted; a new recorded session is
 * closed again (`close_session`).
 */
async function handshakeCase(channel, op, c, liveSession, log) {
  const query = { ...(channel.bindings().get('ws')?.value()?.query?.examples?.[0] || {}) };
  if ('session_id' in query) query.session_id = randomUUID();
  const headers = {};
  let path = op.path;
  const values = new Map();
  for (const parameter of op.parameters) {
    if (parameter.in === 'path') values.set(parameter, liveSession);
  }
  if (c.param) values.set(c.param, c.value);
  for (const [parameter, value] of values) {
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    if (parameter.in === 'path') path = path.replace(`{${parameter.name}}`, encodeURIComponent(text));
    else if (parameter.in === 'query') query[parameter.name] = value;
    else if (parameter.in === 'header') headers[parameter.name] = text;
  }
  const where = `GET ${op.path} ${c.label} -> ${path}${queryString(query)} (WebSocket)`;
  try {
    const conn = await rawConnect(where, path, query, { headers });
    if (channel.id() === 'audioSession') await conn.send(JSON.stringify({ type: 'control', action: 'close_session' }));
    await conn.close();
    return 101;
  } catch (e) {
    if (!(e instanceof HandshakeRefused)) {
      log.failures.push(`${where}: no answer (${e.message})`);
      return null;
    }
    judge(where, e.status, e.body, log);
    return e.status;
  }
}

test('every request example of the OpenAPI document is accepted by the server', async (t) => {
  if (skipReason) return t.skip(skipReason);
  if (!SERVER) return t.skip('SKIPPED: FLACSTREAM_URL unset');
  assert.ok(loaded.document, `${SOURCE} answered HTTP ${loaded.status}`);
  const { valid, resolved } = await validateOpenApi(loaded.document);
  assert.ok(valid, 'the document is not valid OpenAPI 3.1 (see the test before)');

  // Paths compared with their placeholders' names left out: OpenAPI may
  // call `{session_id}` `{id}`.
  const shape = (path) => path.replace(/\{[^}]*\}/g, '{}');
  const channels = new Map((await asyncApiDocument()).channels().all().map((c) => [shape(c.address()), c]));
  const log = { failures: [], notes: [] };
  const { failures, notes } = log;
  const fixtures = await makeFixtures(notes);
  // A live session for the join handshakes' path; closed at the end.
  const liveId = randomUUID();
  const live = await rawConnect('fixture live session', '/api/ws/audio', {
    format: 's16le', sample_rate: 8000, channels: 1, session_id: liveId,
  });
  // A server URL that is a path (`/`, `/v1`) prefixes every path.
  const prefix = (resolved.servers?.[0]?.url || '').startsWith('/') ? resolved.servers[0].url.replace(/\/$/, '') : '';
  const operations = exampleCases(resolved)
    .sort((a, b) => (a.method === 'delete') - (b.method === 'delete'));
  let sent = 0;
  for (const op of operations) {
    const key = `${op.method.toUpperCase()} ${op.path}`;
    if (op.cases.length === 0) continue;
    if (EXCLUDED.has(key)) {
      notes.push(`${key}: not sent (${EXCLUDED.get(key)})`);
      continue;
    }
    const channel = op.method === 'get' ? channels.get(shape(op.path)) : undefined;
    if (channel) {
      for (const c of op.cases) {
        if (await handshakeCase(channel, op, c, liveId, log) !== null) sent += 1;
      }
      continue;
    }
    const base = new Map();
    for (const parameter of op.parameters) {
      if (parameter.in === 'path' || parameter.required) base.set(parameter, baseValue(parameter, fixtureFor(parameter, fixtures)));
    }
    const bodyTypes = Object.entries(op.requestBody?.content || {});
    const baseBody = () => {
      if (!op.requestBody?.required || bodyTypes.length === 0) return null;
      const [type, media] = bodyTypes[0];
      const [first] = [media.example, ...Object.values(media.examples || {}).map((e) => e?.value)].filter((v) => v !== undefined);
      return encodeBody(type, first, media);
    };
    for (const c of op.cases) {
      const values = new Map(base);
      if (c.param) values.set(c.param, c.value);
      const { url, headers, unfilled } = buildRequest(`${prefix}${op.path}`, values);
      if (unfilled) {
        failures.push(`${key} ${c.label}: no value for ${unfilled.join(', ')} (give the path parameter an example)`);
        continue;
      }
      const where = `${key} ${c.label} -> ${url.pathname}${url.search}`;
      let encoded = c.body ? encodeBody(c.body.type, c.body.value, c.body.media) : baseBody();
      if (encoded && ['get', 'head'].includes(op.method)) {
        notes.push(`${where}: the request body is not sent (fetch sends none with ${op.method.toUpperCase()})`);
        encoded = null;
      }
      if (encoded?.contentType) headers['Content-Type'] = encoded.contentType;
      let answer;
      try {
        answer = await request(op.method, url, { headers, body: encoded?.body });
      } catch (e) {
        failures.push(`${where}: no answer (${e.message})`);
        continue;
      }
      sent += 1;
      judge(where, answer.status, answer.json, log);
    }
  }
  await live.close();
  await request('post', serverUrl(`/api/audio/sessions/${liveId}/close`)).catch(() => {});
  for (const note of notes) t.diagnostic(note);
  t.diagnostic(`${sent} example request(s) sent`);
  assert.deepEqual(failures, []);
});

test('validate-openapi takes a valid 3.1 document and refuses an invalid one', async () => {
  const good = {
    openapi: '3.1.0',
    info: { title: 't', version: '1' },
    paths: { '/healthz': { get: { responses: { 200: { description: 'up' } } } } },
  };
  assert.deepEqual((await validateOpenApi(good)).errors, []);
  const bad = { ...good, paths: { '/healthz': { get: { responses: { 200: { summary: 'no description' } } } } } };
  assert.equal((await validateOpenApi(bad)).valid, false);
  assert.equal((await validateOpenApi({ ...good, openapi: '3.0.3' })).valid, false, 'only 3.1 is taken');
});
