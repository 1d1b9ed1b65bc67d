'use strict';
// The Redis broker through the binding: the option by name, brokerState(),
// the 'broker' event, WSN_EBROKER, publishToClientId across servers. Two
// servers in this process and a redis-server of the test's own
// (tests/test_broker.c runs three servers in separate processes).

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { once } = require('node:events');
const { Server } = require('..');
const { Harness, Queue, TIMEOUT } = require('./helpers');

function findRedis() {
  if (process.env.WSN_REDIS_SERVER) return process.env.WSN_REDIS_SERVER;
  try {
    return execFileSync('sh', ['-c', 'command -v redis-server']).toString().trim();
  } catch {
    return null;
  }
}
const REDIS = findRedis();

class Redis {
  constructor() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsnr-'));
    this.sock = path.join(this.dir, 'r.sock');
    this.url = `unix:${this.sock}`;
  }

  async start() {
    this.proc = spawn(REDIS, ['--port', '0', '--unixsocket', this.sock, '--save', '',
      '--appendonly', 'no', '--dir', this.dir, '--logfile', 'redis.log'], { stdio: 'ignore' });
    const deadline = Date.now() + 10000;
    for (;;) { // until it accepts: a bounded poll of connects
      const ok = await new Promise((resolve) => {
        const s = net.connect(this.sock, () => { s.destroy(); resolve(true); });
        s.on('error', () => resolve(false));
      });
      if (ok) return;
      assert.ok(Date.now() < deadline, 'redis-server did not start');
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  async kill() {
    const exited = once(this.proc, 'exit');
    this.proc.kill('SIGKILL');
    await exited;
    this.proc = null;
    fs.rmSync(this.sock, { force: true });
  }

  async end() {
    if (this.proc) await this.kill();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

async function brokerServer(t, url) {
  const server = new Server({ host: '127.0.0.1', port: 0, broker: url });
  const states = new Queue();
  server.on('broker', (state, reason) => states.push([state, reason]));
  await server.start();
  const h = new Harness(server);
  t.after(() => h.close());
  return [h, states];
}

async function expectState(states, want) {
  const [state, reason] = await states.next(`broker ${want}`);
  assert.equal(state, want, reason);
  return reason;
}

async function nextJson(peer) { return JSON.parse(await peer.next()); }

test('two servers: state, event, failover, publishToClientId', { skip: !REDIS && 'no redis-server' },
  async (t) => {
    const redis = new Redis();
    await redis.start();
    t.after(() => redis.end());
    const [a, ea] = await brokerServer(t, redis.url);
    const [b, eb] = await brokerServer(t, redis.url);
    await expectState(ea, 'up');
    await expectState(eb, 'up');
    const st = a.server.brokerState();
    assert.equal(st.state, 'up');
    assert.equal(st.serverId.length, 10);

    const [wa, ca] = await a.connect();
    const [wb, cb] = await b.connect();
    assert.ok(cb.id.startsWith(`c_${b.server.brokerState().serverId}_`), cb.id);
    a.server.subscribe(ca, 'room');
    b.server.subscribe(cb, 'room');
    // Probes until b's subscription is live in Redis. One wait for b's
    // first message across all probes: a wait per probe that timed out
    // would stay queued and take the next message, and every later wait
    // would then be one message behind (the first probe was missed under
    // load: "b never subscribed").
    const first = wb.messages.next('a probe', 200 * 50 + TIMEOUT).then(() => true);
    for (let i = 0; ; i++) {
      await a.server.publish('room', { probe: i });
      const got = await Promise.race([first,
        new Promise((resolve) => setTimeout(() => resolve(false), 50))]);
      if (got) break;
      assert.ok(i < 200, 'b never subscribed');
    }
    await a.server.publish('room', { probe: 'end' });
    while ((await nextJson(wb)).message.probe !== 'end');
    while ((await nextJson(wa)).message.probe !== 'end');

    await a.server.publish('room', { n: 1 });
    assert.deepEqual((await nextJson(wb)).message, { n: 1 });
    assert.deepEqual((await nextJson(wa)).message, { n: 1 });
    await a.server.publishToClientId(cb.id, 'dm', { to: 'b' });
    const dm = await nextJson(wb);
    assert.equal(dm.channel, 'dm');
    assert.deepEqual(dm.message, { to: 'b' });

    await redis.kill();
    assert.match(await expectState(ea, 'down'), /^redis unix:/);
    await expectState(eb, 'down');
    await assert.rejects(a.server.publish('room', { n: 2 }), { code: 'WSN_EBROKER' });
    assert.deepEqual((await nextJson(wa)).message, { n: 2 });
    await assert.rejects(a.server.publishToClientId(cb.id, 'dm', {}), { code: 'WSN_EBROKER' });

    await redis.start();
    await expectState(ea, 'up');
    await expectState(eb, 'up');
    await a.server.publish('room', { n: 3 });
    assert.deepEqual((await nextJson(wb)).message, { n: 3 });
    assert.equal(b.server.brokerState().reconnects, 1);
  });

test('no broker: state none', async () => {
  const server = new Server({ host: '127.0.0.1', port: 0 });
  assert.equal(server.brokerState().state, 'none');
  assert.throws(() => new Server({ broker: 'http://x' }), /broker/);
});

