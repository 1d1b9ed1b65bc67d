#!/usr/bin/env node
'use strict';
// wsnotify chat example in Node.js: the same page, protocol and flags as
// the C example (examples/chat/) and the Python one (examples/python/).
//
// Serves examples/chat/index.html at "/" and WebSockets at "/ws". Clients
// send envelopes like
//
//   {"type":"json","channel":"room","message":{"action":"subscribe",
//    "channel":"room"},"message_id":"m1"}
//   {"type":"json","channel":"room","message":{"action":"broadcast",
//    "text":"hi"}}
//
// "subscribe" adds the sender to message.channel and answers the sender
// alone with {"status":"subscribed","channel":...} (reply_to_id = the
// request's message_id); "broadcast" publishes the message object to every
// subscriber of the envelope's channel.
//
// No client can make the handlers wait for another (docs/api.md, "Slow
// clients and handlers"): a browser that stops reading is closed once its
// queue is full (dropOnBackpressure; close 1001 "going away:
// backpressure"), and the binding's publishes never block the JS thread:
// one the engine refuses for room (then only when the server as a whole
// is behind) waits, in call order, until the room fd says to try again.
//
// SIGINT/SIGTERM shut the server down gracefully (every client gets close
// 1001) and the program exits 0: once the server has stopped, nothing
// keeps the process alive.
//
//   node examples/node/chat.js [--host ADDR] [--port N] [--static-dir DIR]
//                              [--verbose] [--broker URL]
//                              [--metrics] [--metrics-token T]
//                              [--tls-cert FILE --tls-key FILE]
//                              [--client-rate N] [--client-burst N]
//
// With --tls-cert and --tls-key the page and the WebSocket are served over
// https:// and wss:// only; SIGHUP reads the two files again (after a
// certificate renewal) without dropping anyone.
//
// There is no --compression: the engine refuses permessage-deflate
// (docs/api.md, "Compression"). --metrics serves the engine's counters at
// GET /metrics in the Prometheus text format (docs/production.md); with
// --metrics-token T (or $WSN_METRICS_TOKEN) only to "Authorization:
// Bearer T".

const fs = require('node:fs');
const path = require('node:path');
const wsnotify = require('../../bindings/node');

const { Server, MessageType, LogLevel } = wsnotify;
const crypto = require('node:crypto');

const DEFAULT_STATIC_DIR = path.resolve(__dirname, '..', 'chat');
const SHUTDOWN_TIMEOUT_MS = 10000;
const PROG = path.basename(process.argv[1] || 'chat.js');

const USAGE = `usage: ${PROG} [--host ADDR] [--port N] [--static-dir DIR] [--verbose]
       [--broker URL] [--auth-token T] [--metrics] [--metrics-token T]
       [--tls-cert FILE --tls-key FILE]
       [--client-rate N] [--client-burst N]

  --host ADDR        listen address (default 127.0.0.1;
                     0.0.0.0 for every interface)
  --port N           TCP port (default $WSN_PORT, else 8080;
                     0 = any free port)
  --static-dir DIR   folder holding index.html (default
                     ${DEFAULT_STATIC_DIR})
  --verbose          log at debug level: also one line per
                     connection and per message
  --broker URL       share rooms with other chat servers through
                     Redis: redis://127.0.0.1:6379 (default
                     $WSN_BROKER, else none)
  --auth-token T     clients must send ?token=T or
                     "Authorization: Bearer T"; others get 401
                     (default $WSN_AUTH_TOKEN, else no check;
                     open the page as /?token=T)
  --metrics          serve GET /metrics (Prometheus text format)
  --metrics-token T  with --metrics: answer only requests with
                     'Authorization: Bearer T' (default
                     $WSN_METRICS_TOKEN, else open)
  --tls-cert FILE    PEM certificate (chain): serve https:// and
                     wss:// only; SIGHUP reloads it
  --tls-key FILE     its PEM private key
  --client-rate N    messages a client may send per second before
                     it is closed with 1008 (default the engine's,
                     100; 0 = no limit)
  --client-burst N   what a quiet client may send at once (200)
`;

// Lines as the C and Python examples write them, on stderr. Channel names
// and ids come from clients: control characters are kept off the terminal.
function log(who, level, text) {
  const d = new Date();
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  const stamp = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  // eslint-disable-next-line no-control-regex
  const clean = String(text).replace(/[\x00-\x1f\x7f]/g, '?');
  process.stderr.write(`${stamp} ${level.toUpperCase().padEnd(5)} ${who}: ${clean}\n`);
}

