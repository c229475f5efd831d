// docs/asyncapi.yaml against a running server: the examples of the
// client's messages (and of the handshake queries) are sent in real
// sessions and must be accepted, and every message the server sends in
// those sessions must be documented for its operation and match its schema,
// with the close code the document gives.
//
//   FLACSTREAM_URL=http://127.0.0.1:8080/ node --test live.test.mjs
//
// Environment: FLACSTREAM_URL (the server; without it every case is
// skipped), FLACSTREAM_API_KEY (sent as `Authorization: Bearer` for a
// server with --auth).
//
// Sessions: /stream with a streaming-header WAV (the wavBytes example, then
// `end`); a recorded session opened with the binding's query example, fed
// the audioBytes example and a message ending in an odd byte, joined by a
// listener (the join query example), taken over by a second producer (the
// first gets `superseded`), fed the rest from `samples_received` and closed
// with the closeSession example; a recorded session ended with `end`; a
// container session (format=flac, the FLAC /stream made) cut and resumed at
// `bytes_accepted`; a `wav` session that ends by itself; a listener that
// sends audio; text that is no message on /stream; the
// flacstream.v1 subprotocol offered; refused handshakes, whose bodies must
// match HandshakeError with the documented HTTP status.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';

import { componentSchema, formatAjvErrors, makeAjv, messageExample, wsBinding } from './asyncapi.mjs';
import { HandshakeRefused, SERVER, checkConversation, connect as rawConnect } from './live.mjs';
import { tonePcm16, wavHeader16 } from './wav.mjs';

const skip = SERVER ? false : 'SKIPPED: FLACSTREAM_URL unset';
if (!SERVER) console.log('SKIPPED: FLACSTREAM_URL unset');

/** The FLAC the /stream case made (STREAMINFO patched), for the container case. */
let streamedFlac = null;

/** Ids of the server's messages seen over the whole run (for the coverage note). */
const seenOverall = new Set();

/** Checks conversations against their operations; fails with every mismatch. */
async function assertConversations(pairs) {
  const failures = [];
  for (const [conn, operationId, options] of pairs) {
    const { failures: f, seen } = await checkConversation(conn, operationId, options);
    failures.push(...f);
    for (const id of seen) seenOverall.add(id);
  }
  assert.deepEqual(failures, []);
}

/** The channel a handshake path belongs to. */
function channelOf(path) {
  if (path === '/stream') return 'stream';
  if (path === '/api/ws/audio') return 'audioSession';
  if (path.startsWith('/api/ws/audio/')) return 'audioSessionJoin';
  throw new Error(`no channel for ${path}`);
}

/** Whether `query` is valid for the ws binding of `path`'s channel: `{ valid, errors }`. */
async function queryValidity(path, query) {
  const { query: schema } = await wsBinding(channelOf(path));
  const validate = makeAjv([schema]).compile(schema);
  const valid = validate(query);
  return { valid, errors: formatAjvErrors(validate.errors) };
}

/**
 * Connects, after checking that the query is one the document allows: a
 * query the server takes must also pass the binding's schema.
 */
async function connect(label, path, query, options) {
  const { valid, errors } = await queryValidity(path, query);
  assert.ok(valid, `${label}: the query ${JSON.stringify(query)} does not match the ws binding of ${path}: ${errors}`);
  return rawConnect(label, path, query, options);
}

/** The first example of a binding's query schema. */
async function queryExample(channelId) {
  const { query } = await wsBinding(channelId);
  assert.ok(query.examples?.length, `channel ${channelId}: the ws query schema has no example`);
  return { ...query.examples[0] };
}

/** A message example as what goes on the wire: JSON text, or the decoded bytes. */
async function wireExample(messageId) {
  const payload = await messageExample(messageId);
  return typeof payload === 'string' ? Buffer.from(payload, 'base64') : JSON.stringify(payload);
}

after(() => {
  if (SERVER) {
    const documented = ['session', 'ack', 'chunk', 'storage', 'flacHeader', 'flacFrame', 'done', 'error'];
    const unseen = documented.filter((id) => !seenOverall.has(id));
    console.log(`server messages seen live: ${[...seenOverall].sort().join(', ')}; not provoked: ${unseen.join(', ') || 'none'}`);
  }
});

