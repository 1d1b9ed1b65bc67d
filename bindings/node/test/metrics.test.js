'use strict';
// metrics() and metricsText(): the core's snapshot after a known sequence
// with real clients (exact counts), and GET /metrics with and without its
// token (C: test_metrics, Python: test_metrics.py).

const test = require('node:test');
const assert = require('node:assert/strict');
const { harness, upgradeAnswer, TIMEOUT } = require('./helpers');

// Polls a condition with a deadline: the I/O thread counts a frame right
// after writing it, so a peer may read it a moment before.
async function until(cond, what) {
  const deadline = Date.now() + TIMEOUT;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const JSON_MSG = '{"type":"json","channel":"room","message":{"n":1}}';
const TEXT_MSG = '{"type":"text","channel":"room","message":"hello"}';
const BIN_MSG = Buffer.from([0, 1, 2, 255]);

test('metrics(): exact counts after a known sequence', async (t) => {
  const N = 2, M = 2, K = 3;
  const h = await harness(t, { metrics: true });
  const s = h.server;
  const messages = [];
  s.on('message', (c, msg) => messages.push(msg));
  const peers = [];
  for (let i = 0; i < N; i++) peers.push(await h.connect());
  assert.equal(await upgradeAnswer(h.url, undefined, { origin: 'http://elsewhere.example' }),
               'refused 403');
  for (const [, c] of peers) s.subscribe(c, 'room');
  const [p0] = peers[0];
  for (let i = 0; i < M; i++) {
    p0.send(JSON_MSG);
    p0.send(TEXT_MSG);
    p0.ws.send(BIN_MSG);
  }
  p0.send('not json');
  assert.match(await p0.next('the error reply'), /"error":"invalid JSON format"/);
  await until(() => messages.length === 3 * M, 'the messages');
  for (let k = 0; k < K; k++) {
    await s.publish('room', { k });
    for (const [p] of peers) await p.next('a publish');
  }
  await until(() => s.metrics().messagesSent === 1 + N * K, 'the frames counted');

  const m = s.metrics();
  assert.equal(m.connections, N);
  assert.equal(m.connectionsAccepted, N);
  assert.equal(m.connectionsRefused.origin, 1);
  assert.equal(m.connectionsRefused.max_clients, 0);
  assert.equal(m.connectionsEnded, 0);
  assert.equal(m.connectionsClosed.queue_full, 0);
  assert.equal(m.subscriptions, N);
  assert.equal(m.channels, 1);
  assert.deepEqual(m.messagesReceived, { json: M, text: M, binary: M });
  assert.deepEqual(m.bytesReceived, {
    json: M * JSON_MSG.length, text: M * TEXT_MSG.length, binary: M * BIN_MSG.length,
  });
  assert.equal(m.messagesInvalid, 1);
  assert.equal(m.deliveries, 1 + N * K);
  assert.equal(m.messagesDropped, 0);
  assert.equal(m.queued, 0);
  assert.equal(m.queueMax, 0);
  assert.equal(m.publishRefusedLimit, 0);
  assert.equal(m.publishRefusedAgain, 0);
  assert.equal(m.pendingBatches, 0);
  assert.equal(m.readsPaused, false);
  assert.equal(m.brokerState, 'none');
  assert.equal(typeof m.bytesSent, 'number');

  // The text and the route say the same.
  const text = s.metricsText();
  assert.match(text, /^# HELP wsnotify_build_info /);
  assert.match(text, /^# TYPE wsnotify_connections gauge$/m);
  assert.match(text, /^wsnotify_connections 2$/m);
  assert.match(text, /^wsnotify_connections_refused_total\{reason="origin"\} 1$/m);
  assert.match(text, /^wsnotify_messages_received_total\{type="binary"\} 2$/m);
  const res = await fetch(`http://127.0.0.1:${s.port}/metrics`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
  assert.match(await res.text(), /^wsnotify_deliveries_total 7$/m);

  // A client leaves: its end and its subscriptions are counted.
  peers[1][0].ws.close();
  await h.disconnects.next('a disconnect');
  const after = s.metrics();
  assert.equal(after.connections, N - 1);
  assert.equal(after.connectionsEnded, 1);
  assert.equal(after.subscriptions, N - 1);
});

test('metrics token: 401 without it, 200 with it; off by default: 404', async (t) => {
  const h = await harness(t, { metrics: true, metricsToken: 'n0de-token' });
  const url = `http://127.0.0.1:${h.server.port}/metrics`;
  const denied = await fetch(url);
  assert.equal(denied.status, 401);
  assert.equal(denied.headers.get('www-authenticate'), 'Bearer');
  assert.equal((await fetch(url, { headers: { Authorization: 'Bearer wrong' } })).status, 401);
  const ok = await fetch(url, { headers: { Authorization: 'Bearer n0de-token' } });
  assert.equal(ok.status, 200);
  assert.match(await ok.text(), /^wsnotify_connections 0$/m);
  const off = await harness(t);
  assert.equal((await fetch(`http://127.0.0.1:${off.server.port}/metrics`)).status, 404);
});

test('publish refusals are counted', async (t) => {
  const h = await harness(t, { maxChannelName: 4 });
  await assert.rejects(h.server.publish('toolong', 1), { code: 'WSN_ELIMIT' });
  assert.equal(h.server.metrics().publishRefusedLimit, 1);
});
