'use strict';
// Browser end-to-end test of the wsnotify chat page (examples/chat/index.html)
// against every chat example server that e2e/run.sh started.
//
// Debian's /usr/bin/chromium, driven by playwright-core (no browser
// download), headless, kept off the network. Every wait is on a DOM
// condition with a timeout; there are no fixed sleeps.
//
// The servers come from WSN_E2E_TARGETS, a JSON array written by run.sh:
//   [{"name":"c","url":"http://127.0.0.1:41234/","pid":1234,"log":"..."},
//    {"name":"python","error":"server did not start","log":"..."}]
// "pid" is the server process: the last step sends it SIGTERM (run.sh
// then checks that it exited 0). Without a pid that step is skipped. An
// entry with "error" is one run.sh could not start: it fails loudly here.
//
// Other knobs: WSN_E2E_CHROMIUM (default /usr/bin/chromium),
// WSN_E2E_ARTIFACTS (default e2e/artifacts), WSN_E2E_WAIT_MS (default
// 10000: the timeout of each DOM wait).

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { chromium } = require('playwright-core');

const CHROMIUM = process.env.WSN_E2E_CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = path.resolve(process.env.WSN_E2E_ARTIFACTS || path.join(__dirname, 'artifacts'));
const WAIT_MS = Number(process.env.WSN_E2E_WAIT_MS || 10000);

// Flags that keep Chromium off the network (no sync, no updates, no
// background fetches, no QUIC, no proxy). playwright-core gives every
// launch a fresh temporary --user-data-dir of its own and deletes it on
// close (it refuses a --user-data-dir in args).
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--no-proxy-server',
  '--disable-default-apps',
  '--disable-extensions',
  '--metrics-recording-only',
  '--no-default-browser-check',
];

const LOBBY = 'lobby';
const OTHER = 'elsewhere';
const CLOSE_REASON = 'code 1001: server shutdown';

function readTargets() {
  const raw = process.env.WSN_E2E_TARGETS;
  if (!raw) return null;
  const list = JSON.parse(raw);
  assert.ok(Array.isArray(list), 'WSN_E2E_TARGETS must be a JSON array');
  return list;
}

function logTail(file, lines = 15) {
  try {
    const text = fs.readFileSync(file, 'utf8').trimEnd().split('\n');
    return text.slice(-lines).join('\n');
  } catch (e) {
    return `(no log: ${e.message})`;
  }
}

// ---- page helpers -------------------------------------------------------

// Every log line of the page as plain data.
function logEntries(page) {
  return page.$$eval('#log li', (lis) => lis.map((li) => ({
    kind: li.className,
    time: li.querySelector('.time') ? li.querySelector('.time').textContent : null,
    iso: li.querySelector('.time') ? li.querySelector('.time').title : null,
    channel: li.querySelector('.channel') ? li.querySelector('.channel').textContent : null,
    body: li.querySelector('.body') ? li.querySelector('.body').textContent : null,
    elements: li.querySelector('.body') ? li.querySelector('.body').children.length : -1,
  })));
}

// Waits until the log has a line of the given kind whose body is exactly
// `body` (and, if given, whose channel is exactly `channel`).
async function waitForLine(page, kind, body, channel) {
  await page.waitForFunction(
    ([k, b, c]) => Array.from(document.querySelectorAll('#log li')).some((li) => {
      if (li.className !== k) return false;
      const bodyEl = li.querySelector('.body');
      if (!bodyEl || bodyEl.textContent !== b) return false;
      if (c === null) return true;
      const ch = li.querySelector('.channel');
      return !!ch && ch.textContent === c;
    }),
    [kind, body, channel === undefined ? null : channel],
    { timeout: WAIT_MS },
  );
}

// The one log line whose body is exactly `body`; fails if there are none
// or several.
async function onlyLine(page, body) {
  const hits = (await logEntries(page)).filter((e) => e.body === body);
  assert.equal(hits.length, 1, `exactly one log line "${body}" on ${page.__label}, got ${JSON.stringify(hits)}`);
  return hits[0];
}

async function expectConnected(page) {
  await page.waitForSelector('#status[data-state="connected"]', { timeout: WAIT_MS });
  assert.equal(await page.textContent('#status'), 'connected');
  assert.equal(await page.isEnabled('#join'), true, '#join enabled when connected');
  assert.equal(await page.isEnabled('#send'), true, '#send enabled when connected');
  assert.equal(await page.isHidden('#reconnect'), true, '#reconnect hidden when connected');
}

async function join(page, channel) {
  await page.fill('#channel', channel);
  await page.click('#join', { timeout: WAIT_MS });
  await waitForLine(page, 'system', `joined #${channel}`, `#${channel}`);
  await page.waitForFunction(
    (want) => Array.from(document.querySelectorAll('#channels .chip')).some((c) => c.textContent === want),
    `#${channel}`,
    { timeout: WAIT_MS },
  );
}

