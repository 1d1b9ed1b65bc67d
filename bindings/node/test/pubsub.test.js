'use strict';
// Pub/sub over loopback: the exact envelopes subscribers get for every
// publish kind, ids, subscription changes, order and the client list.

const test = require('node:test');
const assert = require('node:assert/strict');
const { MessageType, RawJSON, WsnotifyError } = require('..');
const { harness, env } = require('./helpers');

test('publish sends a JSON envelope to subscribers', async (t) => {
  const h = await harness(t);
  const [ws, c] = await h.connect();
  h.server.subscribe(c, 'room');
  await h.server.publish('room', { a: 1, s: 'é"\n' });
  assert.equal(await ws.nextEnvelope(), env('room', 'json', '{"a":1,"s":"é\\"\\n"}'));
  for (const [value, text] of [[1, '1'], [-2.5, '-2.5'], ['s', '"s"'], [[1, 2], '[1,2]'],
    [null, 'null'], [true, 'true'], [{}, '{}']]) {
    await h.server.publish('room', value);
    assert.equal(await ws.nextEnvelope(), env('room', 'json', text));
  }
  await h.server.publish('room', new RawJSON('{"z": [1, 2]}'));
  assert.equal(await ws.nextEnvelope(), env('room', 'json', '{"z":[1,2]}'));
});

test('publishWithType: ids, text and binary', async (t) => {
  const h = await harness(t);
  const [ws, c] = await h.connect();
  const s = h.server;
  s.subscribe(c, 'c');
  await s.publishWithType('c', { a: 1 }, MessageType.JSON, { messageId: 'm1', replyToId: 'r1' });
  assert.equal(await ws.nextEnvelope(), env('c', 'json', '{"a":1}', 'm1', 'r1'));
  await s.publishWithType('c', 2, MessageType.JSON, { messageId: 'm2' });
  assert.equal(await ws.nextEnvelope(), env('c', 'json', '2', 'm2'));
  await s.publishWithType('c', 'héllo "w"\n', MessageType.TEXT, { replyToId: 'r3' });
  assert.equal(await ws.nextEnvelope(), env('c', 'text', '"héllo \\"w\\"\\n"', undefined, 'r3'));
  await s.publishWithType('c', Buffer.from([0x00, 0xfb, 0xff, 0xbf, 0x10]), MessageType.BINARY, { messageId: 'm1' });
  assert.equal(await ws.nextEnvelope(), env('c', 'binary', '"APv/vxA="', 'm1'));
  await s.publishWithType('c', new Uint8Array([0xfb, 0xef]), MessageType.BINARY);
  assert.equal(await ws.nextEnvelope(), env('c', 'binary', '"++8="'));
  await s.publishWithType('c', Buffer.alloc(0), MessageType.BINARY);
  assert.equal(await ws.nextEnvelope(), env('c', 'binary', '""'));
  const big = Buffer.from(Array.from({ length: 3001 }, (_, i) => (i * 7 + 3) & 0xff));
  await s.publishWithType('c', big, MessageType.BINARY);
  assert.equal(await ws.nextEnvelope(), env('c', 'binary', `"${big.toString('base64')}"`));
});

test('subscribe is idempotent, unsubscribe stops delivery', async (t) => {
  const h = await harness(t);
  const [ws, c] = await h.connect();
  const [ws2, c2] = await h.connect();
  const s = h.server;
  s.subscribe(c, 'c');
  s.subscribe(c, 'c');
  s.subscribe(c2, 'c');
  s.unsubscribe(c2, 'never-joined');
  await s.publish('c', 1);
  assert.equal(await ws.nextEnvelope(), env('c', 'json', '1'));
  assert.equal(await ws2.nextEnvelope(), env('c', 'json', '1'));
  s.unsubscribe(c2, 'c');
  await s.publish('c', 2);
  await s.publishToClient(c2, 'direct', 'marker');
  assert.equal(await ws.nextEnvelope(), env('c', 'json', '2'));
  // c2 gets the marker and nothing published after its unsubscribe
  assert.equal(await ws2.nextEnvelope(), env('direct', 'json', '"marker"'));
  assert.equal(ws2.messages.items.length, 0);
});

test('publishToClient reaches one client only, with ids', async (t) => {
  const h = await harness(t);
  const [ws, c] = await h.connect();
  const [ws2, c2] = await h.connect();
  h.server.subscribe(c, 'c');
  h.server.subscribe(c2, 'c');
  await h.server.publishToClient(c, 'c', { only: true }, MessageType.JSON, { replyToId: 'q1' });
  await h.server.publishToClient(c, '', 'plain', MessageType.TEXT);
  await h.server.publish('c', 'all');
  assert.equal(await ws.nextEnvelope(), env('c', 'json', '{"only":true}', undefined, 'q1'));
  assert.equal(await ws.nextEnvelope(), env('', 'text', '"plain"'));
  assert.equal(await ws.nextEnvelope(), env('c', 'json', '"all"'));
  assert.equal(await ws2.nextEnvelope(), env('c', 'json', '"all"'));
});

