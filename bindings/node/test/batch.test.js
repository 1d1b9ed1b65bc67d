'use strict';
// Batched publishing: one delivery per (channel, ident) after the ttl,
// duplicates kept once, cancel, limits, and shutdown flushing batches.
// A batch built by several calls has an hour's ttl and goes out by
// shutdown or by maxBatchMessages: a short ttl could expire between two
// calls on a busy machine and split it.

const test = require('node:test');
const assert = require('node:assert/strict');
const { MessageType, RawJSON } = require('..');
const { harness, env } = require('./helpers');

const TTL = 50; // for a batch of one call: it goes out after this
const HOUR = 3600000;

async function subscribed(t, options) {
  const h = await harness(t, options);
  const [ws, c] = await h.connect();
  h.server.subscribe(c, 'c');
  return [h.server, ws, c];
}

test('publishWait: one JSON batch, duplicates kept once in first-seen order', async (t) => {
  const [s, ws] = await subscribed(t);
  for (const m of [{ a: 1, b: 2 }, 3, { b: 2, a: 1 }, 's', 3, 's', [1], new RawJSON('[1]')]) {
    await s.publishWait('c', m, 1, 'd', HOUR);
  }
  assert.equal(s.pendingBatches(), 1);
  assert.equal(await s.shutdown(5000), true);
  assert.equal(await ws.nextEnvelope(),
    env('c', 'json', '{"messages":[{"a":1,"b":2},3,"s",[1]],"name":"d"}'));
  assert.equal(s.pendingBatches(), 0);
});

test('publishWaitString joins texts; binary batches are base64', async (t) => {
  const [s, ws] = await subscribed(t);
  await s.publishWaitString('c', 'INFO: User logged in', 1, 'Server-1 Logs', HOUR);
  await s.publishWaitString('c', 'WARN: High CPU usage detected', 1, 'Server-1 Logs', HOUR);
  await s.publishWaitString('c', 'INFO: User logged in', 1, 'Server-1 Logs', HOUR);
  await s.publishWaitWithType('c', Buffer.from([0x00, 0xfb]), MessageType.BINARY, 5n, 'bin', HOUR);
  await s.publishWaitWithType('c', new Uint8Array([0xff]), MessageType.BINARY, 5n, 'bin', HOUR);
  assert.equal(await s.shutdown(5000), true);
  const got = [await ws.nextEnvelope(), await ws.nextEnvelope()].sort();
  assert.deepEqual(got, [
    env('c', 'text', JSON.stringify('Server-1 Logs\n\nINFO: User logged in\nWARN: High CPU usage detected')),
    env('c', 'json', '{"messages":["APs=","/w=="],"name":"bin"}'),
  ].sort());
});

test('keys are (channel, ident); cancel drops a batch', async (t) => {
  const [s, ws] = await subscribed(t);
  await s.publishWait('c', 'one', 1, 'first', HOUR);
  await s.publishWait('c', 'two', 2n ** 64n - 1n, 'second', HOUR);
  await s.publishWait('d', 'three', 1, 'other channel', HOUR);
  assert.equal(s.pendingBatches(), 3);
  s.cancelPendingMessages('c', 1);
  s.cancelPendingMessages('c', 99); // no batch: fine
  assert.equal(s.pendingBatches(), 2);
  s.cancelPendingMessages('d', 1);
  assert.equal(s.pendingBatches(), 1);
  assert.equal(await s.shutdown(5000), true);
  assert.equal(await ws.nextEnvelope(), env('c', 'json', '{"messages":["two"],"name":"second"}'));
  assert.equal(s.pendingBatches(), 0);
  assert.equal((await ws.closeResult()).code, 1001);
  assert.equal(ws.messages.items.length, 0);
});

test('a batch of one call goes out after its ttl, or at once with ttl 0', async (t) => {
  const [s, ws] = await subscribed(t);
  await s.publishWait('c', 'later', 1, 'ttl', TTL);
  assert.equal(await ws.nextEnvelope(), env('c', 'json', '{"messages":["later"],"name":"ttl"}'));
  await s.publishWait('c', 'now', 1, 'zero', 0);
  assert.equal(await ws.nextEnvelope(), env('c', 'json', '{"messages":["now"],"name":"zero"}'));
  assert.equal(s.pendingBatches(), 0);
});

test('the first call fixes name and ttl; maxBatchMessages sends full batches at once', async (t) => {
  const [s, ws] = await subscribed(t, { maxBatchMessages: 2 });
  await s.publishWait('c', 1, 9, 'first', HOUR);
  await s.publishWait('c', 2, 9, 'second', 0); // name and ttl ignored: full, it goes
  assert.equal(await ws.nextEnvelope(), env('c', 'json', '{"messages":[1,2],"name":"first"}'));
  for (let i = 0; i < 5; i++) await s.publishWait('c', i, 1, 'm', HOUR);
  assert.equal(await ws.nextEnvelope(), env('c', 'json', '{"messages":[0,1],"name":"m"}'));
  assert.equal(await ws.nextEnvelope(), env('c', 'json', '{"messages":[2,3],"name":"m"}'));
  assert.equal(s.pendingBatches(), 1); // [4]: the key started afresh
});

test('batch limits and argument errors', async (t) => {
  const [s, ws] = await subscribed(t, { maxPendingBatches: 2 });
  await s.publishWait('c', 1, 1, 'n', HOUR);
  await s.publishWait('c', 1, 2, 'n', HOUR);
  await s.publishWait('c', 3, 1, 'n', HOUR); // an existing key: fine
  await assert.rejects(s.publishWait('c', 1, 3, 'n', HOUR), { code: 'WSN_ELIMIT' });
  assert.equal(s.pendingBatches(), 2);
  s.cancelPendingMessages('c', 2);
  await s.publishWait('c', 4, 3, 'room again', 0);
  assert.equal(await ws.nextEnvelope(), env('c', 'json', '{"messages":[4],"name":"room again"}'));
  assert.throws(() => s.publishWait('c', 1, -1, 'n', TTL), RangeError);
  assert.throws(() => s.publishWait('c', 1, 1.5, 'n', TTL), TypeError);
  assert.throws(() => s.publishWait('c', 1, 2n ** 64n, 'n', TTL), RangeError);
  assert.throws(() => s.publishWait('c', 1, 1, 'n', -5), RangeError);
  assert.throws(() => s.publishWaitString('c', 5, 1, 'n', TTL), TypeError);
});

test('shutdown delivers pending batches, then closes with 1001', async (t) => {
  const h = await harness(t);
  const [ws, c] = await h.connect();
  const s = h.server;
  s.subscribe(c, 'c');
  await s.publishWait('c', 'late', 7, 'flushed', 60000);
  await s.publish('c', 'queued');
  assert.equal(await s.shutdown(5000), true);
  assert.equal(await ws.nextEnvelope(), env('c', 'json', '"queued"'));
  assert.equal(await ws.nextEnvelope(), env('c', 'json', '{"messages":["late"],"name":"flushed"}'));
  assert.deepEqual(await ws.closeResult(), { code: 1001, reason: 'server shutdown' });
  assert.equal(ws.messages.items.length, 0);
});
