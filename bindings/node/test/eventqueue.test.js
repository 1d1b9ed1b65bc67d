'use strict';
// eventQueueLimit: while the JS thread takes no events, reading from
// clients pauses at the limit instead of queueing without bound, and
// resumes once events are taken: nothing lost, order kept.

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { once } = require('node:events');
const { Worker } = require('node:worker_threads');
const { Server } = require('..');
const { Queue, within, normTime, TIMEOUT } = require('./helpers');

test('eventQueueLimit pauses reading while the host is blocked, then resumes', async (t) => {
  const logs = [];
  const server = new Server({
    host: '127.0.0.1', port: 0, eventQueueLimit: 4,
    clientRate: 0, // the client floods on purpose
    logger: (level, line) => logs.push(`${level}: ${line}`),
  });
  await server.start();
  t.after(() => server.shutdown(2000));
  const inbox = new Queue();
  const connects = new Queue();
  server.on('message', (client, msg) => inbox.push(msg.message));
  server.on('connect', (c) => connects.push(c));

  const N = 300;
  const flag = new SharedArrayBuffer(4);
  const peer = new Worker(path.join(__dirname, 'fixtures', 'flood-peer.js'), {
    workerData: { url: `ws://127.0.0.1:${server.port}/ws`, flag, count: N },
  });
  t.after(() => peer.terminate());
  const fromPeer = new Queue();
  peer.on('message', (m) => fromPeer.push(m));
  peer.on('error', (e) => fromPeer.push({ error: e }));
  assert.deepEqual(await fromPeer.next('the peer open'), { open: true });
  const c = await connects.next('connect');

  // Block the JS thread until the I/O thread has read past message 3: four
  // message events wait untaken, so reading must have paused.
  peer.postMessage('go');
  const woke = Atomics.wait(new Int32Array(flag), 0, 0, TIMEOUT);
  assert.equal(woke, 'ok', 'the peer got the reply to its invalid frame');
  const { reply } = await fromPeer.next('the reply');
  assert.equal(normTime(reply), `{"client_id":"${c.id}","error":"invalid JSON format",` +
    '"reply_to":"","time":"T","type":"error"}');
  const got = [];
  for (let i = 0; i < N; i++) got.push(await inbox.next(`message ${i}`));
  assert.deepEqual(got, Array.from({ length: N }, (_, i) => i));
  assert.ok(logs.includes('warn: 4 events waiting for the host: pausing reads'),
    `the pause was logged: ${JSON.stringify(logs)}`);

  // The connection still works both ways.
  server.subscribe(c, 'c');
  await server.publish('c', 1);
  const { message } = await fromPeer.next('a publish');
  assert.equal(normTime(message), '{"channel":"c","type":"json","time":"T","message":1}');
  peer.postMessage('close');
  assert.deepEqual(await fromPeer.next('the peer closed'), { closed: 1000 });
  await within(once(peer, 'exit'), 'the peer exit');
});