test('order is preserved and counts are exact', async (t) => {
  // All N publishes are made before any is awaited: when the client's
  // queue is full, up to N of them wait for room, beyond the default
  // publishQueueLimit (1024), which would refuse the rest.
  const h = await harness(t, { publishQueueLimit: 2000 });
  const [ws, c] = await h.connect();
  h.server.subscribe(c, 'c');
  const N = 2000;
  const all = [];
  for (let i = 0; i < N; i++) all.push(h.server.publish('c', i));
  await Promise.all(all);
  for (let i = 0; i < N; i++) {
    assert.equal(JSON.parse(await ws.next()).message, i);
  }
  await h.server.publishToClient(c, 'end', 0);
  assert.equal(JSON.parse(await ws.next()).channel, 'end');
});

test('publish errors carry the core code', async (t) => {
  const h = await harness(t, { maxChannelName: 8 });
  const [, c] = await h.connect();
  const s = h.server;
  await assert.rejects(s.publish('', 1), { code: 'WSN_EINVAL' });
  await assert.rejects(s.publish('123456789', 1), (e) => e instanceof WsnotifyError && e.code === 'WSN_ELIMIT');
  assert.throws(() => s.subscribe(c, '123456789'), { code: 'WSN_ELIMIT' });
  await assert.rejects(s.publish('c', new RawJSON('{bad')), { code: 'WSN_EJSON' });
  await assert.rejects(s.publishWithType('c', Buffer.from([0xff]), MessageType.TEXT), { code: 'WSN_EINVAL' });
  assert.throws(() => s.publish('c', undefined), TypeError);
  assert.throws(() => s.publish('c', 1n), TypeError);
  assert.throws(() => s.publishWithType('c', 'x', 'yaml'), TypeError);
  assert.throws(() => s.publishWithType('c', 'x', MessageType.BINARY), TypeError);
  assert.throws(() => s.publishWithType('c', 5, MessageType.TEXT), TypeError);
  assert.throws(() => s.publish(5, 1), TypeError);
  assert.throws(() => s.subscribe({}, 'c'), TypeError);
  assert.throws(() => s.publish('a\0b', 1), TypeError);
  // nobody subscribed: accepted, delivered to no one
  await s.publish('empty', 1);
});

test('clientList and connectedClients follow connections', async (t) => {
  const h = await harness(t);
  const s = h.server;
  assert.equal(s.connectedClients(), 0);
  assert.deepEqual(s.clientList(), []);
  const [ws1, c1] = await h.connect();
  const [, c2] = await h.connect();
  assert.equal(s.connectedClients(), 2);
  assert.deepEqual(s.clientList().sort(), [c1.id, c2.id].sort());
  assert.equal(s.getClient(c1.id), c1);
  ws1.ws.close(1000);
  assert.equal(await h.disconnects.next('disconnect'), c1);
  assert.equal(s.connectedClients(), 1);
  assert.deepEqual(s.clientList(), [c2.id]);
  assert.equal(s.getClient(c1.id), undefined);
  assert.equal(c1.connected, false);
  assert.equal(c2.connected, true);
  assert.deepEqual(await ws1.closeResult(), { code: 1000, reason: '' });
});

test('one publish reaches each of 200 subscribers exactly once', async (t) => {
  const h = await harness(t);
  const N = 200;
  const peers = [];
  for (let i = 0; i < N; i++) {
    const [peer, c] = await h.connect();
    h.server.subscribe(c, 'all');
    peers.push(peer);
  }
  await h.server.publish('all', { hello: 'everyone' });
  await h.server.publish('all', 'end');
  for (const peer of peers) {
    assert.equal(await peer.nextEnvelope(), env('all', 'json', '{"hello":"everyone"}'));
    assert.equal(await peer.nextEnvelope(), env('all', 'json', '"end"'));
    assert.equal(peer.messages.items.length, 0);
  }
  assert.equal(h.server.connectedClients(), N);
});

test('maxSubscriptions (0.3): the channel beyond the cap is refused with WSN_ELIMIT', async (t) => {
  const h = await harness(t, { maxSubscriptions: 2 });
  const [ws, c] = await h.connect();
  const s = h.server;
  s.subscribe(c, 'a');
  s.subscribe(c, 'b');
  assert.throws(() => s.subscribe(c, 'c'), (e) => e instanceof WsnotifyError && e.code === 'WSN_ELIMIT');
  await s.publish('c', 0);
  await s.publish('a', 1);
  await s.publish('b', 2);
  assert.deepEqual([JSON.parse(await ws.next()), JSON.parse(await ws.next())].map((m) => [m.channel, m.message]),
    [['a', 1], ['b', 2]]);
});
