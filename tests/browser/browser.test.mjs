// End-to-end test of flacstream's browser page in Debian's Chromium, driven
// by playwright-core (no browser download: executablePath /usr/bin/chromium).
//
//   FLACSTREAM_URL=http://127.0.0.1:8080/ node --test browser.test.mjs
//
// Environment:
//   FLACSTREAM_URL         the running server (required; tests skip without it)
//   FLACSTREAM_PAGE_URL    where the page is loaded from, if not the server
//                          (e.g. a static server plus ?server=host:port)
//   CHROMIUM               the browser (default /usr/bin/chromium)
//   FLACSTREAM_SCREENSHOT  where the screenshot goes (default docs/screenshot.png;
//                          "" for none)
//
// Cases: the assets are served with their types; a 44.1 kHz stereo WAV is
// converted through the page and its FLAC decodes (`flac -t`, `flac -d`) to
// exactly the input samples; a float WAV shows the server's error; an MP3
// and a WebM/Opus file (made by lame and ffmpeg) go through POST /convert
// and come back as FLAC of their decode (`flac -t`, rate, bits, the MP3's
// gapless sample count); ~3 s are
// recorded from Chromium's fake microphone (a WAV this test writes) and the
// downloaded FLAC passes `flac -t` with a plausible duration.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { chromium } from 'playwright-core';

import { micSignal, readWav, testSignal, writeWav16, writeWavFloat } from './wav.mjs';

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));

const SERVER = process.env.FLACSTREAM_URL || '';
const PAGE = process.env.FLACSTREAM_PAGE_URL || SERVER;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SCREENSHOT = process.env.FLACSTREAM_SCREENSHOT ?? resolve(here, '../../docs/screenshot.png');
const skip = SERVER ? false : 'FLACSTREAM_URL is not set';

const STEP_MS = 30_000; // any one wait in the page
const TEST_MS = 120_000; // a whole test case

let work;
let browser;
let page;
const pageErrors = [];

/** Runs a tool with a bounded time; returns stdout. */
async function tool(cmd, args) {
  const { stdout } = await run(cmd, args, { timeout: 60_000, maxBuffer: 16 << 20 });
  return stdout;
}

async function flacInfo(path) {
  const out = await tool('metaflac', ['--show-total-samples', '--show-sample-rate', '--show-channels',
    '--show-bps', '--show-md5sum', path]);
  const [samples, rate, channels, bits, md5] = out.trim().split('\n');
  return { samples: Number(samples), rate: Number(rate), channels: Number(channels), bits: Number(bits), md5 };
}

/** Clicks a download link and saves what it offers. */
async function download(selector, path) {
  const link = page.locator(selector);
  await link.waitFor({ state: 'visible', timeout: STEP_MS });
  const [file] = await Promise.all([
    page.waitForEvent('download', { timeout: STEP_MS }),
    link.click({ timeout: STEP_MS }),
  ]);
  await file.saveAs(path);
  return file.suggestedFilename();
}

/** RMS of 16-bit mono PCM, and the amplitude of its component at `hz`. */
function measure(data, rate, hz) {
  const n = data.length / 2;
  let energy = 0;
  let re = 0;
  let im = 0;
  for (let i = 0; i < n; i++) {
    const x = data.readInt16LE(i * 2);
    energy += x * x;
    re += x * Math.cos((2 * Math.PI * hz * i) / rate);
    im += x * Math.sin((2 * Math.PI * hz * i) / rate);
  }
  return { rms: Math.sqrt(energy / n), tone: (2 * Math.hypot(re, im)) / n };
}

async function withDeadline(promise, ms, what) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

before(async () => {
  if (skip) return;
  work = mkdtempSync(join(tmpdir(), 'flacstream-browser-'));
  const mic = micSignal({ rate: 48000, seconds: 5 });
  writeWav16(join(work, 'mic.wav'), { rate: 48000, channels: 1, samples: mic.samples });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60_000,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
      `--use-file-for-fake-audio-capture=${join(work, 'mic.wav')}`,
    ],
  });
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 900, height: 1000 } });
  context.setDefaultTimeout(STEP_MS);
  page = await context.newPage();
  page.on('pageerror', (error) => pageErrors.push(String(error)));
  await page.goto(PAGE, { timeout: STEP_MS });
}, { timeout: 90_000 });

