'use strict';
// The per-client inbound message rate (clientRate, clientBurst): a flood
// is closed with 1008 "message rate exceeded"; what was within the bucket
// reaches the handler in order, nothing after (C: tests/test_rate.c).

const test = require('node:test');
const assert = require('node:assert/strict');
const { defaultOptions } = require('..');
const { harness, Queue } = require('./helpers');

// The handler's messages from `client` up to its disconnect.
async function untilDisconnect(h, messages, client) {
  const gone = await h.disconnects.next('disconnect');
  assert.equal(gone.id, client.id);
  const got = [];
  while (messages.items.length) got.push(messages.items.shift());
  return got;
}

async function flood(t, options, count) {
  const h = await harness(t, options);
  const messages = new Queue();
  h.server.on('message', (c, msg) => messages.push(msg.message));
  const [peer, client] = await h.connect();
  const start = Date.now();
  for (let i = 0; i < count; i++) peer.send({ type: 'json', message: i });
  const closed = await peer.closeResult();
  const got = await untilDisconnect(h, messages, client);
  return { ...closed, got, secs: (Date.now() - start) / 1000 };
}

test('a flood is closed with 1008; the burst reaches the handler, in order', async (t) => {
  const r = await flood(t, { clientRate: 1, clientBurst: 5 }, 40);
  assert.equal(r.code, 1008);
  assert.equal(r.reason, 'message rate exceeded');
  assert.ok(r.got.length >= 5 && r.got.length <= 5 + Math.floor(r.secs + 1), `${r.got.length} delivered`);
  assert.deepEqual(r.got, [...Array(r.got.length).keys()]);
});

test('the defaults (100/s, burst 200) bound a flood', async (t) => {
  const d = defaultOptions();
  assert.equal(d.clientRate, 100);
  assert.equal(d.clientBurst, 200);
  const r = await flood(t, {}, 2000);
  assert.equal(r.code, 1008);
  assert.ok(r.got.length >= 200 && r.got.length <= 200 + Math.floor(100 * (r.secs + 0.01)),
    `${r.got.length} delivered`);
  assert.deepEqual(r.got, [...Array(r.got.length).keys()]);
});

test('clientRate 0: no limit', async (t) => {
  const h = await harness(t, { clientRate: 0 });
  const messages = new Queue();
  h.server.on('message', (c, msg) => messages.push(msg.message));
  const [peer, client] = await h.connect();
  for (let i = 0; i < 2000; i++) peer.send({ type: 'json', message: i });
  for (let i = 0; i < 2000; i++) assert.equal(await messages.next(`message ${i}`), i);
  assert.equal(client.connected, true);
});
