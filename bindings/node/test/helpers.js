'use strict';
// What the node:test suites share: a started server on a free port, real
// WebSocket peers (the ws package) with a queue of what they received,
// and awaiting a server event instead of sleeping.

const { once } = require('node:events');
const WebSocket = require('ws');
const { Server } = require('..');

const TIMEOUT = 10000;

// Rejects after ms with what was awaited, so a hang fails with a reason.
function within(promise, what, ms = TIMEOUT) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// Every 'connect' / 'disconnect' of a server, awaitable in order.
class Harness {
  constructor(server, options = {}) {
    this.server = server;
    this.host = options.host || '127.0.0.1';
    this.path = options.path || '/ws';
    this.scheme = options.tlsCert ? 'wss' : 'ws';
    this.connects = new Queue();
    this.disconnects = new Queue();
    this.peers = [];
    server.on('connect', (c) => this.connects.push(c));
    server.on('disconnect', (c) => this.disconnects.push(c));
  }

  get url() {
    const host = this.host.includes(':') ? `[${this.host}]` : this.host;
    return `${this.scheme}://${host}:${this.server.port}${this.path}`;
  }

  // A connected peer and the server's Client for it.
  async connect(protocols = undefined, opts = {}) {
    const peer = new Peer(new WebSocket(this.url, protocols, opts));
    this.peers.push(peer);
    await within(once(peer.ws, 'open'), 'open');
    const client = await this.connects.next('connect');
    return [peer, client];
  }

  async close() {
    for (const p of this.peers) p.ws.terminate();
    await this.server.shutdown(2000);
  }
}

// Items pushed by events, taken in order by awaiting next().
class Queue {
  constructor() { this.items = []; this.waiters = []; }

  push(item) {
    const w = this.waiters.shift();
    if (w) w(item); else this.items.push(item);
  }

  next(what = 'an item', ms = TIMEOUT) {
    if (this.items.length) return Promise.resolve(this.items.shift());
    return within(new Promise((resolve) => this.waiters.push(resolve)), what, ms);
  }
}

// A ws client whose messages and close are queued.
class Peer {
  constructor(ws) {
    this.ws = ws;
    this.messages = new Queue();
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    });
    ws.on('message', (data, isBinary) => this.messages.push(isBinary ? data : data.toString()));
    ws.on('error', () => {});
  }

  next(what = 'a message') { return this.messages.next(what); }

  // The next message as JSON with its "time" (set by the server) as "T".
  async nextEnvelope() {
    return normTime(await this.next('an envelope'));
  }

  send(value) { this.ws.send(typeof value === 'string' ? value : JSON.stringify(value)); }

  closeResult(what = 'close') { return within(this.closed, what); }
}

// 'open', or 'refused <status>' when the server answers the upgrade with
// an HTTP error; the socket is closed either way.
async function upgradeAnswer(url, protocols = undefined, opts = {}) {
  const ws = new WebSocket(url, protocols, opts);
  ws.on('error', () => {});
  const answer = await within(Promise.race([
    once(ws, 'unexpected-response').then(([, res]) => `refused ${res.statusCode}`),
    once(ws, 'open').then(() => 'open'),
  ]), `the upgrade answer of ${url}`);
  ws.terminate();
  return answer;
}

function normTime(text) {
  return String(text).replace(/"time":"[^"]*"/, '"time":"T"');
}

function env(channel, type, messageText, mid, rid) {
  let s = `{"channel":"${channel}","type":"${type}","time":"T","message":${messageText}`;
  if (mid) s += `,"message_id":"${mid}"`;
  if (rid) s += `,"reply_to_id":"${rid}"`;
  return s + '}';
}

async function harness(t, options = {}) {
  const server = new Server({ host: '127.0.0.1', port: 0, ...options });
  await server.start();
  const h = new Harness(server, options);
  t.after(() => h.close());
  return h;
}

module.exports = {
  harness, Harness, Queue, Peer, within, env, normTime, upgradeAnswer, TIMEOUT, WebSocket,
};
