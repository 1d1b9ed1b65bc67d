'use strict';
// Client metadata: typed values as the core stores them, limits, and
// reading after the client has gone.

const test = require('node:test');
const assert = require('node:assert/strict');
const { harness } = require('./helpers');

test('values keep their types', async (t) => {
  const h = await harness(t);
  const [, c] = await h.connect();
  const values = {
    s: 'alice ✓',
    i: 123,
    neg: -7,
    big: 2n ** 62n,
    maxSafe: Number.MAX_SAFE_INTEGER,
    d: 2.5,
    t: true,
    f: false,
    bytes: Buffer.from([0, 1, 0xff]),
    obj: { roles: ['a', 'b'], n: null },
    arr: [1, 'x'],
    nul: null,
  };
  for (const [k, v] of Object.entries(values)) c.setMetadata(k, v);
  assert.equal(c.getMetadata('s'), 'alice ✓');
  assert.equal(c.getMetadata('i'), 123);
  assert.equal(c.getMetadata('neg'), -7);
  assert.equal(c.getMetadata('big'), 2n ** 62n); // beyond a double: BigInt
  assert.equal(c.getMetadata('maxSafe'), Number.MAX_SAFE_INTEGER);
  assert.equal(c.getMetadata('d'), 2.5);
  assert.equal(c.getMetadata('t'), true);
  assert.equal(c.getMetadata('f'), false);
  assert.deepEqual(c.getMetadata('bytes'), Buffer.from([0, 1, 0xff]));
  assert.deepEqual(c.getMetadata('obj'), { roles: ['a', 'b'], n: null });
  assert.deepEqual(c.getMetadata('arr'), [1, 'x']);
  assert.equal(c.getMetadata('nul'), null);
  assert.equal(c.getMetadata('missing'), undefined);
  assert.deepEqual(c.metadataKeys().sort(), Object.keys(values).sort());
  assert.equal(Object.keys(c.metadata).length, Object.keys(values).length);
  assert.equal(c.metadata.big, 2n ** 62n);
  // a small BigInt comes back as a Number: the core keeps one int64 type
  c.setMetadata('small', 5n);
  assert.equal(c.getMetadata('small'), 5);
  // replace with another type, delete
  c.setMetadata('i', 'now a string');
  assert.equal(c.getMetadata('i'), 'now a string');
  assert.equal(c.deleteMetadata('i'), true);
  assert.equal(c.deleteMetadata('i'), false);
  assert.equal(c.getMetadata('i'), undefined);
  const long = 'x'.repeat(5000);
  c.setMetadata('long', long);
  assert.equal(c.getMetadata('long'), long);
});

test('bad keys and values', async (t) => {
  const h = await harness(t, { maxMetadataBytes: 1024 });
  const [, c] = await h.connect();
  assert.throws(() => c.setMetadata('', 1), { code: 'WSN_EINVAL' });
  assert.throws(() => c.setMetadata(5, 1), TypeError);
  assert.throws(() => c.setMetadata('k', undefined), TypeError);
  assert.throws(() => c.setMetadata('k', 2n ** 64n), RangeError);
  assert.throws(() => c.setMetadata('k', 'x'.repeat(2000)), { code: 'WSN_ELIMIT' });
  assert.equal(c.getMetadata('k'), undefined);
});

test('metadata stays readable in the disconnect handler and after', async (t) => {
  const h = await harness(t);
  const [ws, c] = await h.connect();
  c.setMetadata('user', 'bob');
  let inHandler;
  h.server.on('disconnect', (client) => { inHandler = client.getMetadata('user'); });
  ws.ws.close();
  assert.equal(await h.disconnects.next('disconnect'), c);
  assert.equal(inHandler, 'bob');
  assert.equal(c.getMetadata('user'), 'bob');
  assert.equal(c.connected, false);
  assert.throws(() => c.setMetadata('x', 1), { code: 'WSN_EGONE' });
  assert.throws(() => h.server.subscribe(c, 'c'), { code: 'WSN_EGONE' });
  await assert.rejects(h.server.publishToClient(c, 'c', 1), { code: 'WSN_EGONE' });
});

test('remoteAddress and subprotocol', async (t) => {
  const h = await harness(t);
  const [, c] = await h.connect();
  assert.equal(c.remoteAddress, '127.0.0.1');
  assert.equal(c.subprotocol, '');
  assert.match(c.id, /^c_\d+$/);
  const [, c2] = await h.connect(['wsnotify.json']);
  assert.equal(c2.subprotocol, 'wsnotify.json');
  assert.notEqual(c2.id, c.id);
});

test('edge values: NaN, infinities, int64 bounds, empty text and bytes', async (t) => {
  const h = await harness(t);
  const [, c] = await h.connect();
  const values = [
    ['nan', NaN], ['inf', Infinity], ['-inf', -Infinity], ['tiny', -0.25], ['huge', 1e300],
    ['max', 2n ** 63n - 1n], ['min', -(2n ** 63n)], ['empty', ''], ['emoji', 'é😀'],
    ['none', Buffer.alloc(0)], ['zeros', Buffer.from([0, 0xff, 0])],
  ];
  for (const [k, v] of values) c.setMetadata(k, v);
  for (const [k, v] of values) assert.deepEqual(c.getMetadata(k), v, k);
  assert.ok(Number.isNaN(c.metadata.nan));
});
