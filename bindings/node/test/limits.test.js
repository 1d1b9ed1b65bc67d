'use strict';
// Limits and refusals a user configures: origins, readLimit (1009),
// maxClients.

const test = require('node:test');
const assert = require('node:assert/strict');
const { harness, upgradeAnswer } = require('./helpers');

// 'open', or 'refused <status>', for an upgrade with these headers.
const upgradeStatus = (h, headers) => upgradeAnswer(h.url, undefined, { headers });

test('origins: same origin by default, an allow list, or any', async (t) => {
  const h = await harness(t);
  const p = h.server.port;
  assert.equal(await upgradeStatus(h, { Origin: `http://127.0.0.1:${p}` }), 'open');
  assert.equal(await upgradeStatus(h, { Origin: 'http://evil.example' }), 'refused 403');
  const list = await harness(t, { allowedOrigins: ['https://a.example', 'https://b.example'] });
  assert.equal(await upgradeStatus(list, { Origin: 'https://b.example' }), 'open');
  assert.equal(await upgradeStatus(list, { Origin: 'https://c.example' }), 'refused 403');
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

test('maxClients refuses the next connection', async (t) => {
  const h = await harness(t, { maxClients: 2 });
  await h.connect();
  await h.connect();
  assert.match(await upgradeAnswer(h.url), /^refused [45]\d\d$/);
  assert.equal(h.server.connectedClients(), 2);
});
