// Reading the scenario knobs from the environment (k6's __ENV), and the
// pieces every scenario shares: trend statistics, the server's address, the
// audio excerpts run.sh prepares.

/** Integer from the environment, or `fallback` when unset or empty. */
export function envInt(name, fallback) {
  const v = __ENV[name];
  if (v === undefined || v === '') return fallback;
  const n = parseInt(v, 10);
  if (Number.isNaN(n)) throw new Error(`${name} must be an integer, got ${v}`);
  return n;
}

/** Number from the environment, or `fallback`. */
export function envFloat(name, fallback) {
  const v = __ENV[name];
  if (v === undefined || v === '') return fallback;
  const n = parseFloat(v);
  if (Number.isNaN(n)) throw new Error(`${name} must be a number, got ${v}`);
  return n;
}

/** String from the environment, or `fallback`. */
export function envStr(name, fallback) {
  const v = __ENV[name];
  return v === undefined || v === '' ? fallback : v;
}

/** Base address of the server under test, e.g. `127.0.0.1:8080` (run.sh sets it). */
export const TARGET = envStr('TARGET', '127.0.0.1:8080');

/** Statistics kept for every Trend in the summary (run.sh reads p(50), p(95), p(99)). */
export const SUMMARY_TREND_STATS = ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max', 'count'];

/**
 * Path of an audio excerpt prepared by run.sh (absolute). k6's open() copies
 * the file into every VU, which is why run.sh cuts short excerpts (a few
 * hundred KB) and the clients loop over them.
 */
export function excerptPath(name) {
  const p = __ENV[name];
  if (!p) throw new Error(`${name} is not set: start scenarios through loadtest/run.sh`);
  return p;
}

/**
 * The credential for a server started with `--auth` (docs/protocol.md,
 * section 12): FLACSTREAM_API_KEY (an API key, `fsk_…`) or FLACSTREAM_TOKEN
 * (a token, `fst1_…`), sent as `Authorization: Bearer` on every WebSocket
 * handshake and HTTP request. Neither set: no header (auth off). Both set is
 * an error, as the server refuses two credentials. Never logged.
 */
export const AUTH_HEADERS = (() => {
  const key = envStr('FLACSTREAM_API_KEY', '');
  const token = envStr('FLACSTREAM_TOKEN', '');
  if (key && token) throw new Error('set FLACSTREAM_API_KEY or FLACSTREAM_TOKEN, not both');
  const secret = key || token;
  return secret ? { Authorization: `Bearer ${secret}` } : {};
})();

/** Params for `new WebSocket(url, null, wsParams())` (k6/experimental/websockets) and `ws.connect(url, wsParams(), …)` (k6/ws): the credential's header. */
export function wsParams() {
  return { headers: AUTH_HEADERS };
}

/** HTTP request headers: `extra` plus the credential's. */
export function httpHeaders(extra) {
  return Object.assign({}, extra || {}, AUTH_HEADERS);
}
