// The server's OpenAPI document: loading it (a file, or a URL such as the
// server's /openapi.json), checking it against the official OpenAPI 3.1
// JSON schema (@seriousme/openapi-schema-validator bundles the schemas, so
// this works offline), and listing the examples of its parameters and
// request bodies as requests to send.

import { readFileSync } from 'node:fs';

import { Validator } from '@seriousme/openapi-schema-validator';
import { parse as parseYaml } from 'yaml';

/** The OpenAPI versions this check takes: 3.1.x only. */
export const OPENAPI_VERSION = /^3\.1\.\d+$/;

/** Longest a fetch of the document may take, in milliseconds. */
export const FETCH_MS = 30_000;

/**
 * Loads a document from a file path or an http(s) URL. Answers
 * `{ status, document }`: `status` is the HTTP status (200 for a file),
 * `document` the parsed JSON or YAML, or null when the URL answered no 2xx.
 */
export async function loadOpenApi(source, { headers = {} } = {}) {
  if (/^https?:\/\//.test(source)) {
    const response = await fetch(source, { headers, signal: AbortSignal.timeout(FETCH_MS) });
    const text = await response.text();
    if (!response.ok) return { status: response.status, document: null };
    return { status: response.status, document: parseText(text, source) };
  }
  return { status: 200, document: parseText(readFileSync(source, 'utf8'), source) };
}

function parseText(text, source) {
  try {
    return JSON.parse(text);
  } catch {
    try {
      return parseYaml(text);
    } catch (e) {
      throw new Error(`${source} is neither JSON nor YAML: ${e.message}`);
    }
  }
}

/**
 * Checks `document` against the official OpenAPI 3.1 schema. Answers
 * `{ valid, errors, resolved }`: `errors` readable lines, `resolved` the
 * document with its `$ref`s resolved (when valid).
 */
export async function validateOpenApi(document) {
  const version = document?.openapi;
  if (typeof version !== 'string' || !OPENAPI_VERSION.test(version)) {
    return { valid: false, errors: [`"openapi" is ${JSON.stringify(version)}, not 3.1.x`], resolved: null };
  }
  const validator = new Validator();
  const result = await validator.validate(document);
  if (!result.valid) {
    const errors = (Array.isArray(result.errors) ? result.errors : [result.errors]).map((e) =>
      typeof e === 'string' ? e : `${e.instancePath || '(root)'} ${e.message}${e.params ? ` ${JSON.stringify(e.params)}` : ''}`);
    return { valid: false, errors, resolved: null };
  }
  return { valid: true, errors: [], resolved: validator.resolveRefs() };
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'];

/** Example values an OpenAPI object carries: `example`, `examples` (map or array), and its schema's. */
export function examplesOf(holder) {
  const values = [];
  if (!holder || typeof holder !== 'object') return values;
  if ('example' in holder) values.push({ name: 'example', value: holder.example });
  if (Array.isArray(holder.examples)) {
    holder.examples.forEach((value, i) => values.push({ name: `examples[${i}]`, value }));
  } else if (holder.examples && typeof holder.examples === 'object') {
    for (const [name, example] of Object.entries(holder.examples)) {
      // An externalValue is a URL elsewhere: nothing to send offline.
      if (example && typeof example === 'object' && 'value' in example) values.push({ name, value: example.value });
    }
  }
  return values;
}

/** A parameter's examples: its own, its schema's, and its content's. */
function parameterExamples(parameter) {
  const values = [...examplesOf(parameter), ...examplesOf(parameter.schema).map((e) => ({ ...e, name: `schema.${e.name}` }))];
  for (const [type, media] of Object.entries(parameter.content || {})) {
    values.push(...examplesOf(media).map((e) => ({ ...e, name: `content[${type}].${e.name}` })));
  }
  return values;
}

/** A value for a parameter with no example of its own to use: default, const, first enum value. */
function fallbackValue(parameter) {
  const schema = parameter.schema || {};
  if ('default' in schema) return schema.default;
  if ('const' in schema) return schema.const;
  if (Array.isArray(schema.enum) && schema.enum.length) return schema.enum[0];
  return undefined;
}

/**
 * Every operation of a resolved document, with its parameters (the path
 * item's, overridden by the operation's) and the example cases to send:
 * `{ path, method, parameters, requestBody, cases: [{ label, param?, value?, body? }] }`.
 * A case varies one parameter (set to one of its examples) or sends one
 * request body example; everything else comes from the base request.
 */
export function exampleCases(document) {
  const operations = [];
  for (const [path, item] of Object.entries(document.paths || {})) {
    for (const method of METHODS) {
      const operation = item?.[method];
      if (!operation) continue;
      const byKey = new Map();
      for (const p of [...(item.parameters || []), ...(operation.parameters || [])]) byKey.set(`${p.in}:${p.name}`, p);
      const parameters = [...byKey.values()];
      const cases = [];
      for (const parameter of parameters) {
        for (const example of parameterExamples(parameter)) {
          cases.push({
            label: `${parameter.in} parameter ${parameter.name} ${example.name}`,
            param: parameter,
            value: example.value,
          });
        }
      }
      const requestBody = operation.requestBody;
      for (const [type, media] of Object.entries(requestBody?.content || {})) {
        const examples = [...examplesOf(media), ...examplesOf(media.schema).map((e) => ({ ...e, name: `schema.${e.name}` }))];
        for (const example of examples) {
          cases.push({ label: `request body ${type} ${example.name}`, body: { type, value: example.value, media } });
        }
      }
      operations.push({ path, method, operationId: operation.operationId, parameters, requestBody, cases });
    }
  }
  return operations;
}

/** The value a parameter takes in a base request: a fixture, else its first example, else a fallback. */
export function baseValue(parameter, fixture) {
  if (fixture !== undefined) return fixture;
  const [first] = parameterExamples(parameter);
  return first ? first.value : fallbackValue(parameter);
}
