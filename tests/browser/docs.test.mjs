// The interactive API docs (/docs/, Swagger UI embedded in the binary) in
// Debian's Chromium, with every request that is not to the server aborted:
// the page must render every operation from /openapi.json with nothing
// from a CDN.
//
//   FLACSTREAM_URL=http://127.0.0.1:8080/ node --test docs.test.mjs
//
// Environment: FLACSTREAM_URL (the running server; skipped without it),
// CHROMIUM (default /usr/bin/chromium), FLACSTREAM_DOCS_SCREENSHOT (where
// the screenshot goes; none if unset; docs/api-docs.png is one).

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { chromium } from 'playwright-core';

const SERVER = process.env.FLACSTREAM_URL || '';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SCREENSHOT = process.env.FLACSTREAM_DOCS_SCREENSHOT || '';
const skip = SERVER ? false : 'SKIPPED: FLACSTREAM_URL unset';

test('/docs/ renders every operation offline, from the server alone', { skip, timeout: 90_000 }, async () => {
  const origin = new URL(SERVER).origin;
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const offOrigin = [];
    const errors = [];
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.route('**/*', (route) => {
      const url = route.request().url();
      if (new URL(url).origin === origin || url.startsWith('data:')) return route.continue();
      offOrigin.push(url);
      return route.abort();
    });
    const document = await (await fetch(new URL('/openapi.json', SERVER))).json();
    const operations = Object.values(document.paths)
      .reduce((n, item) => n + ['get', 'post', 'put', 'delete', 'patch'].filter((m) => item[m]).length, 0);

    await page.goto(new URL('/docs/', SERVER).href, { waitUntil: 'networkidle', timeout: 30_000 });
    await page.waitForSelector('.opblock', { timeout: 30_000 });
    const title = await page.textContent('.info .title');
    assert.match(title, /flacstream/);
    const blocks = await page.locator('.opblock').count();
    assert.equal(blocks, operations, 'one block per documented operation');
    assert.deepEqual(offOrigin, [], 'no request leaves the server');
    assert.deepEqual(errors, [], 'no console error');

    // One operation open, for the screenshot and to check it renders its
    // parameters.
    const convert = page.locator('#operations-conversion-convert');
    await convert.locator('.opblock-summary').click();
    await convert.locator('.parameters, .opblock-description-wrapper').first().waitFor({ timeout: 10_000 });
    if (SCREENSHOT) {
      await page.locator('#operations-tag-conversion').scrollIntoViewIfNeeded();
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.screenshot({ path: SCREENSHOT });
    }
  } finally {
    await browser.close();
  }
});
