// A WebSocket client for the live checks (the `ws` package: Node 20 has no
// WebSocket client of its own in every release) that records everything a
// connection receives, in order, and checks a finished conversation
// against docs/asyncapi.yaml.

import WebSocket from 'ws';

import { componentSchema, formatAjvErrors, jsonMessages, operationMessageIds } from './asyncapi.mjs';

/** The server under test, e.g. `http://127.0.0.1:8080/`; '' when unset. */
export const SERVER = process.env.FLACSTREAM_URL || '';

/** An API key or token to send as `Authorization: Bearer`, for a server with `--auth`. */
export const CREDENTIAL = process.env.FLACSTREAM_API_KEY || '';

/** Longest any one wait for the server, in milliseconds. */
export const WAIT_MS = 15_000;

/** Length of the first binary message: `fLaC` + block header + 34-byte STREAMINFO. */
export const FLAC_HEADER_BYTES = 42;

/** Headers every request of the checks carries (the credential, if any). */
export function authHeaders() {
  return CREDENTIAL ? { Authorization: `Bearer ${CREDENTIAL}` } : {};
}

/** A query object as a query string; `undefined` values are left out. */
export function queryString(query = {}) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined) params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : '';
}

/** The ws:// (or wss://) URL of `path` on the server under test. */
export function wsUrl(path, query) {
  const url = new URL(path.replace(/^\//, ''), SERVER.endsWith('/') ? SERVER : `${SERVER}/`);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${url.toString()}${queryString(query)}`;
}

/** The refusal of a handshake: its HTTP status and JSON body. */
export class HandshakeRefused extends Error {
  constructor(status, body) {
    super(`handshake refused: HTTP ${status} ${JSON.stringify(body)}`);
    this.status = status;
    this.body = body;
  }
}

/**
 * One WebSocket connection. `events` holds what the server sent, in order:
 * `{ kind: 'text', text, json }` or `{ kind: 'binary', bytes }`; `closed`
 * resolves to `{ code, reason }` when the connection ends.
 */
export class Conn {
  constructor(label, url, { headers = {}, protocols = [] } = {}) {
    this.label = label;
    this.url = url;
    this.events = [];
    this.waiters = [];
    this.ws = new WebSocket(url, protocols, { headers: { ...authHeaders(), ...headers } });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('unexpected-response', (_req, res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body = text;
          try {
            body = JSON.parse(text);
          } catch {
            // Left as text: the check that reads it says it is not JSON.
          }
          reject(new HandshakeRefused(res.statusCode, body));
        });
      });
      this.ws.once('error', reject);
    });
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code, reason) => {
        this.closeCode = code;
        resolve({ code, reason: reason.toString() });
        this.wake();
      });
    });
    // Rejections are read by whoever awaits `opened`; a refused handshake
    // must not also count as an unhandled rejection.
    this.opened.catch(() => {});
    this.ws.on('error', () => {});
    this.ws.on('message', (data, isBinary) => {
      if (isBinary) {
        this.events.push({ kind: 'binary', bytes: Buffer.from(data) });
      } else {
        const text = data.toString('utf8');
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        this.events.push({ kind: 'text', text, json });
      }
      this.wake();
    });
  }

  wake() {
    for (const waiter of [...this.waiters]) waiter();
  }

  /** Text messages received so far, parsed. */
  get texts() {
    return this.events.filter((e) => e.kind === 'text').map((e) => e.json);
  }

  /** Binary messages received so far. */
  get binaries() {
    return this.events.filter((e) => e.kind === 'binary').map((e) => e.bytes);
  }

  /** Waits for a text message for which `match(json)` holds; answers it. */
  async waitText(what, match) {
    return this.waitFor(what, () => this.texts.find((json) => json && match(json)));
  }

  /** Waits until `find()` answers something, up to WAIT_MS. */
  waitFor(what, find) {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = find();
        if (found !== undefined) {
          done();
          resolve(found);
        } else if (this.closeCode !== undefined) {
          done();
          reject(new Error(`${this.label}: closed (${this.closeCode}) before ${what}; got ${this.describe()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.label}: no ${what} within ${WAIT_MS} ms; got ${this.describe()}`));
      }, WAIT_MS);
      const done = () => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
      };
      this.waiters.push(check);
      check();
    });
  }

  /** Waits for the close, up to WAIT_MS; answers `{ code, reason }`. */
  async waitClosed() {
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.label}: not closed within ${WAIT_MS} ms; got ${this.describe()}`)), WAIT_MS);
    });
    try {
      return await Promise.race([this.closed, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends a binary message, or a text message for a string. */
  send(data) {
    return new Promise((resolve, reject) => {
      this.ws.send(data, { binary: typeof data !== 'string' }, (e) => (e ? reject(e) : resolve()));
    });
  }

  /** Closes from the client side (normal closure) and waits for the end. */
  async close() {
    if (this.closeCode === undefined) this.ws.close(1000);
    return this.waitClosed();
  }

  /** Drops the TCP connection without a close frame, as a network break would. */
  terminate() {
    this.ws.terminate();
  }

  /** A short account of what was received, for failure messages. */
  describe() {
    const texts = this.events.filter((e) => e.kind === 'text').map((e) => e.text.slice(0, 160));
    return `${this.binaries.length} binary message(s), text ${JSON.stringify(texts)}`;
  }
}

/** Opens a connection and waits for the upgrade (rejects with HandshakeRefused). */
export async function connect(label, path, query, options) {
  const conn = new Conn(label, wsUrl(path, query), options);
  await conn.opened;
  return conn;
}

let lookups;

/** The document's lookups, built once. */
async function documentLookups() {
  if (!lookups) {
    const messages = await jsonMessages();
    const byType = new Map([...messages.values()].map((m) => [m.type, m]));
    const doneReason = await componentSchema('DoneReason');
    const errorCode = await componentSchema('StreamErrorCode');
    lookups = {
      byType,
      doneClose: doneReason['x-closeCodes'],
      errorClose: errorCode['x-closeCodes'],
    };
  }
  return lookups;
}

/**
 * Checks everything `conn` received against the messages operation
 * `operationId` documents: each text message's `type` is one of them and
 * validates against its schema; binary messages are allowed only where the
 * operation lists the FLAC header and frames, the first is the 42-byte
 * `fLaC` header (when `fromStart`) and each other a FLAC frame; the close
 * code is the one the final `done` or `error` documents. Answers
 * `{ failures, seen }`: what did not match, and the ids of the messages seen.
 */
export async function checkConversation(conn, operationId, { fromStart = true } = {}) {
  const { byType, doneClose, errorClose } = await documentLookups();
  const allowed = new Set(await operationMessageIds(operationId));
  const failures = [];
  const seen = new Set();
  const where = `${conn.label} (${operationId})`;
  let binaryIndex = 0;
  for (const event of conn.events) {
    if (event.kind === 'binary') {
      const first = binaryIndex === 0 && fromStart;
      const id = first ? 'flacHeader' : 'flacFrame';
      binaryIndex += 1;
      if (!allowed.has(id)) {
        failures.push(`${where}: a binary message (${id}) the operation does not list`);
        continue;
      }
      seen.add(id);
      if (first) {
        if (event.bytes.length !== FLAC_HEADER_BYTES || event.bytes.toString('latin1', 0, 4) !== 'fLaC') {
          failures.push(`${where}: the first binary message is not the ${FLAC_HEADER_BYTES}-byte fLaC header (${event.bytes.length} bytes)`);
        }
      } else if (event.bytes.length < 2 || event.bytes[0] !== 0xff || (event.bytes[1] & 0xfe) !== 0xf8) {
        failures.push(`${where}: binary message ${binaryIndex} does not start with a FLAC frame sync code`);
      }
      continue;
    }
    const { json, text } = event;
    if (!json || typeof json !== 'object' || typeof json.type !== 'string') {
      failures.push(`${where}: a text message that is not a JSON object with a type: ${text.slice(0, 200)}`);
      continue;
    }
    const message = byType.get(json.type);
    if (!message) {
      failures.push(`${where}: type "${json.type}" is not documented: ${text.slice(0, 200)}`);
      continue;
    }
    if (!allowed.has(message.id)) {
      failures.push(`${where}: type "${json.type}" (message ${message.id}) is not listed for this operation`);
    }
    seen.add(message.id);
    if (!message.validate(json)) {
      failures.push(`${where}: ${message.id} does not match its schema: ${formatAjvErrors(message.validate.errors)}; got ${text.slice(0, 300)}`);
    }
  }
  const last = conn.texts.at(-1);
  if (conn.closeCode !== undefined && last) {
    const expected = last.type === 'done' ? doneClose[last.reason]
      : last.type === 'error' ? errorClose[last.code] : undefined;
    if (expected !== undefined && conn.closeCode !== expected) {
      failures.push(`${where}: closed with ${conn.closeCode} after ${last.type} ${last.reason || last.code}; the document says ${expected}`);
    }
  }
  return { failures, seen };
}