function fail(msg, code = 2) {
  process.stderr.write(`${PROG}: ${msg}\n`);
  process.exit(code);
}

function parsePort(text) {
  if (!/^\d+$/.test(text) || Number(text) > 65535) return undefined;
  return Number(text);
}

function parseArgs(argv) {
  const cfg = {
    host: '127.0.0.1', port: 8080, staticDir: undefined, verbose: false,
    broker: process.env.WSN_BROKER || '',
    authToken: process.env.WSN_AUTH_TOKEN || undefined,
    metrics: false, metricsToken: process.env.WSN_METRICS_TOKEN || '',
    tlsCert: '', tlsKey: '',
  };
  const envPort = process.env.WSN_PORT;
  if (envPort) {
    cfg.port = parsePort(envPort);
    if (cfg.port === undefined) fail(`bad WSN_PORT '${envPort}'`);
  }
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    let value;
    const eq = arg.indexOf('=');
    if (arg.startsWith('--') && eq > 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    const need = () => {
      if (value !== undefined) return value;
      if (i + 1 >= argv.length) fail(`${arg} needs a value`);
      return argv[++i];
    };
    switch (arg) {
      case '-h': case '--help':
        process.stdout.write(USAGE);
        process.exit(0);
        break;
      case '--host': cfg.host = need(); break;
      case '-p': case '--port': {
        const v = need();
        cfg.port = parsePort(v);
        if (cfg.port === undefined) fail(`bad port '${v}'`);
        break;
      }
      case '--static-dir': cfg.staticDir = need(); break;
      case '--broker': cfg.broker = need(); break;
      case '--auth-token':
        cfg.authToken = need();
        if (!cfg.authToken) fail('--auth-token needs a non-empty token');
        break;
      case '--metrics': cfg.metrics = true; break;
      case '--metrics-token': cfg.metricsToken = need(); break;
      case '--tls-cert': cfg.tlsCert = need(); break;
      case '--tls-key': cfg.tlsKey = need(); break;
      case '--client-rate': case '--client-burst': {
        const v = need();
        if (!/^\d+$/.test(v)) fail(`bad count '${v}'`);
        cfg[arg === '--client-rate' ? 'clientRate' : 'clientBurst'] = Number(v);
        break;
      }
      case '-v': case '--verbose': cfg.verbose = true; break;
      default:
        process.stderr.write(`${PROG}: unknown argument '${arg}'\n${USAGE}`);
        process.exit(2);
    }
  }
  return cfg;
}

