'use strict';
// Authentication at the upgrade (option authenticate): a Promise-returning
// handler sees the request and accepts (metadata, channels, expiry) or
// refuses with an HTTP status; expiry closes with 4001 unless refreshed.

const test = require('node:test');
const assert = require('node:assert/strict');
const { once } = require('node:events');
const { harness, upgradeAnswer, within, Peer, WebSocket, normTime } = require('./helpers');

function tokenCheck(req) {
  if (req.queryArg('token') === 'T' || req.bearerToken === 'T') {
    return { metadata: { user: 'ann', level: 3 }, channels: ['news'] };
  }
  return { status: 401, body: 'bad or missing token' };
}

async function refusedWith(url, opts = {}) {
  const ws = new WebSocket(url, undefined, opts);
  ws.on('error', () => {});
  const [, res] = await within(once(ws, 'unexpected-response'), 'a refusal');
  let body = '';
  res.setEncoding('utf8');
  res.on('data', (d) => { body += d; });
  await within(once(res, 'end'), 'the refusal body');
  ws.terminate();
  return [res.statusCode, body];
}

test('an async handler accepts with metadata and channels, or refuses with 401', async (t) => {
  const h = await harness(t, {
    authenticate: async (req) => {
      await Promise.resolve(); // a token check that awaits
      return tokenCheck(req);
    },
  });
  const [peer, client] = await h.connect(undefined, { headers: { Authorization: 'Bearer T' } });
  assert.equal(client.getMetadata('user'), 'ann');
  assert.equal(client.getMetadata('level'), 3);
  await h.server.publish('news', 'hi');
  assert.equal(normTime(await peer.next()), '{"channel":"news","type":"json","time":"T","message":"hi"}');
  assert.deepEqual(await refusedWith(`${h.url}?token=nope`), [401, 'bad or missing token']);
  assert.equal(await upgradeAnswer(`${h.url}?token=T`), 'open');
});

test('the request: path, query, peer, headers; true / false answers', async (t) => {
  const seen = [];
  const h = await harness(t, {
    authenticate: (req) => { seen.push(req); return req.queryArg('ok') === '1'; },
  });
  assert.equal(await upgradeAnswer(`${h.url}?ok=1&b=x%20y`, undefined, { headers: { 'X-Team': 'a' } }), 'open');
  const req = seen[0];
  assert.equal(req.path, '/ws');
  assert.equal(req.query, 'ok=1&b=x%20y');
  assert.equal(req.queryArg('b'), 'x y');
  assert.equal(req.peer, '127.0.0.1');
  assert.equal(req.header('X-TEAM'), 'a');
  assert.ok(req.id > 0);
  assert.equal(await upgradeAnswer(`${h.url}?ok=0`), 'refused 401');
});

test('answered later with accept() / reject(); a throwing handler is 500', async (t) => {
  const waiting = [];
  let wake = null;
  const h = await harness(t, {
    authenticate: (req) => {
      if (req.queryArg('boom')) throw new Error('db down');
      waiting.push(req);
      if (wake) wake();
      return undefined;
    },
  });
  const errors = [];
  h.server.on('error', (e) => errors.push(e));
  const first = upgradeAnswer(`${h.url}?n=1`);
  while (waiting.length === 0) await new Promise((r) => { wake = r; });
  waiting[0].reject(403, 'not today');
  assert.equal(await first, 'refused 403');
  assert.deepEqual(await refusedWith(`${h.url}?boom=1`), [500, 'authentication failed']);
  assert.equal(errors.length, 1);
  assert.throws(() => h.server._native.rejectUpgrade(waiting[0].id, 401, null), { code: 'WSN_EGONE' });
});

test('expiry closes with 4001 unless the client refreshed', async (t) => {
  const h = await harness(t, {
    authenticate: (req) => ({ expiresAt: Date.now() + (req.queryArg('n') === '1' ? 300 : 600) }),
  });
  const a = new Peer(new WebSocket(`${h.url}?n=1`));
  await within(once(a.ws, 'open'), 'open a');
  const ca = await h.connects.next('connect a');
  ca.setExpiry(null); // refreshed in band
  const b = new Peer(new WebSocket(`${h.url}?n=2`));
  h.peers.push(a, b);
  await within(once(b.ws, 'open'), 'open b');
  await h.connects.next('connect b');
  assert.deepEqual(await within(b.closed, 'b closed'), { code: 4001, reason: 'authorization expired' });
  assert.equal(ca.connected, true);
  ca.setExpiry(Date.now() - 1);
  assert.deepEqual(await within(a.closed, 'a closed'), { code: 4001, reason: 'authorization expired' });
});

test('authenticate without a handler fails at start', async () => {
  const { Server } = require('..');
  const s = new Server({ port: 0, authenticate: true });
  await assert.rejects(s.start(), /upgrade handler/);
});
