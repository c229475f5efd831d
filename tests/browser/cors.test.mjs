// CORS from a real browser: a page on a second origin, listed in
// --allowed-origins, calls /convert, /upload, the sessions API and
// /api/tokens with `fetch` and an API key (every call preflighted); a page
// on a third origin, not listed, cannot read any answer. Debian's Chromium,
// driven by playwright-core; the test starts its own server (with --auth)
// and two static origins on loopback, and stops them.
//
//   FLACSTREAM_BIN=../../target/release/flacstream node --test cors.test.mjs
//
// Environment: FLACSTREAM_BIN (default ../../target/release/flacstream),
// CHROMIUM (default /usr/bin/chromium).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const BIN = process.env.FLACSTREAM_BIN || resolve(here, '../../target/release/flacstream');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

let server; // the flacstream child process
let data;
let api; // http://127.0.0.1:PORT
let key;
const origins = []; // [listed, unlisted] static servers
let browser;

/** A static server for one origin: an empty page. */
async function staticOrigin() {
  const s = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>other origin</title>');
  });
  await new Promise((ok) => s.listen(0, '127.0.0.1', ok));
  return { server: s, url: `http://127.0.0.1:${s.address().port}` };
}

async function freePort() {
  const s = createServer();
  await new Promise((ok) => s.listen(0, '127.0.0.1', ok));
  const { port } = s.address();
  await new Promise((ok) => s.close(ok));
  return port;
}

before(async () => {
  const made = execFileSync(BIN, ['key', '--id', 'cors'], { encoding: 'utf8', timeout: 10_000 });
  key = made.match(/^key[^:]*: (\S+)/m)[1];
  const entry = made.match(/^entry[^:]*: (\S+)/m)[1];
  origins.push(await staticOrigin(), await staticOrigin());
  const port = await freePort();
  data = mkdtempSync(join(tmpdir(), 'flacstream-cors-'));
  api = `http://127.0.0.1:${port}`;
  server = spawn(BIN, ['--bind', `127.0.0.1:${port}`, '--data-dir', data, '--auth', '--api-keys', entry,
    '--allowed-origins', origins[0].url], { stdio: 'ignore' });
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      if ((await fetch(`${api}/healthz`)).ok) break;
    } catch { /* not up yet */ }
    if (Date.now() > deadline) throw new Error('the server did not start');
    await new Promise((ok) => setTimeout(ok, 200));
  }
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
});

after(async () => {
  await browser?.close();
  if (server && server.exitCode === null) {
    server.kill('SIGKILL');
    await new Promise((ok) => server.once('exit', ok));
  }
  for (const o of origins) o.server.close();
  if (data) rmSync(data, { recursive: true, force: true });
});

