'use strict';
// Plain HTTP beside the WebSocket endpoint: /healthz, static files, no
// static dir, the WebSocket path (wrong one refused, custom one served).

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { harness, upgradeAnswer } = require('./helpers');

function base(h) { return `http://127.0.0.1:${h.server.port}`; }

test('/healthz answers 200 ok; no staticDir means 404 at /', async (t) => {
  const h = await harness(t);
  const res = await fetch(`${base(h)}/healthz`);
  assert.equal(res.status, 200);
  assert.equal((await res.text()).trim(), 'ok');
  assert.equal((await fetch(`${base(h)}/`)).status, 404);
});

test('staticDir: index, a file, a missing file, the endpoint beside them', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsn-site-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'index.html'), '<h1>hi</h1>\n');
  fs.writeFileSync(path.join(dir, 'app.js'), 'console.log(1)\n');
  const h = await harness(t, { staticDir: dir });
  const index = await fetch(`${base(h)}/`);
  assert.equal(index.status, 200);
  assert.match(index.headers.get('content-type'), /^text\/html/);
  assert.equal(await index.text(), '<h1>hi</h1>\n');
  const app = await fetch(`${base(h)}/app.js`);
  assert.equal(app.status, 200);
  assert.equal(await app.text(), 'console.log(1)\n');
  assert.equal((await fetch(`${base(h)}/missing.html`)).status, 404);
  const [, c] = await h.connect();
  assert.equal(c.connected, true);
});

test('path: a wrong one is refused, a custom one served', async (t) => {
  const h = await harness(t);
  assert.match(await upgradeAnswer(`ws://127.0.0.1:${h.server.port}/other`), /^refused [45]\d\d$/);
  assert.equal(h.server.connectedClients(), 0);
  const custom = await harness(t, { path: '/events' });
  assert.equal(custom.url, `ws://127.0.0.1:${custom.server.port}/events`);
  const [, c] = await custom.connect();
  assert.equal(c.connected, true);
});
