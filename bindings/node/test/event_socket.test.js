'use strict';
// The core's event socket (option eventSocket) through the Node binding: a
// byte when events wait, EOF and the path gone at shutdown, a path that
// cannot be bound refused at start (C: tests/test_event_socket.c).

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { once } = require('node:events');
const { Server, WsnotifyError } = require('..');
const { harness, within } = require('./helpers');

test('a byte when events wait, then EOF and the path unlinked at shutdown', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsn-evsock-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'events.sock');
  const h = await harness(t, { eventSocket: file });
  assert.ok(fs.statSync(file).isSocket());
  const host = net.createConnection({ path: file });
  await within(once(host, 'connect'), 'the event socket connection');
  const bytes = [];
  const ended = once(host, 'end');
  host.on('data', (b) => bytes.push(...b));
  const first = once(host, 'data');
  await h.connect();
  await within(first, 'a byte for the CONNECT event');
  assert.ok(bytes.length >= 1 && bytes.every((b) => b === 0x21));
  assert.equal(await h.server.shutdown(5000), true);
  await within(ended, 'EOF at shutdown');
  assert.equal(fs.existsSync(file), false);
});

test('a path that cannot be bound: start() rejects with WSN_EIO naming it', async () => {
  const s = new Server({ port: 0, eventSocket: path.join(os.tmpdir(), 'no-such-dir-wsn', 'x', 's') });
  await assert.rejects(s.start(), (e) => e instanceof WsnotifyError && e.code === 'WSN_EIO' &&
    /event_socket: cannot listen on/.test(e.message));
});