function makeServer(cfg, staticDir) {
  const server = new Server({
    host: cfg.host,
    port: cfg.port,
    path: '/ws',
    staticDir,
    // Browsers are not trusted to read: one that stops is closed when its
    // queue is full. Block mode would make every publish wait for it.
    dropOnBackpressure: true,
    broker: cfg.broker,
    // A real server would verify a JWT or look a session up here: the
    // handler may return a Promise.
    authenticate: cfg.authToken === undefined ? false : (req) => {
      const given = Buffer.from(req.queryArg('token') || req.bearerToken || '');
      const want = Buffer.from(cfg.authToken);
      if (given.length === want.length && crypto.timingSafeEqual(given, want)) return true;
      if (cfg.verbose) log('chat', 'debug', `upgrade from ${req.peer} refused: bad or missing token`);
      return { status: 401, body: 'bad or missing token' };
    },
    metrics: cfg.metrics,
    metricsToken: cfg.metricsToken,
    tlsCert: cfg.tlsCert,
    tlsKey: cfg.tlsKey,
    clientRate: cfg.clientRate, // undefined: the engine's default
    clientBurst: cfg.clientBurst,
    logLevel: cfg.verbose ? LogLevel.DEBUG : LogLevel.INFO,
    logger: (level, line) => log('wsnotify', level, line),
  });
  const debug = (text) => { if (cfg.verbose) log('chat', 'debug', text); };
  server.on('broker', (state, why) => log('chat', 'info', `broker ${state}${why ? `: ${why}` : ''}`));

  // Sends one JSON value to one client; a failure is logged.
  const reply = (client, channel, value, replyTo) => {
    server.publishToClient(client, channel, value, MessageType.JSON, { replyToId: replyTo })
      .catch((e) => log('chat', 'info', `reply to ${client.id} failed: ${e.message}`));
  };
  // Unlike the Go original, the client is told why (with the envelope's
  // channel "": the channel name may be what was wrong).
  const replyError = (client, channel, err, replyTo) => {
    const reason = err.errno ? wsnotify.strerror(err.errno) : err.message;
    reply(client, '', { status: 'error', channel, error: reason }, replyTo);
  };

  server.on('connect', (client) => {
    debug(`client connected: ${client.id} from ${client.remoteAddress} (${server.connectedClients()} connected)`);
  });
  server.on('disconnect', (client) => {
    debug(`client disconnected: ${client.id} (${server.connectedClients()} connected)`);
  });
  server.on('message', (client, msg) => {
    debug(`message from ${client.id}: type=${msg.type}, channel=${msg.channel}`);
    // The chat protocol is JSON objects with an "action".
    if (msg.type !== MessageType.JSON) return;
    const body = msg.message;
    if (body === null || typeof body !== 'object') return;
    if (body.action === 'subscribe') {
      const channel = body.channel;
      if (typeof channel !== 'string') return; // ignored, as in the Go original
      try {
        server.subscribe(client, channel);
      } catch (e) {
        log('chat', 'info', `subscription failed for ${client.id} to '${channel}': ${e.message}`);
        replyError(client, channel, e, msg.messageId);
        return;
      }
      debug(`client ${client.id} subscribed to '${channel}'`);
      reply(client, channel, { status: 'subscribed', channel }, msg.messageId);
    } else if (body.action === 'broadcast') {
      if (!msg.channel) return; // the envelope names the channel
      // msg.raw is the message's JSON text as received: forwarded as it
      // is, without encoding msg.message again.
      server.publish(msg.channel, msg.raw).catch((e) => {
        // Redis is down: this server's members got it ('broker' said so).
        if (e.code === 'WSN_EBROKER') return;
        log('chat', 'info', `broadcast from ${client.id} to '${msg.channel}' failed: ${e.message}`);
        replyError(client, msg.channel, e, msg.messageId);
      });
    }
  });
  server.on('error', (err) => log('chat', 'error', err.stack || String(err)));
  return server;
}

async function main() {
  const cfg = parseArgs(process.argv.slice(2));
  const staticDir = cfg.staticDir || DEFAULT_STATIC_DIR;
  if (!fs.existsSync(path.join(staticDir, 'index.html'))) {
    fail(`no index.html in ${staticDir}; pass --static-dir path/to/examples/chat`);
  }
  let server;
  try {
    server = makeServer(cfg, staticDir);
    await server.start();
  } catch (e) {
    fail(e.message, 1);
  }
  let stopping = false;
  server.on('stopped', () => {
    if (!stopping) {
      log('chat', 'info', 'server stopped unexpectedly');
      process.exitCode = 1;
    }
  });
  const onSignal = async (sig) => {
    if (stopping) return;
    stopping = true;
    // A second signal during shutdown kills the process the usual way.
    process.removeAllListeners('SIGINT');
    process.removeAllListeners('SIGTERM');
    process.removeAllListeners('SIGHUP');
    log('chat', 'info', `got ${sig}, shutting down`);
    const clean = await server.shutdown(SHUTDOWN_TIMEOUT_MS);
    if (!clean) log('chat', 'info', 'shutdown timed out: some clients were cut');
    log('chat', 'info', 'server gracefully stopped');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', () => {
    server.reloadTls().then(() => log('chat', 'info', 'SIGHUP: TLS certificate reloaded'),
      (e) => log('chat', 'error', `SIGHUP: TLS reload: ${e.message}`));
  });
  const scheme = cfg.tlsCert ? 'https' : 'http';
  log('chat', 'info', `chat server on ${scheme}://${cfg.host}:${server.port}/ (WebSocket /ws, page from ${staticDir})`);
  if (cfg.metrics) {
    log('chat', 'info', `metrics at ${scheme}://${cfg.host}:${server.port}/metrics` +
      (cfg.metricsToken ? ' (bearer token required)' : ''));
  }
  log('chat', 'info', 'open it in two browser tabs; Ctrl-C to stop');
}

main();
