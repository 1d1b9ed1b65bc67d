'use strict';
// Events on the JS thread: what a 'message' carries, one Client object per
// connection, disconnect after the last message, handler exceptions.

const test = require('node:test');
const assert = require('node:assert/strict');
const { MessageType, RawJSON, IncomingMessage, jsonGetString } = require('..');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { harness, Queue, env, TIMEOUT } = require('./helpers');

function messages(server) {
  const q = new Queue();
  server.on('message', (client, msg) => q.push([client, msg]));
  return q;
}

test('a JSON message: type, channel, decoded value, raw, ids', async (t) => {
  const h = await harness(t);
  const inbox = messages(h.server);
  const [ws, c] = await h.connect();
  ws.send({ type: 'json', channel: 'room', message: { a: [1, 2], b: 'x' }, message_id: 'm1', reply_to_id: 'r0' });
  const [client, msg] = await inbox.next('message');
  assert.equal(client, c);
  assert.ok(msg instanceof IncomingMessage);
  assert.equal(msg.type, MessageType.JSON);
  assert.equal(msg.channel, 'room');
  assert.deepEqual(msg.message, { a: [1, 2], b: 'x' });
  assert.ok(msg.raw instanceof RawJSON);
  assert.equal(msg.raw.toString(), '{"a":[1,2],"b":"x"}');
  assert.equal(msg.messageId, 'm1');
  assert.equal(msg.replyToId, 'r0');
  assert.equal(msg.clientId, c.id);
  // forwarding raw publishes the text as received
  h.server.subscribe(c, 'room');
  await h.server.publish('room', msg.raw);
  assert.equal(await ws.nextEnvelope(), env('room', 'json', '{"a":[1,2],"b":"x"}'));
  // raw is frozen (it is published without a second check); a RawJSON the
  // application makes is still checked.
  assert.ok(Object.isFrozen(msg.raw));
  assert.throws(() => { 'use strict'; msg.raw.text = '{'; }, TypeError);
  const copy = new RawJSON(msg.raw.text.slice(0, -1));
  await assert.rejects(h.server.publish('room', copy), { code: 'WSN_EJSON' });
  await h.server.publish('room', new RawJSON(msg.raw.text));
  assert.equal(await ws.nextEnvelope(), env('room', 'json', '{"a":[1,2],"b":"x"}'));
});

test('events queued while the JS thread is blocked arrive in order, each with its fields', async (t) => {
  // The client's N messages and its close must all be read while nobody
  // takes events: its share of the event queue (clientEventQueue, 64 by
  // default) would pause its reads and hold its close handshake.
  // 300 messages at once: no inbound rate limit (clientRate).
  const h = await harness(t, { clientEventQueue: 1000, clientRate: 0 });
  const inbox = messages(h.server);
  const N = 300;
  // A child process connects, sends N messages and closes while this
  // thread is blocked: the events wait in the core's queue.
  execFileSync(process.execPath, [path.join(__dirname, 'fixtures', 'connect-close.js'),
    h.url, '1', String(N)], { timeout: TIMEOUT, stdio: ['ignore', 'inherit', 'inherit'] });
  const c = await h.connects.next('connect');
  for (let i = 0; i < N; i++) {
    const [client, msg] = await inbox.next(`message ${i}`);
    assert.equal(client, c);
    assert.deepEqual([msg.channel, msg.message, msg.messageId, msg.replyToId, msg.raw.toString(), msg.clientId],
      [`ch${i}`, { i }, `m${i}`, i % 2 ? '' : `r${i}`, `{"i":${i}}`, c.id]);
  }
  assert.equal(await h.disconnects.next('disconnect'), c);
  assert.equal(inbox.items.length, 0);
});

test('text and binary messages', async (t) => {
  const h = await harness(t);
  const inbox = messages(h.server);
  const [ws] = await h.connect();
  ws.send({ type: 'text', channel: 'c', message: 'héllo' });
  let [, msg] = await inbox.next('text message');
  assert.equal(msg.type, 'text');
  assert.equal(msg.message, 'héllo');
  assert.equal(msg.raw, 'héllo');
  ws.ws.send(Buffer.from([0, 1, 0xff]));
  [, msg] = await inbox.next('binary message');
  assert.equal(msg.type, 'binary');
  assert.deepEqual(msg.message, Buffer.from([0, 1, 0xff]));
  assert.equal(msg.channel, '');
});

test('messages larger than the batch arena (256 KiB) arrive whole, in order, between small ones', async (t) => {
  const h = await harness(t);
  const inbox = messages(h.server);
  const [ws, c] = await h.connect();
  const big = 'x'.repeat(300 * 1024);
  const bytes = Buffer.alloc(300 * 1024, 7);
  bytes[0] = 1;
  bytes[bytes.length - 1] = 2;
  ws.send({ type: 'json', channel: 'a', message: 1 });
  ws.send({ type: 'json', channel: 'bïg', message: { big }, message_id: 'm2', reply_to_id: 'r2' });
  ws.ws.send(bytes);
  ws.send({ type: 'text', channel: 'z', message: 'é' });
  let [client, msg] = await inbox.next('small message');
  assert.equal(client, c);
  assert.equal(msg.raw.toString(), '1');
  [client, msg] = await inbox.next('big message');
  assert.equal(client, c);
  assert.deepEqual([msg.channel, msg.messageId, msg.replyToId, msg.clientId], ['bïg', 'm2', 'r2', c.id]);
  assert.equal(msg.raw.toString(), JSON.stringify({ big }));
  [, msg] = await inbox.next('big binary message');
  assert.equal(msg.type, 'binary');
  assert.ok(msg.message.equals(bytes));
  [, msg] = await inbox.next('small message after');
  assert.deepEqual([msg.type, msg.channel, msg.message], ['text', 'z', 'é']);
});

