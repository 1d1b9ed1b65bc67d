'use strict';
// Core log lines reach the logger: by level, as the core wrote them; a
// full logQueue keeps the oldest lines and says how many it dropped;
// logQueue 0 discards.

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { Server } = require('..');
const { Harness, TIMEOUT } = require('./helpers');

const CONNECT_CLOSE = path.join(__dirname, 'fixtures', 'connect-close.js');

async function started(t, options) {
  const logs = [];
  const server = new Server({
    host: '127.0.0.1', port: 0, logger: (level, line) => logs.push([level, line]), ...options,
  });
  await server.start();
  const h = new Harness(server);
  t.after(() => h.close());
  return [h, logs];
}

// Connects and closes n clients from another process while this JS thread
// is blocked, so nothing takes events or log lines meanwhile.
function connectCloseBlocked(h, n) {
  execFileSync(process.execPath, [CONNECT_CLOSE, h.url, String(n)],
    { timeout: TIMEOUT, stdio: ['ignore', 'inherit', 'inherit'] });
}

test('logLevel debug: the connect and disconnect lines, by level', async (t) => {
  const [h, logs] = await started(t, { logLevel: 'debug' });
  const [peer, c] = await h.connect();
  peer.ws.close(1000);
  assert.equal(await h.disconnects.next('disconnect'), c);
  assert.deepEqual(logs.filter(([, line]) => line.includes(c.id)), [
    ['debug', `client ${c.id} connected from 127.0.0.1`],
    ['debug', `client ${c.id} disconnected`],
  ]);
  assert.deepEqual(logs.find(([, line]) => line.startsWith('listening on')),
    ['info', `listening on 127.0.0.1:${h.server.port}`]);
});

test('a full logQueue keeps the oldest lines and reports how many it dropped', async (t) => {
  const [h, logs] = await started(t, { logLevel: 'debug', logQueue: 2 });
  await h.connect(); // the start-up lines have been taken
  logs.length = 0;
  connectCloseBlocked(h, 3); // 3 connect lines (and up to 3 disconnects)
  const ids = [];
  for (let i = 0; i < 3; i++) ids.push((await h.connects.next(`connect ${i + 1}`)).id);
  for (let i = 0; i < 3; i++) await h.disconnects.next(`disconnect ${i + 1}`);
  // Lines dropped after the first report (disconnect lines landing while
  // the queue is full again) make another report: the counts add up.
  const warnings = logs.filter(([, line]) => line.includes('were dropped'));
  let dropped = 0;
  for (const [level, text] of warnings) {
    assert.equal(level, 'warn');
    dropped += Number(/^(\d+) log lines were dropped \(log_queue full\)$/.exec(text)?.[1]);
  }
  assert.ok(dropped >= 1 && dropped <= 4, JSON.stringify(logs)); // connect 3, disconnects
  const kept = logs.filter((l) => !warnings.includes(l)).slice(0, 2);
  assert.deepEqual(kept, [
    ['debug', `client ${ids[0]} connected from 127.0.0.1`],
    ['debug', `client ${ids[1]} connected from 127.0.0.1`],
  ]);
  assert.ok(!logs.some(([, line]) => line === `client ${ids[2]} connected from 127.0.0.1`));
});

test('logQueue 0: no line reaches the logger', async (t) => {
  const [h, logs] = await started(t, { logLevel: 'debug', logQueue: 0 });
  const [peer, c] = await h.connect();
  peer.ws.close(1000);
  assert.equal(await h.disconnects.next('disconnect'), c);
  assert.equal(await h.server.shutdown(2000), true);
  assert.deepEqual(logs, []);
});