async function send(page, channel, text) {
  await page.fill('#channel', channel);
  await page.fill('#text', text);
  await page.click('#send', { timeout: WAIT_MS });
  // The page clears the input once the frame went out.
  await page.waitForFunction(() => document.getElementById('text').value === '', null, { timeout: WAIT_MS });
}

function pad2(n) { return String(n).padStart(2, '0'); }

// Checks one chat line exactly: kind, channel, body, and that the time shown
// is the time the server put in the envelope (pages run in UTC).
function checkChatLine(page, line, channel, text, notBefore, notAfter) {
  const label = page.__label;
  assert.equal(line.kind, 'message', `${label}: line kind`);
  assert.equal(line.channel, `#${channel}`, `${label}: channel shown`);
  assert.equal(line.body, text, `${label}: text shown`);
  assert.equal(line.elements, 0, `${label}: the text is text, not markup`);

  // The envelope the page received for it.
  const envs = page.__frames.filter((f) => f && f.message && f.message.text === text);
  assert.equal(envs.length, 1, `${label}: exactly one frame carries "${text}", got ${envs.length}`);
  const env = envs[0];
  assert.equal(env.type, 'json', `${label}: envelope type`);
  assert.equal(env.channel, channel, `${label}: envelope channel`);
  assert.deepEqual(env.message, { action: 'broadcast', text }, `${label}: envelope message`);
  assert.equal(typeof env.time, 'string', `${label}: envelope has a time`);
  const when = new Date(env.time);
  assert.ok(!Number.isNaN(when.getTime()), `${label}: envelope time "${env.time}" parses`);
  assert.ok(when.getTime() >= notBefore - 2000 && when.getTime() <= notAfter + 2000,
    `${label}: envelope time ${env.time} within the send (${new Date(notBefore).toISOString()} .. ${new Date(notAfter).toISOString()})`);

  const shown = `${pad2(when.getUTCHours())}:${pad2(when.getUTCMinutes())}:${pad2(when.getUTCSeconds())}`;
  assert.match(line.time, /^\d\d:\d\d:\d\d$/, `${label}: time shown as HH:MM:SS`);
  assert.equal(line.time, shown, `${label}: time shown is the envelope's`);
  assert.equal(line.iso, when.toISOString(), `${label}: time tooltip is the envelope's`);
}

async function screenshot(page, file) {
  const out = path.join(ARTIFACTS, file);
  await page.screenshot({ path: out, fullPage: true, timeout: WAIT_MS });
  return out;
}

// One picture of several pages side by side, made by the browser itself.
async function sideBySide(browser, shots, file) {
  const page = await browser.newPage({ viewport: { width: 100, height: 100 } });
  try {
    const cells = shots.map(([label, png]) => `<figure><figcaption>${label}</figcaption>` +
      `<img src="data:image/png;base64,${fs.readFileSync(png).toString('base64')}"></figure>`).join('');
    await page.setContent(`<!DOCTYPE html><html><head><style>
      body { margin: 0; display: flex; gap: 12px; padding: 12px; background: #cbd2d9;
             font: 14px system-ui, sans-serif; width: max-content; }
      figure { margin: 0; } figcaption { font-weight: 600; margin-bottom: 6px; }
      img { display: block; border: 1px solid #9aa5b1; }
    </style></head><body>${cells}</body></html>`);
    await page.waitForFunction(() => Array.from(document.images).every((i) => i.complete && i.naturalWidth > 0),
      null, { timeout: WAIT_MS });
    const out = path.join(ARTIFACTS, file);
    await page.locator('body').screenshot({ path: out, timeout: WAIT_MS });
    return out;
  } finally {
    await page.close();
  }
}

// ---- the scenario, once per example server ------------------------------

