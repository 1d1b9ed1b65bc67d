'use strict';
// Limits and refusals a user configures: origins (same origin, Host,
// allow lists), readLimit (exact fits, over is 1009), maxClients.

const test = require('node:test');
const assert = require('node:assert/strict');
const { harness, upgradeAnswer, Queue } = require('./helpers');

// 'open', or 'refused <status>', for an upgrade with these headers.
const upgradeStatus = (h, headers) => upgradeAnswer(h.url, undefined, { headers });

test('origins: same origin by default, an allow list, or any', async (t) => {
  const h = await harness(t);
  const p = h.server.port;
  assert.equal(await upgradeStatus(h, { Origin: `http://127.0.0.1:${p}` }), 'open');
  assert.equal(await upgradeStatus(h, { Origin: 'http://evil.example' }), 'refused 403');
  assert.equal(await upgradeStatus(h, {}), 'open'); // no Origin: not a browser
  // the Origin must name the Host the request was sent to
  assert.equal(await upgradeStatus(h, { Origin: `http://127.0.0.1:${p}`, Host: `localhost:${p}` }),
    'refused 403');
  const list = await harness(t, { allowedOrigins: ['http://a.example', 'https://b.example:8443'] });
  assert.equal(await upgradeStatus(list, { Origin: 'http://a.example' }), 'open');
  assert.equal(await upgradeStatus(list, { Origin: 'https://b.example:8443' }), 'open');
  for (const other of ['https://c.example', 'http://b.example:8443', 'http://a.example.evil',
    `http://127.0.0.1:${list.server.port}`]) {
    assert.equal(await upgradeStatus(list, { Origin: other }), 'refused 403', other);
  }
  assert.equal(await upgradeStatus(list, {}), 'open');
  const any = await harness(t, { allowedOrigins: '*' });
  assert.equal(await upgradeStatus(any, { Origin: 'http://evil.example' }), 'open');
});

test('readLimit: over it 1009, within it delivered', async (t) => {
  const h = await harness(t, { readLimit: 1024 });
  const got = [];
  h.server.on('message', (c, m) => got.push(m.message));
  const [ws, c] = await h.connect();
  ws.ws.send(JSON.stringify({ type: 'json', channel: 'c', message: 'x'.repeat(900) }));
  ws.ws.send('{"type":"json","message":1}'.padEnd(2000));
  assert.equal((await ws.closeResult()).code, 1009);
  assert.equal(await h.disconnects.next('disconnect'), c);
  assert.deepEqual(got, ['x'.repeat(900)]);
});

test('readLimit: a message of exactly the limit is delivered, whole or in fragments', async (t) => {
  const h = await harness(t, { readLimit: 1024 });
  const inbox = new Queue();
  h.server.on('message', (c, m) => inbox.push(m.message));
  const [ws, c] = await h.connect();
  const pre = '{"type":"text","message":"';
  const fill = 'x'.repeat(1024 - pre.length - 2);
  const msg = `${pre}${fill}"}`;
  assert.equal(Buffer.byteLength(msg), 1024);
  ws.ws.send(msg);
  assert.equal(await inbox.next('the whole message'), fill);
  for (let i = 0; i < 1024; i += 100) ws.ws.send(msg.slice(i, i + 100), { fin: i + 100 >= 1024 });
  assert.equal(await inbox.next('the fragmented message'), fill);
  assert.equal(inbox.items.length, 0);
  assert.equal(c.connected, true);
});

test('maxClients refuses the next connection', async (t) => {
  const h = await harness(t, { maxClients: 2 });
  await h.connect();
  await h.connect();
  assert.match(await upgradeAnswer(h.url), /^refused [45]\d\d$/);
  assert.equal(h.server.connectedClients(), 2);
});