test('/stream: the wavBytes and end examples are accepted; the output matches the document', { skip }, async () => {
  const rate = 16000;
  const frames = 8000;
  const pcm = tonePcm16({ rate, channels: 1, frames });
  const wav = Buffer.concat([wavHeader16({ rate, channels: 1 }), pcm]);
  const first = await wireExample('wavBytes');
  assert.deepEqual(first, wav.subarray(0, first.length), 'the wavBytes example is not the start of a streaming-header WAV');

  const query = await queryExample('stream');
  const conn = await connect('stream', '/stream', query);
  await conn.send(first);
  const middle = first.length + 20;
  await conn.send(wav.subarray(first.length, middle));
  await conn.send(wav.subarray(middle));
  await conn.send(await wireExample('end'));
  const done = await conn.waitText('done', (m) => m.type === 'done');
  const { code } = await conn.waitClosed();

  assert.equal(done.reason, 'complete');
  assert.equal(done.samples, frames);
  assert.equal(done.sample_rate, rate);
  assert.equal(done.bits_per_sample, 16);
  assert.equal(code, 1000);
  assert.equal(done.frames, conn.binaries.length - 1, 'done.frames counts the binary messages after the header');
  assert.equal(done.bytes_out, conn.binaries.reduce((n, b) => n + b.length, 0));
  assert.equal(done.bytes_in, wav.length);
  assert.equal(Buffer.from(done.streaminfo, 'base64').length, 34);
  assert.ok(done.frames >= Math.ceil(frames / query.block_size), 'the block_size of the query example is used');
  await assertConversations([[conn, 'streamSendOutput']]);
  const flac = Buffer.concat(conn.binaries);
  Buffer.from(done.streaminfo, 'base64').copy(flac, 8);
  streamedFlac = { flac, samples: done.samples, md5: done.md5 };
});

test('/stream: text that is no message is refused with the documented error and close code', { skip }, async () => {
  const conn = await connect('stream bad text', '/stream', {});
  await conn.send('hello');
  const error = await conn.waitText('error', (m) => m.type === 'error');
  await conn.waitClosed();
  assert.equal(error.code, 'bad_message');
  await assertConversations([[conn, 'streamSendOutput']]);
});

test('/stream: the flacstream.v1 subprotocol (HandshakeHeaders) is selected when offered', { skip }, async () => {
  const conn = await connect('stream subprotocol', '/stream', {}, { protocols: ['flacstream.v1'] });
  assert.equal(conn.ws.protocol, 'flacstream.v1');
  await conn.close();
});

