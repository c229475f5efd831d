#!/usr/bin/env node
// Checks an OpenAPI document against the official OpenAPI 3.1 JSON schema,
// offline. For CI:
//
//   node tests/api/validate-openapi.mjs <file-or-url>
//   node tests/api/validate-openapi.mjs http://127.0.0.1:8080/openapi.json
//
// Exit status: 0 valid, 1 invalid (the errors on stderr), 2 not loadable
// (no such file, no 2xx answer, neither JSON nor YAML) or a usage error.
// FLACSTREAM_API_KEY, if set, is sent as `Authorization: Bearer` to a URL.

import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

import { loadOpenApi, validateOpenApi } from './openapi.mjs';

/** Validates `source`; answers the exit status. */
export async function main(argv) {
  const [source] = argv;
  if (!source || argv.length > 1) {
    console.error('usage: validate-openapi.mjs <file-or-url>');
    return 2;
  }
  const headers = process.env.FLACSTREAM_API_KEY ? { Authorization: `Bearer ${process.env.FLACSTREAM_API_KEY}` } : {};
  let loaded;
  try {
    loaded = await loadOpenApi(source, { headers });
  } catch (e) {
    console.error(`${source}: cannot load: ${e.message}`);
    return 2;
  }
  if (!loaded.document) {
    console.error(`${source}: HTTP ${loaded.status}`);
    return 2;
  }
  const { valid, errors } = await validateOpenApi(loaded.document);
  if (!valid) {
    console.error(`${source}: not a valid OpenAPI 3.1 document:`);
    for (const line of errors) console.error(`  ${line}`);
    return 1;
  }
  console.log(`${source}: valid OpenAPI ${loaded.document.openapi}`);
  return 0;
}

// Run as a program (also through npm's bin link), not when imported.
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  process.exitCode = await main(process.argv.slice(2));
}