after(async () => {
  if (browser) {
    await withDeadline(browser.close(), 20_000, 'closing the browser').catch((error) => {
      console.error(String(error));
    });
  }
  if (work) rmSync(work, { recursive: true, force: true });
}, { timeout: 30_000 });

test('the server serves the page and its assets with their types', { skip, timeout: TEST_MS }, async () => {
  const expected = {
    '': 'text/html',
    'app.js': 'text/javascript',
    'recorder-worklet.js': 'text/javascript',
    'style.css': 'text/css',
  };
  for (const [path, type] of Object.entries(expected)) {
    const response = await fetch(new URL(path, SERVER), { signal: AbortSignal.timeout(STEP_MS) });
    assert.equal(response.status, 200, `/${path}`);
    assert.ok(response.headers.get('content-type').startsWith(type), `/${path}: ${response.headers.get('content-type')}`);
    assert.ok(response.headers.get('cache-control'), `/${path} has Cache-Control`);
    assert.ok((await response.text()).length > 100, `/${path} has a body`);
  }
  assert.equal(await page.title(), 'flacstream');
});

test('shows the server\'s error for a floating-point WAV', { skip, timeout: TEST_MS }, async () => {
  const input = join(work, 'float.wav');
  writeWavFloat(input, { rate: 48000, channels: 1, frames: 4800 });
  await page.setInputFiles('#file', input);
  await page.click('#convert');
  const status = page.locator('#convert-status.error');
  await status.waitFor({ state: 'visible', timeout: STEP_MS });
  assert.match(await status.textContent(), /^unsupported_format: \S/);
  assert.equal(await page.isHidden('#convert-download'), true);
  assert.equal(await page.isEnabled('#convert'), true, 'the form is usable again');
});

test('converts a 44.1 kHz stereo WAV to FLAC that decodes to the same samples', { skip, timeout: TEST_MS }, async () => {
  const input = join(work, 'tone.wav');
  const signal = testSignal({ rate: 44100, channels: 2, seconds: 4 });
  const data = writeWav16(input, { rate: 44100, channels: 2, samples: signal.samples });
  assert.ok(data.length > 9 * 64 * 1024, 'the input spans several 64 KiB messages');

  await page.setInputFiles('#file', input);
  await page.click('#convert');
  await page.locator('#convert-download').waitFor({ state: 'visible', timeout: STEP_MS });
  const status = await page.textContent('#convert-status');
  assert.match(status, /^Done: 4\.00 s, 44100 Hz, 2 channels, 16-bit/);
  assert.match(await page.textContent('#convert-bytes'), /^Sent 689\.1 KiB of 689\.1 KiB · FLAC received /);

  const flac = join(work, 'converted.flac');
  assert.equal(await download('#convert-download', flac), 'tone.flac');
  await tool('flac', ['--silent', '--test', flac]);
  const info = await flacInfo(flac);
  assert.deepEqual([info.samples, info.rate, info.channels, info.bits], [signal.frames, 44100, 2, 16]);
  assert.notEqual(info.md5, '0'.repeat(32), 'STREAMINFO was patched with the final MD5');

  const decoded = join(work, 'converted.wav');
  await tool('flac', ['--silent', '--decode', '--force', `--output-name=${decoded}`, flac]);
  const back = readWav(readFileSync(decoded));
  assert.deepEqual([back.rate, back.channels, back.bits], [44100, 2, 16]);
  assert.equal(back.data.length, data.length);
  assert.ok(back.data.equals(data), 'decoded samples equal the input');
});

