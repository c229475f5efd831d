// docs/asyncapi.yaml as the tests use it: parsed by the official parser
// (@asyncapi/parser), its payload schemas compiled by ajv, and the lookups
// the live checks need (which messages an operation sends, the close code
// an enum value documents).

import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Parser } from '@asyncapi/parser';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';

const here = dirname(fileURLToPath(import.meta.url));

/** Where the document is; FLACSTREAM_ASYNCAPI overrides it. */
export const ASYNCAPI_PATH = process.env.FLACSTREAM_ASYNCAPI
  || resolve(here, '../../docs/asyncapi.yaml');

/**
 * The schema format every payload must use: AsyncAPI's own, a superset of
 * JSON Schema draft-07, so ajv's draft-07 class checks it (`Ajv` below).
 */
export const ASYNCAPI_SCHEMA_FORMAT = /^application\/vnd\.aai\.asyncapi(\+json|\+yaml)?;version=3\.0\.0$/;

/** Severity of a diagnostic the parser reports as an error (Spectral's scale). */
export const SEVERITY_ERROR = 0;

let parsed;

/** Parses the document once: `{ document, diagnostics }`. */
export async function parseAsyncApi() {
  if (!parsed) {
    const source = readFileSync(ASYNCAPI_PATH, 'utf8');
    parsed = new Parser().parse(source, { source: ASYNCAPI_PATH });
  }
  return parsed;
}

/** The parsed document; throws with the error diagnostics if it has none. */
export async function asyncApiDocument() {
  const { document, diagnostics } = await parseAsyncApi();
  if (!document) {
    const errors = diagnostics.filter((d) => d.severity === SEVERITY_ERROR);
    throw new Error(`docs/asyncapi.yaml does not parse:\n${formatDiagnostics(errors)}`);
  }
  return document;
}

/** One line per diagnostic: severity, rule, path, message. */
export function formatDiagnostics(diagnostics) {
  return diagnostics
    .map((d) => `  [${d.severity}] ${d.code} at ${d.path.join('.') || '(root)'}: ${d.message}`)
    .join('\n');
}

/** Every key starting with `x-` anywhere in `value`. */
function extensionKeys(value, found = new Set()) {
  if (Array.isArray(value)) {
    for (const item of value) extensionKeys(item, found);
  } else if (value && typeof value === 'object') {
    for (const [key, inner] of Object.entries(value)) {
      if (key.startsWith('x-')) found.add(key);
      extensionKeys(inner, found);
    }
  }
  return found;
}

/**
 * A strict draft-07 ajv for `schemas`: specification extensions (`x-…`,
 * including the parser's own `x-parser-…` ids) are annotations, so they are
 * declared as keywords that validate nothing; any other unknown keyword is
 * a mistake in the document and fails the compile.
 */
export function makeAjv(schemas) {
  // strictRequired is off: it refuses `then: { required: [...] }`, whose
  // properties are defined beside the `if`, not inside the `then`.
  const ajv = new Ajv({ allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true });
  addFormats(ajv);
  for (const key of extensionKeys(schemas)) ajv.addKeyword(key);
  return ajv;
}

/** Ajv's errors as one readable string. */
export function formatAjvErrors(errors) {
  return (errors || [])
    .map((e) => `${e.instancePath || '(root)'} ${e.message}${e.params ? ` ${JSON.stringify(e.params)}` : ''}`)
    .join('; ');
}

/**
 * The document's text messages (those whose payload is a JSON object with a
 * constant `type`), with compiled validators: a Map from message id to
 * `{ id, type, validate }`.
 */
export async function jsonMessages() {
  const document = await asyncApiDocument();
  const messages = document.messages().all();
  const ajv = makeAjv(messages.map((m) => m.payload()?.json()));
  const out = new Map();
  for (const message of messages) {
    const schema = message.payload()?.json();
    const type = schema?.properties?.type?.const;
    if (schema?.type !== 'object' || typeof type !== 'string') continue;
    out.set(message.id(), { id: message.id(), type, validate: ajv.compile(schema) });
  }
  return out;
}

/** Ids of the messages operation `operationId` lists. */
export async function operationMessageIds(operationId) {
  const document = await asyncApiDocument();
  const operation = document.operations().get(operationId);
  if (!operation) throw new Error(`docs/asyncapi.yaml has no operation ${operationId}`);
  return operation.messages().all().map((m) => m.id());
}

/** A schema of `components.schemas`, as JSON. */
export async function componentSchema(name) {
  const document = await asyncApiDocument();
  const schema = document.components().schemas().get(name);
  if (!schema) throw new Error(`docs/asyncapi.yaml has no components.schemas.${name}`);
  return schema.json();
}

/** The first example of a message, as the document gives it. */
export async function messageExample(messageId) {
  const document = await asyncApiDocument();
  const message = document.messages().all().find((m) => m.id() === messageId);
  if (!message) throw new Error(`docs/asyncapi.yaml has no message ${messageId}`);
  const example = message.examples().all()[0];
  if (!example) throw new Error(`message ${messageId} has no example`);
  return example.payload();
}

/** The ws binding of channel `channelId`: `{ method, query, headers }`. */
export async function wsBinding(channelId) {
  const document = await asyncApiDocument();
  const channel = document.channels().get(channelId);
  if (!channel) throw new Error(`docs/asyncapi.yaml has no channel ${channelId}`);
  const binding = channel.bindings().get('ws');
  if (!binding) throw new Error(`channel ${channelId} has no ws binding`);
  return binding.value();
}