function scenario(target) {
  const { name, url, pid } = target;
  const s = { browser: null, pages: {}, failed: false };
  let counter = 0;
  const token = `${name}-${process.pid}-${Date.now().toString(36)}`;

  // Each step runs only if the ones before passed: later steps build on
  // their state and would only repeat the first failure.
  function step(title, fn) {
    test(title, async (t) => {
      if (s.failed) {
        t.skip('an earlier step failed');
        return;
      }
      try {
        await fn(t);
      } catch (e) {
        s.failed = true;
        await Promise.all(Object.entries(s.pages).map(([label, p]) =>
          p.screenshot({ path: path.join(ARTIFACTS, `${name}-FAILED-${label}.png`), fullPage: true, timeout: WAIT_MS })
            .catch(() => {})));
        if (target.log && e && typeof e === 'object') {
          const tail = `\n--- server log (${target.log}), last lines ---\n${logTail(target.log)}`;
          if (typeof e.stack === 'string') e.stack += tail; else e.message += tail;
        }
        throw e;
      }
    });
  }

  async function openPage(label) {
    const ctx = await s.browser.newContext({
      ignoreHTTPSErrors: true, // c-secure's test certificate
      timezoneId: 'UTC',
      locale: 'en-US',
      viewport: { width: 800, height: 720 },
    });
    const page = await ctx.newPage();
    page.__label = `page ${label}`;
    page.__frames = [];
    page.__errors = [];
    page.on('pageerror', (e) => page.__errors.push(String(e)));
    page.on('websocket', (ws) => {
      ws.on('framereceived', (f) => {
        try { page.__frames.push(JSON.parse(f.payload)); } catch (e) { page.__frames.push({ unparsable: String(f.payload) }); }
      });
    });
    s.pages[label] = page;
    return page;
  }

  before(async () => {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    s.browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: 60000,
    });
  });

  after(async () => {
    if (s.browser) await s.browser.close();
  });

  step('three pages load the chat page and connect', async () => {
    for (const label of ['A', 'B', 'C']) {
      const page = await openPage(label);
      const res = await page.goto(url, { waitUntil: 'load', timeout: WAIT_MS });
      assert.equal(res.status(), 200, `GET ${url}`);
      assert.equal(await page.title(), 'wsnotify chat');
      await expectConnected(page);
      const page_url = new URL(url);
      const wsUrl = new URL('/ws', url).href.replace(/^http/, 'ws') +
        (page_url.searchParams.get('token') ? `?token=${page_url.searchParams.get('token')}` : '');
      await waitForLine(page, 'system', `connected to ${wsUrl}`);
      assert.equal(await page.textContent('#channels'), 'none yet');
    }
  });

  step(`pages A and B join #${LOBBY}, page C joins #${OTHER}`, async () => {
    await join(s.pages.A, LOBBY);
    await join(s.pages.B, LOBBY);
    await join(s.pages.C, OTHER);
    for (const [label, ch] of [['A', LOBBY], ['B', LOBBY], ['C', OTHER]]) {
      const chips = await s.pages[label].$$eval('#channels .chip', (els) => els.map((e) => e.textContent));
      assert.deepEqual(chips, [`#${ch}`], `page ${label} joined channels`);
      const line = await onlyLine(s.pages[label], `joined #${ch}`);
      assert.equal(line.kind, 'system');
      assert.equal(line.channel, `#${ch}`);
      assert.match(line.time, /^\d\d:\d\d:\d\d$/);
    }
  });

  const msgA = `Hello from page A <b>not bold</b> & ünïcödé ✓ [${token}]`;
  const msgB = `Hi A, page B here: all good [${token}]`;

  step('a message sent on one page shows on both pages of its channel, with channel and time', async () => {
    const { A, B } = s.pages;
    let t0 = Date.now();
    await send(A, LOBBY, msgA);
    await Promise.all([waitForLine(A, 'message', msgA, `#${LOBBY}`), waitForLine(B, 'message', msgA, `#${LOBBY}`)]);
    let t1 = Date.now();
    for (const page of [A, B]) checkChatLine(page, await onlyLine(page, msgA), LOBBY, msgA, t0, t1);

    t0 = Date.now();
    await send(B, LOBBY, msgB);
    await Promise.all([waitForLine(A, 'message', msgB, `#${LOBBY}`), waitForLine(B, 'message', msgB, `#${LOBBY}`)]);
    t1 = Date.now();
    for (const page of [A, B]) checkChatLine(page, await onlyLine(page, msgB), LOBBY, msgB, t0, t1);

    // Both pages list the two messages in the same order.
    for (const page of [A, B]) {
      const bodies = (await logEntries(page)).filter((e) => e.kind === 'message').map((e) => e.body);
      assert.deepEqual(bodies, [msgA, msgB], `${page.__label}: chat lines in order`);
    }
  });

  step('a screenshot of the two chatting pages is saved', async () => {
    const a = await screenshot(s.pages.A, `${name}-chat-page-A.png`);
    const b = await screenshot(s.pages.B, `${name}-chat-page-B.png`);
    const pair = await sideBySide(s.browser, [[`page A (${name} server)`, a], [`page B (${name} server)`, b]],
      `${name}-chat-pair.png`);
    for (const f of [a, b, pair]) assert.ok(fs.statSync(f).size > 1000, `${f} written`);
  });

  step(`page C on #${OTHER} does not get #${LOBBY}'s messages`, async () => {
    const { A, C } = s.pages;
    // A barrier instead of a sleep: page A, which sent msgA, now sends on
    // C's channel. The server handles one connection's frames in order,
    // so once C shows this one, msgA was handled before it.
    const marker = `marker on #${OTHER} from page A [${token}]`;
    const t0 = Date.now();
    await send(A, OTHER, marker);
    await waitForLine(C, 'message', marker, `#${OTHER}`);
    checkChatLine(C, await onlyLine(C, marker), OTHER, marker, t0, Date.now());
    const bodies = (await logEntries(C)).map((e) => e.body);
    assert.ok(!bodies.includes(msgA), `page C shows no "${msgA}"`);
    assert.ok(!bodies.includes(msgB), `page C shows no "${msgB}"`);
    assert.deepEqual(C.__frames.filter((f) => f && f.channel === LOBBY), [], `page C got no frame of #${LOBBY}`);
    await A.fill('#channel', LOBBY);
  });

  step(`page B reloads, rejoins #${LOBBY} and gets the next message`, async () => {
    const { A, B } = s.pages;
    B.__frames = [];
    await B.reload({ waitUntil: 'load', timeout: WAIT_MS });
    await expectConnected(B);
    assert.equal(await B.textContent('#channels'), 'none yet', 'a reloaded page starts with no channel');
    await join(B, LOBBY);
    const msg = `After the reload of page B [${token}]`;
    const t0 = Date.now();
    await send(A, LOBBY, msg);
    await Promise.all([waitForLine(A, 'message', msg, `#${LOBBY}`), waitForLine(B, 'message', msg, `#${LOBBY}`)]);
    const t1 = Date.now();
    for (const page of [A, B]) checkChatLine(page, await onlyLine(page, msg), LOBBY, msg, t0, t1);
    const bBodies = (await logEntries(B)).filter((e) => e.kind === 'message').map((e) => e.body);
    assert.deepEqual(bBodies, [msg], 'the reloaded page B shows only what came after it rejoined');
  });

  if (new URL(url).searchParams.get('token')) {
    step('a page without the token is refused: closed with 4401, counted in /metrics', async () => {
      const page = await openPage('D');
      const bare = new URL(url);
      bare.search = '';
      await page.goto(bare.href, { waitUntil: 'load', timeout: WAIT_MS });
      await page.waitForSelector('#status[data-state="disconnected"]', { timeout: WAIT_MS });
      assert.equal(await page.getAttribute('#status', 'title'), 'code 4401: bad or missing token');
      const res = await page.request.get(new URL('/metrics', url).href, { timeout: WAIT_MS });
      assert.equal(res.status(), 200);
      const text = await res.text();
      assert.match(text, /^wsnotify_connections_refused_total\{reason="auth"\} [1-9]/m);
      assert.match(text, /^wsnotify_connections 3$/m);
      await page.close();
      delete s.pages.D;
    });
  }

  step('the server shuts down and every page shows it was disconnected', async (t) => {
    if (!pid) {
      t.skip('no server pid given (WSN_E2E_TARGETS entry without "pid")');
      return;
    }
    process.kill(pid, 'SIGTERM');
    for (const label of ['A', 'B', 'C']) {
      const page = s.pages[label];
      await page.waitForSelector('#status[data-state="disconnected"]', { timeout: WAIT_MS });
      assert.equal(await page.textContent('#status'), 'disconnected', `page ${label} status text`);
      assert.equal(await page.getAttribute('#status', 'title'), CLOSE_REASON, `page ${label} status tooltip`);
      assert.equal(await page.isDisabled('#join'), true, `page ${label} #join disabled`);
      assert.equal(await page.isDisabled('#send'), true, `page ${label} #send disabled`);
      await page.waitForSelector('#reconnect', { state: 'visible', timeout: WAIT_MS });
      const last = (await logEntries(page)).pop();
      assert.equal(last.kind, 'error', `page ${label}: last log line kind`);
      assert.equal(last.body, `disconnected (${CLOSE_REASON})`, `page ${label}: last log line`);
      assert.match(last.time, /^\d\d:\d\d:\d\d$/);
    }
    await screenshot(s.pages.A, `${name}-disconnected-page-A.png`);
  });

  step('no page had a script error', async () => {
    for (const [label, page] of Object.entries(s.pages)) {
      assert.deepEqual(page.__errors, [], `page ${label} script errors`);
    }
  });
}

// ---- entry ---------------------------------------------------------------

const targets = readTargets();
if (!targets) {
  test('WSN_E2E_TARGETS names the servers to test', () => {
    assert.fail('WSN_E2E_TARGETS is not set: run `bash e2e/run.sh`, which builds and starts the chat servers');
  });
} else {
  for (const target of targets) {
    describe(`chat example "${target.name}"`, { timeout: 180000 }, () => {
      if (target.error) {
        test('the server starts', () => {
          assert.fail(`${target.name}: ${target.error}` +
            (target.log ? `\n--- ${target.log}, last lines ---\n${logTail(target.log)}` : ''));
        });
        return;
      }
      scenario(target);
    });
  }
}