test('recorded session: open, ack, chunk, listener, superseded, resume, close_session', { skip }, async () => {
  const rate = 16000;
  const total = 16000;
  const query = await queryExample('audioSession');
  assert.equal(query.format, 's16le', 'the open query example is expected to be raw s16le mono');
  assert.equal(query.channels, 1);
  const id = randomUUID();
  query.session_id = id; // a fresh id: the example's would be taken on a second run
  query.sample_rate = rate;

  const audioExample = await wireExample('audioBytes');
  const exampleFrames = audioExample.length / 2;
  const pcm = Buffer.concat([
    audioExample,
    tonePcm16({ rate, channels: 1, frames: total - exampleFrames }),
  ]);

  const p1 = await connect('producer 1', '/api/ws/audio', query);
  const hello = await p1.waitText('session', (m) => m.type === 'session');
  assert.deepEqual(
    [hello.session_id, hello.role, hello.resumed, hello.samples_received, hello.chunk_count, hello.connections],
    [id, 'producer', false, 0, 0, 1],
  );

  await p1.send(audioExample);
  const ack1 = await p1.waitText('ack 1', (m) => m.type === 'ack' && m.chunk_count === 1);
  assert.equal(ack1.samples_received, exampleFrames, 'the audioBytes example is taken whole');
  assert.equal(ack1.chunk_id, `${id}.1`);

  // Up to sample 8000 and one byte of the next: that byte is not received.
  const cut = 8000;
  await p1.send(pcm.subarray(audioExample.length, cut * 2 + 1));
  const ack2 = await p1.waitText('ack 2', (m) => m.type === 'ack' && m.chunk_count === 2);
  assert.equal(ack2.samples_received, cut);
  await p1.waitText('chunk 2', (m) => m.type === 'chunk' && m.seq === 2);

  const listenQuery = await queryExample('audioSessionJoin');
  const listener = await connect('listener', `/api/ws/audio/${id}`, listenQuery);
  const lhello = await listener.waitText('session', (m) => m.type === 'session');
  assert.equal(lhello.role, 'listener');
  assert.equal(lhello.resumed, true);
  await listener.waitFor('the stream header', () => listener.binaries[0]);

  // A listener that sends audio loses its connection; the session goes on.
  const rude = await connect('listener sending audio', `/api/ws/audio/${id}`, { role: 'listen' });
  await rude.waitText('session', (m) => m.type === 'session');
  await rude.send(Buffer.alloc(4));
  const rudeError = await rude.waitText('error', (m) => m.type === 'error');
  await rude.waitClosed();
  assert.equal(rudeError.code, 'bad_message');

  const p2 = await connect('producer 2', `/api/ws/audio/${id}`, { output: 'flac' });
  const p2hello = await p2.waitText('session', (m) => m.type === 'session');
  assert.equal(p2hello.role, 'producer');
  assert.equal(p2hello.resumed, true);
  assert.equal(p2hello.samples_received, cut, 'resume where the session stands, not past the odd byte');
  const superseded = await p1.waitText('error', (m) => m.type === 'error');
  assert.equal(superseded.code, 'superseded');
  assert.equal((await p1.waitClosed()).code, 4001);

  await p2.send(pcm.subarray(p2hello.samples_received * 2));
  await p2.waitText('ack 3', (m) => m.type === 'ack' && m.chunk_count === 3 && m.samples_received === total);
  await p2.send(await wireExample('closeSession'));
  const done = await p2.waitText('done', (m) => m.type === 'done');
  const ldone = await listener.waitText('done', (m) => m.type === 'done');
  assert.equal((await p2.waitClosed()).code, 1000);
  assert.equal((await listener.waitClosed()).code, 1000);
  assert.equal(done.reason, 'closed');
  assert.equal(done.samples, total);
  assert.deepEqual(ldone, done, 'every connection gets the same done');

  await assertConversations([
    [p1, 'openSendOutput'],
    [listener, 'joinSendListener'],
    [rude, 'joinSendListener'],
    [p2, 'joinSendProducer'],
  ]);
});

test('recorded session: the end example finalizes with reason complete', { skip }, async () => {
  const conn = await connect('producer (end)', '/api/ws/audio', {
    format: 's16le', sample_rate: 8000, channels: 2,
  });
  await conn.waitText('session', (m) => m.type === 'session');
  await conn.send(tonePcm16({ rate: 8000, channels: 2, frames: 800 }));
  await conn.waitText('ack', (m) => m.type === 'ack');
  await conn.send(await wireExample('end'));
  const done = await conn.waitText('done', (m) => m.type === 'done');
  await conn.waitClosed();
  assert.equal(done.reason, 'complete');
  assert.equal(done.samples, 800);
  assert.equal(done.channels, 2);
  await assertConversations([[conn, 'openSendOutput']]);
});

test('container session (format=flac): bytes_accepted in session and ack, resumed at a byte', { skip }, async () => {
  assert.ok(streamedFlac, 'the /stream case made no FLAC to send');
  const { flac, samples, md5 } = streamedFlac;
  const id = randomUUID();
  const p1 = await connect('container producer 1', '/api/ws/audio', { format: 'flac', session_id: id });
  const hello = await p1.waitText('session', (m) => m.type === 'session');
  assert.equal(hello.bytes_accepted, 0, 'a container session states bytes_accepted');
  const half = Math.floor(flac.length / 2);
  await p1.send(flac.subarray(0, half));
  const ack = await p1.waitText('ack', (m) => m.type === 'ack');
  assert.equal(ack.bytes_accepted, half);
  // The connection breaks; a new producer resumes at bytes_accepted.
  p1.terminate();
  await p1.waitClosed();
  const p2 = await connect('container producer 2', `/api/ws/audio/${id}`, {});
  const again = await p2.waitText('session', (m) => m.type === 'session');
  assert.equal(again.resumed, true);
  assert.equal(again.bytes_accepted, half);
  await p2.send(flac.subarray(again.bytes_accepted));
  await p2.waitText('ack', (m) => m.type === 'ack' && m.bytes_accepted === flac.length);
  await p2.send(await wireExample('closeSession'));
  const done = await p2.waitText('done', (m) => m.type === 'done');
  assert.equal((await p2.waitClosed()).code, 1000);
  assert.deepEqual([done.samples, done.md5, done.source_codec, done.lossless], [samples, md5, 'flac', true]);
  await assertConversations([[p1, 'openSendOutput'], [p2, 'joinSendProducer']]);
});

