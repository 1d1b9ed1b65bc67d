'use strict';
// TLS (wss://, https://): certificates made at test time by
// tests/tls/make_certs.sh (Debian's openssl), real TLS clients (ws, https,
// tls, net), the server's refusals seen in its log.

const test = require('node:test');
const assert = require('node:assert/strict');
const { once } = require('node:events');
const { X509Certificate } = require('node:crypto');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const https = require('node:https');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const tls = require('node:tls');
const { Server, WsnotifyError } = require('..');
const { Harness, Queue, WebSocket, within, env } = require('./helpers');

const MAKE_CERTS = path.join(__dirname, '..', '..', '..', 'tests', 'tls', 'make_certs.sh');

function makeCerts(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsn-tls-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  execFileSync('bash', [MAKE_CERTS, dir]);
  const file = (name) => path.join(dir, name);
  return { dir, file, read: (name) => fs.readFileSync(file(name)) };
}

// A started TLS server whose info log lines are queued (refusals show there).
async function tlsHarness(t, certs, options = {}) {
  const log = new Queue();
  const server = new Server({
    host: '127.0.0.1', port: 0, tlsCert: certs.file('server.pem'), tlsKey: certs.file('server.key'),
    logLevel: 'info', logger: (level, line) => log.push(line), ...options,
  });
  await server.start();
  const h = new Harness(server, { tlsCert: true });
  h.log = log;
  t.after(() => h.close());
  return h;
}

async function nextLine(h, re) {
  for (;;) {
    const line = await h.log.next(`a log line matching ${re}`);
    if (re.test(line)) return line;
  }
}

const FAILED = /TLS handshake\(s\) failed or stalled/;

// A ws client's first 'open' or 'error' (a refused TLS client never opens).
async function outcome(ws) {
  const r = await within(new Promise((resolve) => {
    ws.once('open', () => resolve('open'));
    ws.once('error', (e) => resolve(`error ${e.code || e.message}`));
  }), 'open or error');
  ws.on('error', () => {});
  ws.terminate();
  return r;
}

test('wss: a publish reaches a subscriber exactly; its message reaches the handler', async (t) => {
  const certs = makeCerts(t);
  const h = await tlsHarness(t, certs);
  assert.match(h.url, /^wss:\/\/127\.0\.0\.1:\d+\/ws$/);
  const [peer, client] = await h.connect(undefined, { ca: certs.read('ca.pem') });
  h.server.subscribe(client, 'news');
  await h.server.publish('news', { title: 'hello over wss' });
  assert.equal(await peer.nextEnvelope(), env('news', 'json', '{"title":"hello over wss"}'));
  const got = once(h.server, 'message');
  peer.send({ type: 'json', channel: 'news', message: [1, 2] });
  const [from, msg] = await within(got, 'message');
  assert.equal(from.id, client.id);
  assert.deepEqual(msg.message, [1, 2]);
});

test('a client trusting another CA refuses the server; the server counts the failed handshake', async (t) => {
  const certs = makeCerts(t);
  const h = await tlsHarness(t, certs);
  assert.match(await outcome(new WebSocket(h.url, { ca: certs.read('other.pem') })),
    /^error (UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)$/);
  assert.match(await nextLine(h, FAILED), /1 TLS handshake/);
  assert.equal(h.server.connectedClients(), 0);
});

test('a plain ws:// client on the TLS port gets no WebSocket', async (t) => {
  const certs = makeCerts(t);
  const h = await tlsHarness(t, certs);
  const plain = h.url.replace(/^wss:/, 'ws:');
  assert.match(await outcome(new WebSocket(plain)), /^error /);
  await nextLine(h, FAILED);
  assert.equal(h.server.connectedClients(), 0);
});

test('client certificate required: refused without one or with one of another CA, accepted with one', async (t) => {
  const certs = makeCerts(t);
  const h = await tlsHarness(t, certs, { tlsCa: certs.file('ca.pem'), tlsClientCert: 2 });
  const ca = certs.read('ca.pem');
  assert.match(await outcome(new WebSocket(h.url, { ca })), /^error /);
  assert.match(await nextLine(h, FAILED), /certificate required/);
  assert.match(await outcome(new WebSocket(h.url,
    { ca, cert: certs.read('other.pem'), key: certs.read('other.key') })), /^error /);
  const [peer, client] = await h.connect(undefined,
    { ca, cert: certs.read('client.pem'), key: certs.read('client.key') });
  h.server.subscribe(client, 'c');
  await h.server.publish('c', 1);
  assert.equal(await peer.nextEnvelope(), env('c', 'json', '1'));
  assert.equal(h.server.connectedClients(), 1);
});

