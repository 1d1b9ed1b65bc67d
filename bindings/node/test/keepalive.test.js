'use strict';
// Ping/pong with small durations: the server pings, a peer that answers
// stays, one that never answers (or answers with data) is dropped.

const test = require('node:test');
const assert = require('node:assert/strict');
const { once } = require('node:events');
const { harness, env, within } = require('./helpers');

const OPTS = { pongWait: 600, pingPeriod: 200 };

// The next `n` pings a peer gets, each answered by `answer(payload)`.
async function pings(peer, n, answer = () => {}) {
  const seen = [];
  while (seen.length < n) {
    const [data] = await within(once(peer.ws, 'ping'), `ping ${seen.length + 1} of ${n}`);
    seen.push(data);
    answer(data);
  }
  return seen;
}

test('the server pings, again after a pong', async (t) => {
  const h = await harness(t, OPTS);
  const [peer, c] = await h.connect(undefined, { autoPong: false });
  await pings(peer, 2, (data) => peer.ws.pong(data));
  assert.equal(c.connected, true);
  assert.equal(peer.messages.items.length, 0);
});

test('a peer that never answers is dropped, one that answers stays', async (t) => {
  const h = await harness(t, OPTS);
  const [alive, a] = await h.connect(); // ws answers every ping
  let alivePings = 0;
  alive.ws.on('ping', () => { alivePings++; });
  const [silent, s] = await h.connect(undefined, { autoPong: false });
  let silentPings = 0;
  silent.ws.on('ping', () => { silentPings++; });
  assert.equal(await h.disconnects.next('the silent peer dropped'), s);
  assert.equal(s.connected, false);
  assert.ok(silentPings >= 1, 'the silent peer was pinged before it was dropped');
  const { code } = await silent.closeResult();
  assert.ok([1001, 1006, 1011].includes(code), `close code ${code}`);
  // The answering peer was pinged meanwhile and is still served.
  assert.ok(alivePings >= 1);
  assert.equal(a.connected, true);
  assert.deepEqual(h.server.clientList(), [a.id]);
  h.server.subscribe(a, 'c');
  await h.server.publish('c', 'still here');
  assert.equal(await alive.nextEnvelope(), env('c', 'json', '"still here"'));
});

test('answering pings with data instead of pongs is not keepalive', async (t) => {
  const h = await harness(t, OPTS);
  const [peer, c] = await h.connect(undefined, { autoPong: false });
  peer.ws.on('ping', () => peer.send('{"type":"json","message":0}'));
  assert.equal(await h.disconnects.next('the data-only peer dropped'), c);
  assert.ok([1001, 1006, 1011].includes((await peer.closeResult()).code));
});

// Six pings at 200 ms span two pongWaits: a peer whose pongs did not
// count would have been dropped before the sixth.
test('pongs echoing the ping, or carrying other bytes, keep a peer', async (t) => {
  const h = await harness(t, OPTS);
  const [echo, e] = await h.connect(undefined, { autoPong: false });
  const [other, o] = await h.connect(undefined, { autoPong: false });
  const [echoed] = await Promise.all([
    pings(echo, 6, (data) => echo.ws.pong(data)),
    pings(other, 6, (data) => other.ws.pong(data.length ? Buffer.concat([data, data]) : 'x')),
  ]);
  assert.equal(echoed.length, 6);
  assert.equal(e.connected, true);
  assert.equal(o.connected, true);
  assert.equal(h.server.connectedClients(), 2);
});