/** What the page does: every call the API offers a page, with the key. */
async function pageCalls({ api, key }) {
  // 0.5 s of 16-bit mono 16 kHz, a tone.
  const n = 8000;
  const wav = new DataView(new ArrayBuffer(44 + 2 * n));
  const text = (at, s) => [...s].forEach((c, i) => wav.setUint8(at + i, c.charCodeAt(0)));
  text(0, 'RIFF'); wav.setUint32(4, 36 + 2 * n, true); text(8, 'WAVEfmt ');
  wav.setUint32(16, 16, true); wav.setUint16(20, 1, true); wav.setUint16(22, 1, true);
  wav.setUint32(24, 16000, true); wav.setUint32(28, 32000, true); wav.setUint16(32, 2, true);
  wav.setUint16(34, 16, true); text(36, 'data'); wav.setUint32(40, 2 * n, true);
  for (let i = 0; i < n; i++) wav.setInt16(44 + 2 * i, Math.round(8000 * Math.sin(i / 7)), true);
  const auth = { Authorization: `Bearer ${key}` };
  const out = {};
  const head = (bytes) => String.fromCharCode(...new Uint8Array(bytes).slice(0, 4));

  let r = await fetch(`${api}/convert`, { method: 'POST', headers: { ...auth, 'Content-Type': 'audio/wav' }, body: wav.buffer });
  const flac = await r.arrayBuffer();
  out.convert = { status: r.status, magic: head(flac), lossless: r.headers.get('flacstream-lossless'),
    codec: r.headers.get('flacstream-source-codec'), requestId: r.headers.get('x-request-id'),
    totalSamples: Number(new DataView(flac).getBigUint64(18) & 0xfffffffffn) };

  r = await fetch(`${api}/upload`, { method: 'POST', headers: { ...auth, 'Content-Type': 'audio/wav' }, body: wav.buffer });
  const uploaded = await r.json();
  out.upload = { status: r.status, location: r.headers.get('location'), id: uploaded.session_id };
  const id = uploaded.session_id;

  r = await fetch(`${api}/api/audio/sessions/${id}`, { headers: auth });
  out.get = { status: r.status, samples: (await r.json()).samples };
  r = await fetch(`${api}/api/audio/sessions/${id}/audio`, { headers: auth });
  out.audio = { status: r.status, magic: head(await r.arrayBuffer()) };

  r = await fetch(`${api}/api/tokens`, { method: 'POST', headers: { ...auth, 'Content-Type': 'application/json' },
    body: JSON.stringify({ session_id: id, ttl_seconds: 60 }) });
  const { token } = await r.json();
  out.token = { status: r.status };
  r = await fetch(`${api}/api/audio/sessions/${id}`, { headers: { Authorization: `Bearer ${token}` } });
  out.withToken = { status: r.status };

  r = await fetch(`${api}/api/audio/sessions/${id}`, { method: 'DELETE', headers: auth });
  out.delete = { status: r.status };
  r = await fetch(`${api}/api/audio/sessions/${id}`, { headers: auth });
  out.afterDelete = { status: r.status, code: (await r.json()).code };
  return out;
}

test('a page on a listed origin converts, uploads, reads, tokens and deletes with fetch', { timeout: 90_000 }, async () => {
  const page = await browser.newPage();
  await page.goto(origins[0].url);
  const out = await page.evaluate(pageCalls, { api, key });
  assert.equal(out.convert.status, 200);
  assert.equal(out.convert.magic, 'fLaC');
  assert.equal(out.convert.totalSamples, 8000);
  assert.equal(out.convert.lossless, 'true', 'an exposed header');
  assert.equal(out.convert.codec, 'pcm');
  assert.ok(out.convert.requestId, 'X-Request-Id is exposed');
  assert.equal(out.upload.status, 201);
  assert.equal(out.upload.location, `/api/audio/sessions/${out.upload.id}`);
  assert.deepEqual(out.get, { status: 200, samples: 8000 });
  assert.deepEqual(out.audio, { status: 200, magic: 'fLaC' });
  assert.equal(out.token.status, 200);
  assert.equal(out.withToken.status, 200);
  assert.equal(out.delete.status, 204);
  assert.deepEqual(out.afterDelete, { status: 404, code: 'session_not_found' });
  await page.close();
});

test('a page on an origin that is not listed can read nothing; the server refuses it', { timeout: 60_000 }, async () => {
  const page = await browser.newPage();
  await page.goto(origins[1].url);
  const outcome = await page.evaluate(async ({ api, key }) => {
    try {
      const r = await fetch(`${api}/api/audio/sessions`, { headers: { Authorization: `Bearer ${key}` } });
      return `answered ${r.status}`;
    } catch (e) {
      return `${e.name}`;
    }
  }, { api, key });
  assert.equal(outcome, 'TypeError', 'the browser blocks the answer');
  await page.close();
  // What the server said, seen from outside a browser.
  const r = await fetch(`${api}/api/audio/sessions`, { headers: { Authorization: `Bearer ${key}`, Origin: origins[1].url } });
  assert.equal(r.status, 403);
  assert.equal((await r.json()).code, 'origin_not_allowed');
  assert.equal(r.headers.get('access-control-allow-origin'), null);
  const preflight = await fetch(`${api}/convert`, { method: 'OPTIONS', headers: {
    Origin: origins[1].url, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization' } });
  assert.equal(preflight.headers.get('access-control-allow-origin'), null);
});