test('recorded session (format=wav): finalizes by itself once the declared data is in', { skip }, async () => {
  const pcm = tonePcm16({ rate: 22050, channels: 2, frames: 2205 });
  const wav = Buffer.concat([wavHeader16({ rate: 22050, channels: 2, dataBytes: pcm.length }), pcm]);
  const conn = await connect('wav producer', '/api/ws/audio', { format: 'wav', output: 'flac', acks: false });
  await conn.waitText('session', (m) => m.type === 'session');
  await conn.send(wav.subarray(0, 30));
  await conn.send(wav.subarray(30));
  const done = await conn.waitText('done', (m) => m.type === 'done');
  assert.equal((await conn.waitClosed()).code, 1000);
  assert.deepEqual([done.reason, done.samples, done.sample_rate, done.channels], ['complete', 2205, 22050, 2]);
  assert.equal(conn.texts.filter((m) => m.type === 'ack').length, 0, 'acks=false sends no ack');
  await assertConversations([[conn, 'openSendOutput']]);
});

test('refused handshakes answer the documented status and a HandshakeError body', { skip }, async () => {
  const schema = await componentSchema('HandshakeError');
  const statuses = (await componentSchema('HandshakeErrorCode'))['x-httpStatus'];
  const validate = makeAjv([schema]).compile(schema);
  // A finished session: its id can be neither joined nor chosen again.
  const closedId = randomUUID();
  const finished = await connect('finished session', '/api/ws/audio', {
    format: 'u8', sample_rate: 8000, channels: 1, session_id: closedId,
  });
  await finished.send(Buffer.alloc(80, 0x80));
  await finished.send(await wireExample('closeSession'));
  await finished.waitText('done', (m) => m.type === 'done');
  await finished.waitClosed();
  const cases = [
    ['/api/ws/audio', { format: 'f32le', sample_rate: 8000, channels: 1 }, 'bad_parameter'],
    ['/api/ws/audio', { format: 's16le', channels: 1 }, 'bad_parameter'],
    ['/api/ws/audio', { format: 's16le', sample_rate: 8000, channels: 1, session_id: closedId }, 'session_exists'],
    [`/api/ws/audio/${closedId}`, { role: 'listen' }, 'session_closed'],
    [`/api/ws/audio/${closedId}`, { role: 'watch' }, 'bad_parameter'],
    ['/api/ws/audio', { format: 's32le', sample_rate: 8000, channels: 1 }, 'unsupported_format'],
    ['/api/ws/audio', { format: 'mp4' }, 'needs_seeking'],
    ['/api/ws/audio', { format: 's16le', sample_rate: 8000, channels: 1, session_id: 'not-a-uuid' }, 'bad_parameter'],
    [`/api/ws/audio/${randomUUID()}`, {}, 'session_not_found'],
    ['/stream', { level: 9 }, 'bad_parameter'],
    ['/stream', { nonsense: 1 }, 'bad_parameter'],
  ];
  // Refused for its parameters: the binding's schema must refuse the query too.
  const queryRefusals = new Set(['bad_parameter', 'unsupported_format', 'needs_seeking']);
  const failures = [];
  for (const [path, query, code] of cases) {
    const { valid } = await queryValidity(path, query);
    if (valid === queryRefusals.has(code)) {
      failures.push(`${path} ${JSON.stringify(query)}: the ws binding ${valid ? 'allows' : 'refuses'} it, the server answers ${code}`);
    }
    try {
      const conn = await rawConnect(`refused ${path}`, path, query);
      await conn.close();
      failures.push(`${path} ${JSON.stringify(query)}: upgraded, expected ${code}`);
    } catch (e) {
      if (!(e instanceof HandshakeRefused)) throw e;
      if (!validate(e.body)) failures.push(`${path}: body does not match HandshakeError: ${formatAjvErrors(validate.errors)}`);
      if (e.body?.code !== code) failures.push(`${path} ${JSON.stringify(query)}: code ${e.body?.code}, expected ${code}`);
      if (e.status !== statuses[code]) failures.push(`${path}: HTTP ${e.status}, the document says ${statuses[code]} for ${code}`);
    }
  }
  assert.deepEqual(failures, []);
});