test('a handshake that stalls (TCP connect, nothing sent) is closed by the server', async (t) => {
  const certs = makeCerts(t);
  const h = await tlsHarness(t, certs);
  const sock = net.connect(h.server.port, '127.0.0.1');
  sock.on('error', () => {});
  await within(once(sock, 'connect'), 'connect');
  // lws's idle bound is 10 s; 30 s leaves a slow build room.
  await within(once(sock, 'close'), 'the server closing the stalled connection', 30000);
  assert.match(await nextLine(h, FAILED), /no alert sent/);
});

test('reloadTls: an open connection stays; a new one sees the new certificate; a bad pair is refused', async (t) => {
  const certs = makeCerts(t);
  fs.copyFileSync(certs.file('server.pem'), certs.file('live.pem'));
  fs.copyFileSync(certs.file('server.key'), certs.file('live.key'));
  const h = await tlsHarness(t, certs, { tlsCert: certs.file('live.pem'), tlsKey: certs.file('live.key') });
  const ca = certs.read('ca.pem');
  const fp = (name) => new X509Certificate(certs.read(name)).fingerprint256;
  const [peer, client] = await h.connect(undefined, { ca });
  h.server.subscribe(client, 'news');
  assert.equal(peer.ws._socket.getPeerCertificate().fingerprint256, fp('server.pem'));

  fs.copyFileSync(certs.file('server2.pem'), certs.file('live.pem'));
  fs.copyFileSync(certs.file('server2.key'), certs.file('live.key'));
  await h.server.reloadTls();
  const [fresh] = await h.connect(undefined, { ca });
  assert.equal(fresh.ws._socket.getPeerCertificate().fingerprint256, fp('server2.pem'));
  await h.server.publish('news', 'after the reload');
  assert.equal(await peer.nextEnvelope(), env('news', 'json', '"after the reload"'));

  fs.copyFileSync(certs.file('server.key'), certs.file('live.key'));
  await assert.rejects(h.server.reloadTls(), (e) => e instanceof WsnotifyError && e.code === 'WSN_EIO' &&
    /is not the key of tls_cert/.test(e.message));
  const [again] = await h.connect(undefined, { ca });
  assert.equal(again.ws._socket.getPeerCertificate().fingerprint256, fp('server2.pem'));
});

test('reloadTls without TLS rejects with WSN_EINVAL', async (t) => {
  const server = new Server({ host: '127.0.0.1', port: 0 });
  await server.start();
  t.after(() => server.shutdown(2000));
  await assert.rejects(server.reloadTls(), (e) => e.code === 'WSN_EINVAL');
});

test('https: /healthz answers; ALPN offers h2 but gets http/1.1', async (t) => {
  const certs = makeCerts(t);
  const h = await tlsHarness(t, certs);
  const ca = certs.read('ca.pem');
  const body = await within(new Promise((resolve, reject) => {
    https.get({ host: '127.0.0.1', port: h.server.port, path: '/healthz', ca }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve(`${res.statusCode} ${text}`));
    }).on('error', reject);
  }), '/healthz');
  assert.equal(body, '200 ok');
  const sock = tls.connect({ host: '127.0.0.1', port: h.server.port, ca, ALPNProtocols: ['h2', 'http/1.1'] });
  await within(once(sock, 'secureConnect'), 'secureConnect');
  assert.equal(sock.alpnProtocol, 'http/1.1');
  sock.destroy();
});

test('tlsCert without tlsKey: the constructor names the option', () => {
  assert.throws(() => new Server({ port: 0, tlsCert: '/x.pem' }),
    (e) => e.code === 'WSN_EINVAL' && /tls_cert is set but tls_key is not/.test(e.message));
});

test('a missing certificate file: start() rejects naming it', async (t) => {
  const certs = makeCerts(t);
  const server = new Server({ host: '127.0.0.1', port: 0, tlsCert: certs.file('nope.pem'), tlsKey: certs.file('server.key') });
  await assert.rejects(server.start(), (e) => e.code === 'WSN_EIO' && /tls_cert .*nope\.pem: No such file/.test(e.message));
});
