'use strict';
// Options by name with the core's defaults and checks, versions, errors,
// the lifecycle's failures.

const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { once } = require('node:events');
const wsnotify = require('..');

const { Server, WsnotifyError, defaultOptions, optionNames } = wsnotify;

test('versions agree: package, header, library', () => {
  assert.equal(wsnotify.cVersion, require('../package.json').version);
  assert.equal(wsnotify.SUPPORTED_MAJOR, 0);
});

test('every core option by camelCase name, with the core defaults', () => {
  const names = optionNames();
  for (const n of ['host', 'port', 'path', 'staticDir', 'writeWait', 'pongWait', 'pingPeriod',
    'readLimit', 'sendBuffer', 'dropOnBackpressure', 'backpressureReason', 'closeGrace',
    'compression', 'allowedOrigins', 'maxClients', 'logLevel', 'logQueue', 'readBuffer']) {
    assert.ok(names.includes(n), n);
  }
  const d = defaultOptions();
  assert.equal(d.host, '127.0.0.1');
  assert.equal(d.port, 8080);
  assert.equal(d.path, '/ws');
  assert.equal(d.writeWait, 10000);
  assert.equal(d.pongWait, 60000);
  assert.equal(d.pingPeriod, 54000);
  assert.equal(d.sendBuffer, 256);
  assert.equal(d.dropOnBackpressure, false);
  assert.equal(d.backpressureReason, 'going away: backpressure');
  assert.equal(d.closeGrace, 200);
});

test('compression is refused with WSN_EUNSUPPORTED, naming the defect', () => {
  assert.throws(() => new Server({ compression: true }), (e) => e instanceof WsnotifyError &&
    e.code === 'WSN_EUNSUPPORTED' && /permessage-deflate/.test(e.message) && /proxy/.test(e.message));
  assert.doesNotThrow(() => new Server({ compression: false }));
});

test('unknown options are TypeErrors, bad values RangeErrors or TypeErrors', () => {
  assert.throws(() => new Server({ nope: 1 }), (e) => e instanceof TypeError && /unknown option 'nope'/.test(e.message));
  assert.throws(() => new Server({ write_wait: 1 }), TypeError); // camelCase only
  assert.throws(() => new Server({ port: 70000 }), RangeError);
  assert.throws(() => new Server({ port: -1 }), RangeError);
  assert.throws(() => new Server({ port: 1.5 }), TypeError);
  assert.throws(() => new Server({ port: '80' }), TypeError);
  assert.throws(() => new Server({ dropOnBackpressure: 1 }), TypeError);
  assert.throws(() => new Server({ host: 5 }), TypeError);
  assert.throws(() => new Server({ pingPeriod: 60000, pongWait: 60000 }), RangeError);
  assert.throws(() => new Server({ logLevel: 'loud' }), RangeError);
  assert.throws(() => new Server({ logger: 'console' }), TypeError);
  assert.throws(() => new Server(5), TypeError);
  const s = new Server({ port: 0, allowedOrigins: ['https://a.example', 'https://b.example'], logLevel: 'debug', writeWait: 2n, host: undefined });
  assert.ok(s instanceof Server);
});

test('eventsOnIoThread true is refused: its events would reach no JS handler', () => {
  assert.throws(() => new Server({ eventsOnIoThread: true }),
    (e) => e instanceof RangeError && /eventsOnIoThread: true is not supported/.test(e.message));
  new Server({ eventsOnIoThread: false });
});

test('start: port 0 picks a free port; start twice and a port in use fail with the code', async (t) => {
  const s = new Server({ host: '127.0.0.1', port: 0 });
  assert.equal(s.port, -1);
  await s.start();
  t.after(() => s.shutdown(1000));
  assert.ok(s.port > 0);
  await assert.rejects(s.start(), { code: 'WSN_ESTATE' });

  const blocker = net.createServer();
  blocker.listen(0, '127.0.0.1');
  await once(blocker, 'listening');
  t.after(() => blocker.close());
  const lines = [];
  const errors = [];
  const s2 = new Server({ host: '127.0.0.1', port: blocker.address().port, logger: (l, line) => lines.push([l, line]) });
  s2.on('error', (e) => errors.push(e));
  await assert.rejects(s2.start(), (e) => e instanceof WsnotifyError && e.code === 'WSN_EIO' && e.errno < 0);
  // the core's error line reached the logger and the 'error' listeners
  assert.ok(lines.some(([l, line]) => l === 'error' && line.startsWith('cannot listen on 127.0.0.1:')), JSON.stringify(lines));
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, 'WSN_LOG_ERROR');
  assert.match(errors[0].message, /^cannot listen on/);
});

test('a server never started shuts down cleanly', async () => {
  const s = new Server({ port: 0 });
  assert.equal(await s.shutdown(100), true);
  await assert.rejects(s.publish('c', 1), { code: 'WSN_ECLOSED' });
});

test('error names and texts', () => {
  assert.equal(wsnotify.errorName(-6), 'WSN_EBACKPRESSURE');
  assert.equal(typeof wsnotify.strerror(-6), 'string');
  const e = new WsnotifyError('x', 'WSN_EGONE', -5);
  assert.ok(e instanceof Error);
  assert.equal(e.code, 'WSN_EGONE');
});
