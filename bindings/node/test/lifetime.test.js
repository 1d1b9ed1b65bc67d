'use strict';
// Lifetime: a running server keeps the process alive and a stopped one
// does not; worker_threads teardown shuts its engine down; collected
// servers free their engines; several servers in one process.

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const { once } = require('node:events');
const path = require('node:path');
const readline = require('node:readline');
const { Worker } = require('node:worker_threads');
const WebSocket = require('ws');
const { Server } = require('..');
const { Peer, Queue, within, env, harness } = require('./helpers');

const FIX = path.join(__dirname, 'fixtures');

function child(script, args = []) {
  const proc = spawn(process.execPath, [...args, path.join(FIX, script)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = new Queue();
  readline.createInterface({ input: proc.stdout }).on('line', (l) => lines.push(l));
  const exited = new Promise((resolve) => proc.on('exit', (code, sig) => resolve({ code, sig })));
  return { proc, lines, exited };
}

async function peer(port) {
  const p = new Peer(new WebSocket(`ws://127.0.0.1:${port}/ws`));
  await within(once(p.ws, 'open'), 'open');
  return p;
}

test('a running server keeps the process alive; after shutdown it exits by itself', async () => {
  const c = child('serve.js');
  try {
    const port = Number((await c.lines.next('port line')).split(' ')[1]);
    const p = await peer(port);
    // the script's code has finished: only the server keeps it running
    p.send({ type: 'json', channel: 'x', message: 'still there?' });
    assert.equal(await p.nextEnvelope(), env('echo', 'json', '"still there?"'));
    p.send({ type: 'json', channel: 'x', message: 'shutdown' });
    assert.equal(await p.nextEnvelope(), env('echo', 'json', '"shutdown"'));
    assert.deepEqual(await p.closeResult(), { code: 1001, reason: 'server shutdown' });
    assert.equal(await c.lines.next('stopped line'), 'stopped clean=true');
    assert.deepEqual(await within(c.exited, 'the process to exit'), { code: 0, sig: null });
  } finally {
    c.proc.kill();
  }
});

test('terminating a worker shuts its server down (close 1001)', async () => {
  const w = new Worker(path.join(FIX, 'worker.js'));
  const port = await within(once(w, 'message'), 'worker port').then(([p]) => p);
  const p = await peer(port);
  p.send({ type: 'json', channel: 'x', message: 'hi worker' });
  assert.equal(await p.nextEnvelope(), env('from-worker', 'json', '"hi worker"'));
  await w.terminate();
  assert.deepEqual(await p.closeResult(), { code: 1001, reason: 'server shutdown' });
});

test('servers that are collected free their engines', async () => {
  const c = child('gc.js', ['--expose-gc']);
  try {
    assert.equal(await c.lines.next('gc result'), 'collected 21 of 21');
    assert.deepEqual(await within(c.exited, 'the process to exit'), { code: 0, sig: null });
  } finally {
    c.proc.kill();
  }
});

test('several servers in one process, and in a worker at the same time', async (t) => {
  const a = await harness(t);
  const b = await harness(t);
  const w = new Worker(path.join(FIX, 'worker.js'));
  t.after(() => w.terminate());
  const wport = await within(once(w, 'message'), 'worker port').then(([p]) => p);
  const [pa, ca] = await a.connect();
  const [pb, cb] = await b.connect();
  const pw = await peer(wport);
  a.server.subscribe(ca, 'c');
  b.server.subscribe(cb, 'c');
  await a.server.publish('c', 'to a');
  await b.server.publish('c', 'to b');
  pw.send({ type: 'json', channel: 'x', message: 'to w' });
  assert.equal(await pa.nextEnvelope(), env('c', 'json', '"to a"'));
  assert.equal(await pb.nextEnvelope(), env('c', 'json', '"to b"'));
  assert.equal(await pw.nextEnvelope(), env('from-worker', 'json', '"to w"'));
  assert.notEqual(a.server.port, b.server.port);
  assert.ok(new Server({ port: 0 }) instanceof Server); // never started: nothing to clean
});
