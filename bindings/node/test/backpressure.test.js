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

// The JS thread is not given a turn between the publishes (no await), so
// the room the core finds for them is what it had. With a limit, the
// first refusal waits and so do the next limit - 1 (everything after a
// waiting publish queues behind it, in order); every later one rejects
// with WSN_ELIMIT at once. With 0 nothing waits: each refusal rejects and
// the next publish tries the core again. Once the stalled peer reads, it
// gets exactly the publishes that resolved, in order.
for (const limit of [3, 0]) {
  test(`publishQueueLimit ${limit}: publishes beyond it reject with WSN_ELIMIT`, async (t) => {
    const h = await harness(t, { sendBuffer: 2, writeWait: 10000, publishQueueLimit: limit });
    const [slow, sc] = await h.connect();
    slow.ws.pause();
    h.server.subscribe(sc, 'c');
    const state = [];
    const errors = [];
    const published = [];
    for (let i = 0; i < FLOOD; i++) {
      state.push('pending');
      published.push(h.server.publish('c', { i, p: PAYLOAD }).then(
        () => { state[i] = 'resolved'; },
        (e) => { state[i] = e.code; errors[i] = e; }));
    }
    // Microtasks only: settled now is what settled without room.
    for (let k = 0; k < 3; k++) await null;
    const firstRefused = state.findIndex((s) => s !== 'resolved');
    assert.ok(firstRefused > 0, `no publish was accepted or none refused (${firstRefused})`);
    if (limit > 0) {
      assert.deepEqual(state.slice(firstRefused, firstRefused + limit), Array(limit).fill('pending'));
      assert.deepEqual(state.slice(firstRefused + limit),
        Array(FLOOD - firstRefused - limit).fill('WSN_ELIMIT'));
    } else {
      assert.equal(state[firstRefused], 'WSN_ELIMIT');
      assert.deepEqual(state.filter((s) => s !== 'resolved' && s !== 'WSN_ELIMIT'), []);
    }
    const err = errors[state.indexOf('WSN_ELIMIT')];
    assert.equal(err.code, 'WSN_ELIMIT');
    assert.equal(err.errno, -12);
    assert.match(err.message, new RegExp(`${limit} publishes already wait for room: option publishQueueLimit`));
    // The peer reads again: what resolved, in order, and nothing else.
    slow.ws.resume();
    await Promise.all(published);
    assert.equal(state.filter((s) => s === 'pending').length, 0);
    const delivered = [];
    state.forEach((s, i) => { if (s === 'resolved') delivered.push(i); });
    assert.equal(delivered.length, FLOOD - state.filter((s) => s === 'WSN_ELIMIT').length);
    for (const i of delivered) {
      assert.equal(JSON.parse(await slow.next(`message ${i}`)).message.i, i);
    }
    await h.server.publish('c', 'end');
    assert.equal(JSON.parse(await slow.next('end')).message, 'end');
    assert.equal(sc.connected, true);
  });
}

test('publishQueueLimit must be an integer >= 0', () => {
  const { Server } = require('..');
  for (const bad of [-1, 1.5, '3']) {
    assert.throws(() => new Server({ port: 0, publishQueueLimit: bad }), RangeError);
  }
});