test('the same Client object in every event; disconnect after the last message', async (t) => {
  const h = await harness(t);
  const seen = [];
  h.server.on('message', (c, m) => seen.push(['message', c, m.message]));
  h.server.on('disconnect', (c) => seen.push(['disconnect', c]));
  const [ws, c] = await h.connect();
  for (let i = 0; i < 50; i++) ws.send({ type: 'json', channel: 'c', message: i });
  ws.ws.close(1000, 'bye');
  assert.equal(await h.disconnects.next('disconnect'), c);
  assert.equal(seen.length, 51);
  for (let i = 0; i < 50; i++) assert.deepEqual(seen[i], ['message', c, i]);
  assert.deepEqual(seen[50], ['disconnect', c]);
  assert.equal(c.connected, false);
  assert.deepEqual(await ws.closeResult(), { code: 1000, reason: 'bye' });
});

test('a handler exception is emitted as error and the server goes on', async (t) => {
  const h = await harness(t);
  const errors = new Queue();
  h.server.on('error', (e) => errors.push(e));
  let n = 0;
  h.server.on('message', (client, msg) => {
    n++;
    if (msg.message === 'boom') throw new Error('handler failed');
    h.server.publishToClient(client, 'c', 'ok');
  });
  h.server.on('connect', async () => { throw new Error('async connect failed'); });
  const [ws] = await h.connect();
  assert.equal((await errors.next('async error')).message, 'async connect failed');
  ws.send({ type: 'json', channel: 'c', message: 'boom' });
  assert.equal((await errors.next('error')).message, 'handler failed');
  ws.send({ type: 'json', channel: 'c', message: 'fine' });
  assert.equal(await ws.nextEnvelope(), env('c', 'json', '"ok"'));
  assert.equal(n, 2);
});

test('rawIncoming and sendRaw: frames without the envelope', async (t) => {
  const h = await harness(t, { rawIncoming: true });
  const inbox = messages(h.server);
  const [ws, c] = await h.connect();
  ws.ws.send('not an envelope');
  const [, msg] = await inbox.next('raw text');
  assert.equal(msg.type, 'text');
  assert.equal(msg.message, 'not an envelope');
  await h.server.sendRaw(c, 'echo: ' + msg.message);
  assert.equal(await ws.next(), 'echo: not an envelope');
  await h.server.sendRaw(c, Buffer.from([1, 2, 3]));
  assert.deepEqual(await ws.next(), Buffer.from([1, 2, 3]));
  await h.server.sendRaw(c, Buffer.from('bytes as text'), MessageType.TEXT);
  assert.equal(await ws.next(), 'bytes as text');
  assert.throws(() => h.server.sendRaw(c, 'x', MessageType.BINARY), TypeError);
  assert.throws(() => h.server.sendRaw(c, 'x', MessageType.JSON), TypeError);
});

test('invalid JSON gets the error envelope and no message event', async (t) => {
  const h = await harness(t);
  const inbox = messages(h.server);
  const [ws, c] = await h.connect();
  ws.ws.send('{nope');
  const reply = JSON.parse(await ws.next());
  assert.equal(reply.type, 'error');
  assert.equal(reply.client_id, c.id);
  ws.send({ type: 'json', channel: 'c', message: 1 });
  const [, msg] = await inbox.next('message');
  assert.equal(msg.message, 1);
});

test('jsonGetString reads one member', () => {
  assert.equal(jsonGetString('{"action":"sub\\u0061","x":1}', 'action'), 'suba');
  assert.equal(jsonGetString(Buffer.from('{"k":"' + 'v'.repeat(1000) + '"}'), 'k'), 'v'.repeat(1000));
  assert.throws(() => jsonGetString('{"x":1}', 'action'), { code: 'WSN_ENOTFOUND' });
  assert.throws(() => jsonGetString('{"x":1}', 'x'), { code: 'WSN_ETYPE' });
  assert.throws(() => jsonGetString('[1', 'x'), { code: 'WSN_EJSON' });
});

test('stopped is the last event; shutdown resolves after it', async (t) => {
  const h = await harness(t);
  const order = [];
  h.server.on('disconnect', () => order.push('disconnect'));
  h.server.on('stopped', () => order.push('stopped'));
  const [ws] = await h.connect();
  assert.equal(await h.server.shutdown(2000), true);
  assert.deepEqual(order, ['disconnect', 'stopped']);
  assert.deepEqual(await ws.closeResult(), { code: 1001, reason: 'server shutdown' });
  await assert.rejects(h.server.publish('c', 1), { code: 'WSN_ECLOSED' });
  assert.equal(await h.server.shutdown(100), true); // again: fine
  assert.deepEqual(order, ['disconnect', 'stopped']);
});
