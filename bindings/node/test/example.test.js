'use strict';
// examples/node/chat.js as a user runs it: flags, the page, the protocol,
// and SIGTERM closing clients with 1001 and exiting 0. (The full protocol
// check is scripts/smoke_chat.py and scripts/smoke_msgpack.py.)

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const { once } = require('node:events');
const path = require('node:path');
const readline = require('node:readline');
const WebSocket = require('ws');
const { Peer, Queue, within } = require('./helpers');

const CHAT = path.resolve(__dirname, '..', '..', '..', 'examples', 'node', 'chat.js');

test('--help lists the flags and exits 0', () => {
  const r = spawnSync(process.execPath, [CHAT, '--help'], { encoding: 'utf8' });
  assert.equal(r.status, 0);
  for (const flag of ['--host', '--port', '--static-dir', '--verbose']) {
    assert.ok(r.stdout.includes(flag), flag);
  }
});

test('a bad port or a missing page exits 2', () => {
  let r = spawnSync(process.execPath, [CHAT, '--port', '70000'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /bad port '70000'/);
  r = spawnSync(process.execPath, [CHAT], { encoding: 'utf8', env: { ...process.env, WSN_PORT: 'x' } });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /bad WSN_PORT 'x'/);
  r = spawnSync(process.execPath, [CHAT, '--port', '0', '--static-dir', __dirname], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /no index.html/);
});

test('chat: subscribe, broadcast, SIGTERM closes with 1001 and exits 0', async () => {
  const proc = spawn(process.execPath, [CHAT], {
    env: { ...process.env, WSN_PORT: '0' }, stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = new Promise((resolve) => proc.on('exit', (code, sig) => resolve({ code, sig })));
  try {
    const lines = new Queue();
    readline.createInterface({ input: proc.stderr }).on('line', (l) => lines.push(l));
    let port;
    while (port === undefined) {
      const m = /http:\/\/127\.0\.0\.1:(\d+)\//.exec(await lines.next('startup line'));
      if (m) port = Number(m[1]);
    }
    const page = await (await fetch(`http://127.0.0.1:${port}/`)).text();
    assert.match(page, /id="log"/);
    const peers = [];
    for (const name of ['a', 'b']) {
      const p = new Peer(new WebSocket(`ws://127.0.0.1:${port}/ws`));
      await within(once(p.ws, 'open'), 'open');
      p.send({ type: 'json', channel: 'room', message: { action: 'subscribe', channel: 'room' }, message_id: `sub-${name}` });
      const reply = JSON.parse(await p.next());
      assert.deepEqual([reply.channel, reply.message, reply.reply_to_id],
        ['room', { status: 'subscribed', channel: 'room' }, `sub-${name}`]);
      peers.push(p);
    }
    // forwarded as received: an integer beyond a double stays exact
    peers[0].send('{"type":"json","channel":"room","message":{"action":"broadcast","text":"hi","big":18446744073709551615}}');
    for (const p of peers) {
      const got = await p.next();
      assert.match(got, /"message":\{"action":"broadcast","text":"hi","big":18446744073709551615\}/);
    }
    proc.kill('SIGTERM');
    for (const p of peers) assert.deepEqual(await p.closeResult(), { code: 1001, reason: 'server shutdown' });
    assert.deepEqual(await within(exited, 'exit'), { code: 0, sig: null });
  } finally {
    proc.kill('SIGKILL');
  }
});