test('converts an MP3 and a WebM/Opus file through /convert to FLAC of their decode', { skip, timeout: TEST_MS }, async () => {
  const input = join(work, 'music.wav');
  const signal = testSignal({ rate: 44100, channels: 2, seconds: 3 });
  writeWav16(input, { rate: 44100, channels: 2, samples: signal.samples });
  const mp3 = join(work, 'music.mp3');
  const webm = join(work, 'voice.webm');
  await tool('lame', ['--quiet', '-V', '2', input, mp3]);
  await tool('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', '-i', input, '-c:a', 'libopus',
    '-b:a', '64k', webm]);
  const cases = [
    // LAME's gapless tag: exactly the source's frames, at its rate.
    { file: mp3, name: 'music.flac', codec: 'mp3', rate: 44100, frames: signal.frames },
    // Opus decodes at 48 kHz; its frame count is checked in the Rust tests.
    { file: webm, name: 'voice.flac', codec: 'opus', rate: 48000, frames: null },
  ];
  for (const c of cases) {
    await page.setInputFiles('#file', c.file);
    await page.click('#convert');
    await page.locator('#convert-download').waitFor({ state: 'visible', timeout: STEP_MS });
    const status = await page.textContent('#convert-status');
    assert.match(status, new RegExp(`^Done: \\d+\\.\\d\\d s, ${c.rate} Hz, 2 channels, 24-bit from ${c.codec} \\(lossy source`));
    const flac = join(work, `${c.codec}.flac`);
    assert.equal(await download('#convert-download', flac), c.name);
    await tool('flac', ['--silent', '--test', flac]);
    const info = await flacInfo(flac);
    assert.deepEqual([info.rate, info.channels, info.bits], [c.rate, 2, 24]);
    if (c.frames !== null) assert.equal(info.samples, c.frames);
    else assert.ok(Math.abs(info.samples - 3 * 48000) < 48000 / 10, `${info.samples} samples`);
    assert.notEqual(info.md5, '0'.repeat(32));
  }
});

test('records ~3 s from the microphone and offers a FLAC of that length', { skip, timeout: TEST_MS }, async () => {
  await page.click('#record');
  await page.locator('#stop:enabled').waitFor({ timeout: STEP_MS });
  await page.waitForFunction(() => {
    const [m, s] = document.getElementById('elapsed').textContent.split(':');
    return Number(m) * 60 + Number(s) >= 3;
  }, null, { timeout: STEP_MS, polling: 100 });
  const level = await page.$eval('#level', (meter) => meter.value);
  assert.ok(level > 0.3, `the level meter moves (${level})`);
  assert.match(await page.textContent('#record-status'), /^Recording at \d+ Hz/);
  await page.click('#stop');

  const flac = join(work, 'recording.flac');
  const name = await download('#record-download', flac);
  assert.match(name, /\.flac$/);
  assert.match(await page.textContent('#record-status'), /^Recorded \d+\.\d\d s at \d+ Hz/);
  assert.ok(statSync(flac).size > 1000);
  await tool('flac', ['--silent', '--test', flac]);
  const info = await flacInfo(flac);
  const seconds = info.samples / info.rate;
  assert.ok(seconds >= 2 && seconds <= 6, `recorded ${seconds} s`);
  assert.deepEqual([info.channels, info.bits], [1, 16]);
  assert.notEqual(info.md5, '0'.repeat(32), 'the session was finalized');

  // The fake microphone plays mic.wav: a 330 Hz tone of amplitude 8000.
  const decoded = join(work, 'recording.wav');
  await tool('flac', ['--silent', '--decode', '--force', `--output-name=${decoded}`, flac]);
  const { data } = readWav(readFileSync(decoded));
  const { rms, tone } = measure(data, info.rate, 330);
  assert.ok(rms > 2000 && rms < 12000, `the recording has the microphone's level (RMS ${rms.toFixed(0)})`);
  assert.ok(tone > 4000, `the recording has the microphone's 330 Hz tone (amplitude ${tone.toFixed(0)})`);
  assert.equal(await page.isEnabled('#record'), true, 'ready to record again');

  // After Stop the page shows the session's analysis: a 330 Hz tone of
  // amplitude 8000 (−12.3 dBFS peak) reads about −16 LUFS, and the tone
  // leaves no silence.
  const analysis = await page.textContent('#record-analysis');
  const lufs = Number((/Loudness (-?\d+\.\d) LUFS integrated/.exec(analysis) || [])[1]);
  assert.ok(lufs > -19 && lufs < -13, `the page shows the loudness (${analysis})`);
  assert.match(analysis, /true peak -1\d\.\d dBTP/);
  assert.equal(await page.isHidden('#record-analysis'), false);

  if (SCREENSHOT && existsSync(dirname(SCREENSHOT))) {
    await page.screenshot({ path: SCREENSHOT, fullPage: true, timeout: STEP_MS });
  }
});

test('the page raised no script errors', { skip, timeout: TEST_MS }, () => {
  assert.deepEqual(pageErrors, []);
});
