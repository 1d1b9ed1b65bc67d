'use strict';
// RawJSON: text already encoded goes out compacted, in every publish kind;
// invalid text is refused with WSN_EJSON and nothing of it goes out.

const test = require('node:test');
const assert = require('node:assert/strict');
const { MessageType, RawJSON } = require('..');
const { harness, env } = require('./helpers');

test('RawJSON in publish, publishWithType, publishToClient, publishWait', async (t) => {
  const h = await harness(t);
  const [ws, c] = await h.connect();
  const s = h.server;
  s.subscribe(c, 'c');
  await s.publish('c', new RawJSON(' { "a" : [ 1 , true ] } '));
  assert.equal(await ws.nextEnvelope(), env('c', 'json', '{"a":[1,true]}'));
  await s.publish('c', new RawJSON(Buffer.from('"a string"')));
  assert.equal(await ws.nextEnvelope(), env('c', 'json', '"a string"'));
  await s.publishWithType('c', new RawJSON('[1]'), MessageType.JSON, { messageId: 'm1', replyToId: 'r1' });
  assert.equal(await ws.nextEnvelope(), env('c', 'json', '[1]', 'm1', 'r1'));
  await s.publishToClient(c, '', new RawJSON('{"x":1}'), MessageType.JSON, { replyToId: 'r2' });
  assert.equal(await ws.nextEnvelope(), env('', 'json', '{"x":1}', undefined, 'r2'));
  // The same value as RawJSON and as a value is kept once in a batch
  // (an hour's ttl: shutdown delivers it, no timing involved).
  await s.publishWait('c', new RawJSON('{"k": 1}'), 7, 'batch', 3600000);
  await s.publishWait('c', { k: 1 }, 7, 'batch', 3600000);
  await s.publishWait('c', new RawJSON('2'), 7, 'batch', 3600000);
  assert.equal(await s.shutdown(5000), true);
  assert.equal(await ws.nextEnvelope(), env('c', 'json', '{"messages":[{"k":1},2],"name":"batch"}'));
  assert.equal((await ws.closeResult()).code, 1001);
});

test('invalid RawJSON is refused with WSN_EJSON; nothing goes out', async (t) => {
  const h = await harness(t);
  const [ws, c] = await h.connect();
  const s = h.server;
  s.subscribe(c, 'c');
  for (const bad of ['{"a":', '', 'nope', '[1] [2]', Buffer.from([0xff])]) {
    await assert.rejects(s.publish('c', new RawJSON(bad)), { code: 'WSN_EJSON' }, String(bad));
    await assert.rejects(s.publishToClient(c, 'c', new RawJSON(bad)), { code: 'WSN_EJSON' });
  }
  await s.publish('c', 1);
  assert.equal(await ws.nextEnvelope(), env('c', 'json', '1'));
  assert.equal(ws.messages.items.length, 0);
});
