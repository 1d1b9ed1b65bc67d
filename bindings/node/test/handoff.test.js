'use strict';
// handoff(): a Node http server in this process is the front; on 'upgrade'
// it gives the socket and the request head to the engine (option
// handoffSocket), which serves the client with its real address
// (C: tests/test_handoff.c).

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { once } = require('node:events');
const { handoff, WsnotifyError } = require('..');
const { harness, within, Peer, WebSocket } = require('./helpers');

// The head as the client sent it: http.Server has parsed it, so it is put
// back together from the request line and the raw header pairs.
function headOf(req) {
  let text = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    text += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
  }
  return Buffer.from(text + '\r\n', 'latin1');
}

test('a handed client is served with its real address', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsn-handoff-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'handoff.sock');
  const h = await harness(t, { handoffSocket: file });
  const front = http.createServer();
  const errors = [];
  front.on('upgrade', (req, socket, rest) => {
    try {
      handoff(file, socket, Buffer.concat([headOf(req), rest]));
      socket.destroy();
    } catch (e) {
      errors.push(e);
      socket.destroy();
    }
  });
  front.listen(0, '127.0.0.1');
  await once(front, 'listening');
  t.after(() => front.close());
  const url = `ws://127.0.0.1:${front.address().port}/ws`;
  // From 127.0.0.2: a proxy would show the front's 127.0.0.1.
  const peer = new Peer(new WebSocket(url, { localAddress: '127.0.0.2' }));
  const opened = once(peer.ws, 'open');
  const client = await h.connects.next('connect');
  await within(opened, 'the handed connection opens');
  assert.deepEqual(errors, []);
  assert.equal(client.remoteAddress, '127.0.0.2');
  h.server.subscribe(client, 'news');
  h.server.publish('news', { n: 1 });
  const got = JSON.parse(await peer.next());
  assert.equal(got.channel, 'news');
  assert.deepEqual(got.message, { n: 1 });
  peer.ws.close();
  await h.disconnects.next('disconnect');
});

test('errors: no engine, too big, bad arguments', () => {
  const file = path.join(os.tmpdir(), `wsn-no-engine-${process.pid}.sock`);
  const a = new net.Socket();
  assert.throws(() => handoff(file, 0, 'GET /ws HTTP/1.1\r\n\r\n'),
    (e) => e instanceof WsnotifyError && e.code === 'WSN_ECLOSED');
  assert.throws(() => handoff(file, 0, Buffer.alloc(16385)),
    (e) => e instanceof WsnotifyError && e.code === 'WSN_ELIMIT');
  assert.throws(() => handoff(file, 0, ''),
    (e) => e instanceof WsnotifyError && e.code === 'WSN_EINVAL');
  assert.throws(() => handoff(file, a, 'GET'), TypeError);
  assert.throws(() => handoff(file, -1, 'GET'), RangeError);
});
