// docs/asyncapi.yaml on its own (no server): the official parser reports no
// error, every message has an example and every example validates against
// its payload schema (ajv, draft-07: the AsyncAPI 3.0 schema format), the
// bindings' query and header schemas take their own examples, and every
// documented enum says what each of its values means.
//
//   node --test asyncapi.test.mjs

import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  ASYNCAPI_SCHEMA_FORMAT,
  SEVERITY_ERROR,
  asyncApiDocument,
  formatAjvErrors,
  formatDiagnostics,
  makeAjv,
  parseAsyncApi,
} from './asyncapi.mjs';

test('the official parser finds no error in docs/asyncapi.yaml', async (t) => {
  const { document, diagnostics } = await parseAsyncApi();
  const errors = diagnostics.filter((d) => d.severity === SEVERITY_ERROR);
  const others = diagnostics.filter((d) => d.severity !== SEVERITY_ERROR);
  if (others.length) t.diagnostic(`non-error diagnostics:\n${formatDiagnostics(others)}`);
  assert.deepEqual(errors.map((d) => `${d.code} at ${d.path.join('.')}: ${d.message}`), []);
  assert.ok(document, 'the parser returned no document');
  assert.equal(document.version(), '3.0.0');
});

test('every message has an example, and every example validates against its payload', async () => {
  const document = await asyncApiDocument();
  const messages = document.messages().all();
  assert.ok(messages.length > 0, 'no messages');
  const ajv = makeAjv(messages.map((m) => m.payload()?.json()));
  const failures = [];
  for (const message of messages) {
    const id = message.id();
    if (!ASYNCAPI_SCHEMA_FORMAT.test(message.schemaFormat())) {
      failures.push(`${id}: schema format ${message.schemaFormat()} is not AsyncAPI 3.0's (draft-07)`);
      continue;
    }
    const schema = message.payload()?.json();
    if (!schema) {
      failures.push(`${id}: no payload schema`);
      continue;
    }
    const validate = ajv.compile(schema);
    const examples = message.examples().all();
    if (examples.length === 0) failures.push(`${id}: no example`);
    for (const [i, example] of examples.entries()) {
      const name = example.name() || `#${i}`;
      if (!example.hasPayload()) {
        failures.push(`${id} example ${name}: no payload`);
      } else if (!validate(example.payload())) {
        failures.push(`${id} example ${name}: ${formatAjvErrors(validate.errors)}`);
      }
    }
  }
  assert.deepEqual(failures, []);
});

test('each text message type names exactly one message', async () => {
  const document = await asyncApiDocument();
  const byType = new Map();
  for (const message of document.messages().all()) {
    const schema = message.payload()?.json();
    if (schema?.type !== 'object') continue;
    const type = schema.properties?.type?.const;
    assert.equal(typeof type, 'string', `${message.id()}: a JSON message needs a constant "type"`);
    assert.ok(schema.required?.includes('type'), `${message.id()}: "type" must be required`);
    const ids = byType.get(type) || [];
    ids.push(message.id());
    byType.set(type, ids);
  }
  for (const [type, ids] of byType) assert.equal(ids.length, 1, `type ${type} is used by ${ids.join(', ')}`);
});

test('every operation has messages and every message belongs to an operation', async () => {
  const document = await asyncApiDocument();
  const used = new Set();
  for (const operation of document.operations().all()) {
    const ids = operation.messages().all().map((m) => m.id());
    assert.ok(ids.length > 0, `operation ${operation.id()} lists no message`);
    for (const id of ids) used.add(id);
  }
  const unused = document.messages().all().map((m) => m.id()).filter((id) => !used.has(id));
  assert.deepEqual(unused, []);
});

test('the ws bindings and schemas take their own examples', async () => {
  const document = await asyncApiDocument();
  const failures = [];
  const check = (where, schema) => {
    const validate = makeAjv([schema]).compile(schema);
    for (const [i, example] of (schema.examples || []).entries()) {
      if (!validate(example)) failures.push(`${where} example #${i}: ${formatAjvErrors(validate.errors)}`);
    }
  };
  for (const channel of document.channels().all()) {
    const ws = channel.bindings().get('ws')?.value();
    assert.ok(ws, `channel ${channel.id()} has no ws binding`);
    assert.equal(ws.method, 'GET', `channel ${channel.id()}: a WebSocket handshake is a GET`);
    for (const part of ['query', 'headers']) {
      assert.ok(ws[part], `channel ${channel.id()}: no ws ${part} schema`);
      assert.equal(ws[part].type, 'object', `channel ${channel.id()}: ws ${part} must be an object schema`);
      check(`channel ${channel.id()} ws ${part}`, ws[part]);
    }
    for (const parameter of channel.parameters().all()) {
      const examples = parameter.json().examples || [];
      assert.ok(examples.length > 0, `channel ${channel.id()} parameter ${parameter.id()} has no example`);
    }
  }
  for (const schema of document.components().schemas().all()) {
    check(`components.schemas.${schema.id()}`, schema.json());
  }
  assert.deepEqual(failures, []);
});

test('every enum value has a description, a close code or an HTTP status where the enum maps them', async () => {
  const document = await asyncApiDocument();
  const schemas = document.components().schemas();
  const closeCodes = schemas.get('CloseCode').json();
  const closeValues = new Set(closeCodes.enum);
  assert.deepEqual(
    Object.keys(closeCodes['x-enumDescriptions']).map(Number).sort(),
    [...closeValues].sort(),
    'CloseCode: every value needs a description, and only its values',
  );
  const failures = [];
  const walk = (where, schema) => {
    if (!schema || typeof schema !== 'object') return;
    if (Array.isArray(schema.enum) && schema.enum.length > 1 && schema.type === 'string') {
      const described = Object.keys(schema['x-enumDescriptions'] || {});
      const missing = schema.enum.filter((v) => !described.includes(v));
      const extra = described.filter((v) => !schema.enum.includes(v));
      if (missing.length || extra.length) {
        failures.push(`${where}: x-enumDescriptions misses [${missing}] has extra [${extra}]`);
      }
      for (const map of ['x-closeCodes', 'x-httpStatus']) {
        if (!schema[map]) continue;
        const keys = Object.keys(schema[map]);
        const missing = schema.enum.filter((v) => !keys.includes(v));
        const extra = keys.filter((v) => !schema.enum.includes(v));
        if (missing.length || extra.length) failures.push(`${where}: ${map} misses [${missing}] has extra [${extra}]`);
        if (map === 'x-closeCodes') {
          for (const [value, code] of Object.entries(schema[map])) {
            if (!closeValues.has(code)) failures.push(`${where}: ${value} closes with ${code}, not a CloseCode`);
          }
        }
      }
    }
    for (const [key, inner] of Object.entries(schema)) {
      if (key === 'examples' || key === 'enum') continue;
      if (inner && typeof inner === 'object') walk(`${where}.${key}`, inner);
    }
  };
  for (const schema of schemas.all()) walk(schema.id(), schema.json());
  assert.deepEqual(failures, []);
  for (const name of ['StreamErrorCode', 'DoneReason']) {
    assert.ok(schemas.get(name).json()['x-closeCodes'], `${name} must map its values to close codes`);
  }
  assert.ok(schemas.get('HandshakeErrorCode').json()['x-httpStatus'], 'HandshakeErrorCode must map its codes to HTTP statuses');
});
