'use strict';
// Close codes a peer gets for what it sends: invalid UTF-8 1007, protocol
// errors 1002, its own close echoed, a drop; one disconnect per client and
// the server goes on.

const test = require('node:test');
const assert = require('node:assert/strict');
const { harness, env } = require('./helpers');

// A masked client frame (mask key 0: the payload goes as is), written
// under ws so that ws does not refuse what it would not send.
function rawFrame(peer, opcode, payload, rsv = 0) {
  const body = Buffer.from(payload);
  assert.ok(body.length < 126);
  peer.ws._socket.write(Buffer.concat([
    Buffer.from([0x80 | (rsv << 4) | opcode, 0x80 | body.length, 0, 0, 0, 0]), body]));
}

test('invalid UTF-8 in a text frame: close 1007, no message', async (t) => {
  const h = await harness(t);
  let messages = 0;
  h.server.on('message', () => { messages++; });
  for (const bytes of [Buffer.from('{"type":"text","message":"\xff\xfe"}', 'latin1'),
    Buffer.from([0xc0, 0xaf]), Buffer.from([0xed, 0xa0, 0x80])]) {
    const [peer, c] = await h.connect();
    peer.ws.send(bytes, { binary: false });
    assert.equal((await peer.closeResult()).code, 1007);
    assert.equal(await h.disconnects.next('disconnect'), c);
  }
  assert.equal(messages, 0);
});

test('protocol errors: RSV bits, unknown opcode: 1002 or dropped', async (t) => {
  const h = await harness(t);
  for (const [opcode, payload, rsv] of [[1, '{}', 2], [1, '{}', 4], [3, 'x', 0]]) {
    const [peer, c] = await h.connect();
    rawFrame(peer, opcode, payload, rsv);
    const { code } = await peer.closeResult();
    assert.ok([1002, 1006].includes(code), `opcode ${opcode} rsv ${rsv}: close ${code}`);
    assert.equal(await h.disconnects.next('disconnect'), c);
  }
  assert.equal(h.server.connectedClients(), 0);
});

test('a client close is echoed; a drop is a disconnect', async (t) => {
  const h = await harness(t);
  const [peer, c] = await h.connect();
  peer.ws.close(1000, 'bye');
  assert.deepEqual(await peer.closeResult(), { code: 1000, reason: 'bye' });
  assert.equal(await h.disconnects.next('disconnect'), c);
  const [dropped, d] = await h.connect();
  dropped.ws.terminate();
  assert.equal(await h.disconnects.next('disconnect'), d);
  assert.equal(d.connected, false);
  assert.equal(h.server.connectedClients(), 0);
});

test('six bad peers: one disconnect each, and the server goes on', async (t) => {
  const h = await harness(t, { readLimit: 1024 });
  const conns = [];
  for (let i = 0; i < 6; i++) conns.push(await h.connect());
  const peers = conns.map(([p]) => p);
  peers[0].ws.send(Buffer.from([0xff]), { binary: false });
  peers[1].ws.send(Buffer.alloc(2048, 'b'));
  rawFrame(peers[2], 7, 'x');
  rawFrame(peers[3], 1, 'x', 4);
  peers[4].ws.close(1000);
  peers[5].ws.terminate();
  const seen = [];
  for (let i = 0; i < 6; i++) seen.push((await h.disconnects.next(`disconnect ${i + 1}`)).id);
  assert.deepEqual(seen.sort(), conns.map(([, c]) => c.id).sort());
  assert.equal(h.server.connectedClients(), 0);
  const codes = await Promise.all(peers.map((p) => p.closeResult()));
  assert.equal(codes[0].code, 1007);
  assert.equal(codes[1].code, 1009);
  assert.equal(codes[4].code, 1000);
  const [ws, c] = await h.connect();
  h.server.subscribe(c, 'c');
  await h.server.publish('c', 1);
  assert.equal(await ws.nextEnvelope(), env('c', 'json', '1'));
  assert.equal(h.disconnects.items.length, 0);
});
