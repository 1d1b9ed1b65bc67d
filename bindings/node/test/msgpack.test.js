'use strict';
// The wsnotify.msgpack subprotocol: MessagePack maps with the envelope's
// keys in binary frames, both ways; JSON clients on the same channel keep
// getting JSON.

const test = require('node:test');
const assert = require('node:assert/strict');
const { encode, decode } = require('@msgpack/msgpack');
const { MessageType } = require('..');
const { harness, Queue, env, upgradeAnswer } = require('./helpers');

const MP = 'wsnotify.msgpack';
const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;

async function nextMap(peer) {
  const data = await peer.next('a msgpack envelope');
  assert.ok(Buffer.isBuffer(data), `a msgpack client got text: ${data}`);
  return decode(data);
}

// The envelope without its time, after checking the time's form.
function untimed(m) {
  assert.match(m.time, TIME);
  const { time, ...rest } = m;
  return rest;
}

test('negotiated: msgpack, json after an unknown one, an unknown one alone refused', async (t) => {
  const h = await harness(t);
  const [ws, c] = await h.connect([MP]);
  assert.equal(ws.ws.protocol, MP);
  assert.equal(c.subprotocol, MP);
  const [ws2, c2] = await h.connect(['foo', 'wsnotify.json']);
  assert.equal(ws2.ws.protocol, 'wsnotify.json');
  assert.equal(c2.subprotocol, 'wsnotify.json');
  assert.equal(await upgradeAnswer(h.url, ['foo']), 'refused 400');
  assert.equal(h.server.connectedClients(), 2);
});

test('envelopes: JSON values, ids, binary as bytes, text', async (t) => {
  const h = await harness(t);
  const [ws, c] = await h.connect([MP]);
  const s = h.server;
  s.subscribe(c, 'c');
  await s.publishWithType('c', { a: 1, b: [true, null, 's', -2, 1.5] }, MessageType.JSON,
    { messageId: 'm1', replyToId: 'r1' });
  const m = await nextMap(ws);
  assert.deepEqual(Object.keys(m), ['channel', 'type', 'time', 'message', 'message_id', 'reply_to_id']);
  assert.deepEqual(untimed(m), {
    channel: 'c', type: 'json', message: { a: 1, b: [true, null, 's', -2, 1.5] },
    message_id: 'm1', reply_to_id: 'r1',
  });
  await s.publishWithType('c', Buffer.from([0x00, 0xff, 0x01, 0x80]), MessageType.BINARY);
  await s.publishWithType('c', 'hé', MessageType.TEXT);
  const bin = await nextMap(ws);
  assert.deepEqual(Object.keys(bin), ['channel', 'type', 'time', 'message']);
  assert.equal(bin.type, 'binary');
  assert.deepEqual(Buffer.from(bin.message), Buffer.from([0x00, 0xff, 0x01, 0x80]));
  assert.deepEqual(untimed(await nextMap(ws)), { channel: 'c', type: 'text', message: 'hé' });
});

test('incoming msgpack messages reach the handler decoded', async (t) => {
  const h = await harness(t);
  const inbox = new Queue();
  h.server.on('message', (client, msg) => inbox.push([client, msg]));
  const [ws, c] = await h.connect([MP]);
  ws.ws.send(encode({ type: 'json', channel: 'c', message: { x: 1 }, message_id: 'm1' }));
  ws.ws.send(encode({ type: 'binary', message: new Uint8Array([0, 1, 2]) }));
  const [c1, m1] = await inbox.next('message 1');
  const [, m2] = await inbox.next('message 2');
  assert.equal(c1, c);
  assert.deepEqual([m1.type, m1.channel, m1.message, m1.messageId, m1.replyToId, m1.clientId],
    [MessageType.JSON, 'c', { x: 1 }, 'm1', '', c.id]);
  assert.equal(m1.raw.toString(), '{"x":1}');
  assert.deepEqual([m2.type, m2.channel, m2.clientId], [MessageType.BINARY, '', c.id]);
  assert.deepEqual(Buffer.from(m2.message), Buffer.from([0, 1, 2]));
});

test('msgpack and JSON subscribers of one channel, and a batch', async (t) => {
  const h = await harness(t);
  const [wm, cm] = await h.connect([MP]);
  const [wj, cj] = await h.connect();
  const s = h.server;
  s.subscribe(cm, 'c');
  s.subscribe(cj, 'c');
  for (let i = 0; i < 20; i++) await s.publish('c', i);
  for (let i = 0; i < 20; i++) {
    assert.equal((await nextMap(wm)).message, i);
    assert.equal(await wj.nextEnvelope(), env('c', 'json', String(i)));
  }
  await s.publishWaitWithType('c', Buffer.from([1]), MessageType.BINARY, 1, 'bin', 0);
  const batch = await nextMap(wm);
  assert.equal(batch.message.name, 'bin');
  assert.deepEqual(batch.message.messages.map((b) => Buffer.from(b)), [Buffer.from([1])]);
  assert.equal(await wj.nextEnvelope(), env('c', 'json', '{"messages":["AQ=="],"name":"bin"}'));
});
