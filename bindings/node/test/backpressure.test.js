'use strict';
// Backpressure with a stalled reader (a ws peer whose socket is paused, so
// the kernel buffers fill and then its send queue): drop mode closes it at
// once with 1001 and the reason; block mode waits write_wait, then closes
// it the same way. A subscriber that keeps up loses nothing in either.

const test = require('node:test');
const assert = require('node:assert/strict');
const { harness } = require('./helpers');

const PAYLOAD = 'x'.repeat(16384);
// 600 x 16 KiB is far more than the kernel buffers of a peer that does not
// read (its receive window does not grow without reads), so its send
// queue must fill.
const FLOOD = 600;

// Publishes FLOOD messages; the fast peer reads each one before the next
// publish, so it is never behind.
async function flood(server, fast) {
  for (let n = 0; n < FLOOD; n++) {
    await server.publish('c', { i: n, p: PAYLOAD });
    assert.equal(JSON.parse(await fast.next()).message.i, n);
  }
}

async function stalledAndFast(h) {
  const [slow, sc] = await h.connect();
  slow.ws.pause();
  h.server.subscribe(sc, 'c');
  const [fast, fc] = await h.connect();
  h.server.subscribe(fc, 'c');
  return { slow, sc, fast, fc };
}

// closeGrace is long enough for the close frame to leave once the stalled
// peer reads again (after the flood): a peer that never reads is cut
// without one (1006) when it runs out.
// What the stalled peer got once it reads again: a prefix, then the close.
async function drained(slow) {
  slow.ws.resume();
  const close = await slow.closeResult('the slow peer closed');
  const got = slow.messages.items.map((m) => JSON.parse(m).message.i);
  assert.deepEqual(got, got.map((_, i) => i));
  assert.ok(got.length < FLOOD, `the slow peer got ${got.length} of ${FLOOD}`);
  return close;
}

for (const reason of [undefined, 'too slow, bye']) {
  test(`drop mode closes a stalled subscriber with 1001 (${reason || 'default reason'})`, async (t) => {
    const lines = [];
    const h = await harness(t, {
      dropOnBackpressure: true, sendBuffer: 4, closeGrace: 10000, backpressureReason: reason,
      logger: (level, line) => lines.push([level, line]),
    });
    const { slow, sc, fast, fc } = await stalledAndFast(h);
    await flood(h.server, fast);
    assert.deepEqual(await drained(slow), { code: 1001, reason: reason || 'going away: backpressure' });
    while (sc.connected) assert.equal(await h.disconnects.next('slow disconnect'), sc);
    await h.server.publish('c', 'end');
    assert.equal(JSON.parse(await fast.next()).message, 'end');
    assert.equal(fc.connected, true);
    assert.deepEqual(h.server.clientList(), [fc.id]);
    // the core's warning reached the logger on the JS thread
    assert.ok(lines.some(([level, line]) => level === 'warn' && line.includes(`client ${sc.id}: send queue full`)),
      JSON.stringify(lines));
  });
}

test('block mode closes a stalled subscriber after writeWait', async (t) => {
  const h = await harness(t, { sendBuffer: 2, writeWait: 300, closeGrace: 10000 });
  const { slow, sc, fast, fc } = await stalledAndFast(h);
  await flood(h.server, fast);
  assert.deepEqual(await drained(slow), { code: 1001, reason: 'going away: backpressure' });
  assert.equal(await h.disconnects.next('slow disconnect'), sc);
  await h.server.publish('c', 'end');
  assert.equal(JSON.parse(await fast.next()).message, 'end');
  assert.equal(fc.connected, true);
});

test('block mode: publishing never blocks the JS thread; a reader on it keeps up', async (t) => {
  const h = await harness(t, { sendBuffer: 2, writeWait: 10000 });
  const [reader, rc] = await h.connect();
  h.server.subscribe(rc, 'c');
  const total = 300;
  let waited = 0;
  const published = [];
  for (let i = 0; i < total; i++) {
    const p = h.server.publish('c', { i, p: PAYLOAD });
    published.push(p);
  }
  // the reader runs on this thread: with a publish that blocked, it could
  // not read and would be dropped after writeWait
  const got = [];
  while (got.length < total) {
    got.push(JSON.parse(await reader.next()).message.i);
    waited++;
  }
  await Promise.all(published);
  assert.deepEqual(got, Array.from({ length: total }, (_, i) => i));
  assert.equal(rc.connected, true);
  assert.equal(waited, total);
  // and the queue of waiting publishes kept their order with direct ones
  await h.server.publishToClient(rc, 'end', 'done');
  assert.equal(JSON.parse(await reader.next()).channel, 'end');
});
