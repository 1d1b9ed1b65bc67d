#!/usr/bin/env node
// The wsnotify chat protocol on Node's `ws` (npm), written the idiomatic way:
// one WebSocketServer on /ws, a Set of sockets per channel, and a broadcast
// that stringifies the envelope once and calls socket.send() per subscriber.
//
//   node server.js [--host A] [--port N] [--compression]
//
// --compression turns on permessage-deflate (ws's perMessageDeflate, with
// its defaults); it is off by default, as in wsnotify.
'use strict';

const http = require('http');
const { WebSocketServer } = require('ws');

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}
const host = arg('--host', '127.0.0.1');
const port = parseInt(arg('--port', '8080'), 10);
const compression = process.argv.includes('--compression');

// Go's RFC3339Nano is not available; toISOString gives milliseconds.
function now() {
  return new Date().toISOString();
}

const channels = new Map(); // name -> Set<WebSocket>

function envelope(channel, message, replyTo) {
  const env = { channel, type: 'json', time: now(), message };
  if (replyTo) env.reply_to_id = replyTo;
  return JSON.stringify(env);
}

const server = http.createServer((req, res) => {
  res.writeHead(404);
  res.end();
});
const wss = new WebSocketServer({
  noServer: true,
  perMessageDeflate: compression,
  maxPayload: 1 << 20,
});

server.on('upgrade', (req, socket, head) => {
  if (req.url !== '/ws') {
    socket.destroy();
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
});

wss.on('connection', (ws) => {
  const mine = new Set();
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    let env;
    try {
      env = JSON.parse(data);
    } catch (e) {
      return;
    }
    const msg = env && env.message;
    if (!msg || typeof msg !== 'object') return;
    if (msg.action === 'subscribe' && typeof msg.channel === 'string' && msg.channel) {
      let set = channels.get(msg.channel);
      if (!set) channels.set(msg.channel, (set = new Set()));
      set.add(ws);
      mine.add(msg.channel);
      ws.send(envelope(msg.channel, { status: 'subscribed', channel: msg.channel },
                       env.message_id));
    } else if (msg.action === 'broadcast' && typeof env.channel === 'string' && env.channel) {
      const set = channels.get(env.channel);
      if (!set) return;
      const text = envelope(env.channel, msg);
      for (const sub of set) sub.send(text);
    }
  });
  ws.on('close', () => {
    for (const name of mine) {
      const set = channels.get(name);
      if (set) set.delete(ws);
    }
  });
  ws.on('error', () => {});
});

server.listen(port, host, 4096, () => {
  process.stderr.write(`node-ws: listening on ${host}:${port} (ws ${require('ws/package.json').version}, node ${process.version}${compression ? ', compression' : ''})\n`);
});

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    for (const c of wss.clients) c.terminate();
    server.close();
    process.exit(0);
  });
}
