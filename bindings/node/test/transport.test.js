'use strict';
// Options that shape the I/O: an IPv6 listener, the write-coalescing
// window, a read buffer smaller than the messages, the process-wide
// memory switches off; a deflate offer is declined (the engine refuses
// permessage-deflate).

const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { once } = require('node:events');
const { harness, Queue, env } = require('./helpers');

// Whether this machine can listen on ::1 (a container may have no IPv6).
async function haveIpv6Loopback() {
  const srv = net.createServer();
  try {
    srv.listen(0, '::1');
    await once(srv, 'listening');
    return true;
  } catch {
    return false;
  } finally {
    srv.close();
  }
}

test('host ::1: served over [::1]', async (t) => {
  if (!(await haveIpv6Loopback())) {
    t.skip('this machine has no IPv6 loopback: listening on ::1 fails');
    return;
  }
  const h = await harness(t, { host: '::1' });
  assert.equal(h.url, `ws://[::1]:${h.server.port}/ws`);
  const [ws, c] = await h.connect();
  assert.equal(c.remoteAddress, '::1');
  h.server.subscribe(c, 'v6');
  await h.server.publish('v6', 6);
  assert.equal(await ws.nextEnvelope(), env('v6', 'json', '6'));
  // same origin with a bracketed host
  const [ws2, c2] = await h.connect(undefined, { origin: `http://[::1]:${h.server.port}` });
  h.server.subscribe(c2, 'v6');
  await h.server.publish('v6', 'both');
  assert.equal(await ws.nextEnvelope(), env('v6', 'json', '"both"'));
  assert.equal(await ws2.nextEnvelope(), env('v6', 'json', '"both"'));
});

test('coalesceWindow: a lone publish and a burst arrive whole, in order', async (t) => {
  const h = await harness(t, { coalesceWindow: 50 });
  const [ws, c] = await h.connect();
  const [ws2, c2] = await h.connect();
  h.server.subscribe(c, 'c');
  h.server.subscribe(c2, 'c');
  await h.server.publish('c', 'lone');
  assert.equal(await ws.nextEnvelope(), env('c', 'json', '"lone"'));
  assert.equal(await ws2.nextEnvelope(), env('c', 'json', '"lone"'));
  const N = 500;
  const sent = [];
  for (let i = 0; i < N; i++) {
    sent.push(i % 3 ? h.server.publish('c', { i }) : h.server.publishToClient(c, 'c', { i }));
  }
  await Promise.all(sent);
  for (let i = 0; i < N; i++) {
    assert.equal(await ws.nextEnvelope(), env('c', 'json', `{"i":${i}}`));
    if (i % 3) assert.equal(await ws2.nextEnvelope(), env('c', 'json', `{"i":${i}}`));
  }
  await h.server.publishToClient(c2, 'end', 0);
  assert.equal(await ws2.nextEnvelope(), env('end', 'json', '0'));
  assert.equal(ws.messages.items.length, 0);
});

test('readBuffer 128: a message 40 times larger is reassembled, in order', async (t) => {
  const h = await harness(t, { readBuffer: 128 });
  const inbox = new Queue();
  h.server.on('message', (client, msg) => inbox.push(msg));
  const [ws] = await h.connect();
  const big = 'x'.repeat(5000);
  ws.send({ channel: 'c', message: big });
  ws.send('{"channel":"c","message":1}');
  ws.send('{"channel":"c","message":2}');
  const first = await inbox.next('the large message');
  assert.equal(first.channel, 'c');
  assert.equal(first.message, big);
  assert.equal(first.raw.toString(), JSON.stringify(big));
  assert.equal((await inbox.next('message 1')).message, 1);
  assert.equal((await inbox.next('message 2')).message, 2);
  assert.equal(inbox.items.length, 0);
});

test('a permessage-deflate offer is declined; large messages go both ways', async (t) => {
  const h = await harness(t);
  const inbox = new Queue();
  h.server.on('message', (client, msg) => inbox.push(msg));
  const [ws, c] = await h.connect(undefined, { perMessageDeflate: true });
  assert.equal(ws.ws.extensions, '');
  const text = 'compressible '.repeat(1000);
  h.server.subscribe(c, 'c');
  await h.server.publish('c', { t: text });
  assert.equal(await ws.nextEnvelope(), env('c', 'json', JSON.stringify({ t: text })));
  ws.send({ type: 'json', channel: 'c', message: text });
  assert.equal((await inbox.next('the message')).message, text);
});

test('rxBufferPool and mallocTrim off: a 200 kB message in, a reply out', async (t) => {
  for (const opts of [{ rxBufferPool: false }, { mallocTrim: false },
    { rxBufferPool: false, mallocTrim: false }]) {
    const h = await harness(t, opts);
    const inbox = new Queue();
    h.server.on('message', (client, msg) => inbox.push([client, msg]));
    const [ws] = await h.connect();
    const big = 'y'.repeat(200000);
    ws.send(`{"type":"text","message":"${big}"}`);
    const [c, msg] = await inbox.next('the large message');
    assert.equal(msg.message, big);
    await h.server.publishToClient(c, '', { len: msg.message.length });
    assert.equal(await ws.nextEnvelope(), env('', 'json', '{"len":200000}'));
  }
});
