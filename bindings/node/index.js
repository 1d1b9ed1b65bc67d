'use strict';
// wsnotify for Node.js: channel pub/sub over WebSockets with the sockets
// and the fan-out in the C core, off the JS thread. This file maps the
// native addon (build/wsnotify.node, see src/) to Node's idioms: an
// EventEmitter, Promises, Error subclasses, camelCase option names.

const { EventEmitter } = require('node:events');
const path = require('node:path');

function loadNative() {
  try {
    return require(path.join(__dirname, 'build', 'wsnotify.node'));
  } catch (e) {
    e.message = `wsnotify: the native addon cannot be loaded (${e.message}); ` +
      'reinstall the package (npm install builds it: see README.md)';
    throw e;
  }
}
const native = loadNative();

/** The C API major version this code was written against. */
const SUPPORTED_MAJOR = 0;

const cVersionInfo = native.version();
if (Math.floor(cVersionInfo.number / 10000) !== SUPPORTED_MAJOR ||
    Math.floor(cVersionInfo.headerNumber / 10000) !== SUPPORTED_MAJOR) {
  throw new Error(`wsnotify: the C library is version ${cVersionInfo.string}; ` +
    `this package supports major version ${SUPPORTED_MAJOR}`);
}

// ---------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------

/** What a payload is; the values are the wire protocol's "type" strings. */
const MessageType = Object.freeze({ JSON: 'json', TEXT: 'text', BINARY: 'binary' });
const TYPE_CODE = { json: 0, text: 1, binary: 2 };
const TYPE_NAME = ['json', 'text', 'binary'];

/** Values of the logLevel option. */
const LogLevel = Object.freeze({ NONE: 0, ERROR: 1, WARN: 2, INFO: 3, DEBUG: 4 });
const LEVEL_NAME = ['none', 'error', 'warn', 'info', 'debug'];

/**
 * An error the C core reported: `code` is its enum name ('WSN_ECLOSED'),
 * `errno` the negative number.
 */
class WsnotifyError extends Error {
  constructor(message, code, errno) {
    super(message);
    this.name = 'WsnotifyError';
    this.code = code;
    this.errno = errno;
  }
}

function strerror(errno) { return native.strerror(errno); }
function errorName(errno) { return native.errName(errno); }

function coreError(errno, what, detail) {
  let msg = `${what}: ${native.strerror(errno)}`;
  if (detail) msg += ` (${detail})`;
  const code = native.errName(errno);
  return new WsnotifyError(`${msg} [${code}]`, code, errno);
}
native.setErrorFactory(coreError);

/**
 * JSON text that is already encoded, published as it is (Go's
 * json.RawMessage). The core still checks that it is one JSON value.
 * `msg.raw` of a JSON message is one, so a handler forwards a message
 * without parsing and encoding it again.
 */
class RawJSON {
  constructor(text) {
    if (typeof text !== 'string' && !ArrayBuffer.isView(text)) {
      throw new TypeError('RawJSON takes JSON text as a string or Buffer');
    }
    this.text = text;
  }

  toString() { return typeof this.text === 'string' ? this.text : Buffer.from(this.text.buffer, this.text.byteOffset, this.text.byteLength).toString('utf8'); }
}

/**
 * A message a client sent. `message` is the decoded JSON value for
 * 'json' (parsed on first use), a string for 'text' and a Buffer for
 * 'binary'; `raw` is the payload as received (a RawJSON for 'json').
 */
class IncomingMessage {
  constructor(type, channel, payload, messageId, replyToId, clientId) {
    this.type = type;
    this.channel = channel;
    this.messageId = messageId;
    this.replyToId = replyToId;
    this.clientId = clientId;
    this._payload = payload;
    this._value = undefined;
    this._parsed = false;
  }

  get message() {
    if (this.type !== 'json') return this._payload;
    if (!this._parsed) {
      this._value = JSON.parse(this._payload); // the core validated it
      this._parsed = true;
    }
    return this._value;
  }

  get raw() {
    if (this.type !== 'json') return this._payload;
    // The core validated and compacted this text: publishing it again
    // skips that second pass. Frozen, so the text cannot be swapped.
    const raw = new RawJSON(this._payload);
    raw[CORE_JSON] = true;
    return Object.freeze(raw);
  }
}

// Marks a RawJSON the binding made from a message's payload (a string: immutable).
const CORE_JSON = Symbol('wsnotify.coreJSON');

function isCoreJSON(value) {
  return value instanceof RawJSON && value[CORE_JSON] === true && Object.isFrozen(value) &&
    typeof value.text === 'string';
}

function jsonText(value, what) {
  if (value instanceof RawJSON) return value.text;
  const text = JSON.stringify(value);
  if (text === undefined) {
    throw new TypeError(`${what} must be a JSON-serialisable value, not ${typeof value}`);
  }
  return text;
}

function typeCode(type) {
  const code = TYPE_CODE[type];
  if (code === undefined) {
    throw new TypeError(`unknown message type ${String(type)} (use MessageType.JSON, ` +
      'MessageType.TEXT or MessageType.BINARY)');
  }
  return code;
}

function isBytes(v) {
  return ArrayBuffer.isView(v) || v instanceof ArrayBuffer;
}

function payload(data, type, what) {
  if (type === 'json') return jsonText(data, what);
  if (type === 'text') {
    if (typeof data === 'string' || isBytes(data)) return data; // the core checks UTF-8
    throw new TypeError(`a TEXT ${what} must be a string, not ${typeof data}`);
  }
  if (isBytes(data)) return data;
  throw new TypeError(`a BINARY ${what} must be a Buffer, TypedArray or ArrayBuffer`);
}

function ids(opts) {
  if (opts === undefined || opts === null) return [undefined, undefined];
  if (typeof opts !== 'object') throw new TypeError('options must be an object');
  return [opts.messageId, opts.replyToId];
}

const RESOLVED = Promise.resolve();

// A publish the core refused for room keeps its bytes: the caller may
// reuse its buffer once the call returned.
function own(args) {
  return args.map((a) => (ArrayBuffer.isView(a) ? Buffer.from(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength))
    : a instanceof ArrayBuffer ? a.slice(0) : a));
}

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

const OPTIONS = native.options(); // [{name, type, default, min, max}]
const camel = (snake) => snake.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
const SNAKE_OF = new Map(OPTIONS.map((o) => [camel(o.name), o.name]));
const JS_ONLY = new Set(['logger', 'publishQueueLimit']);

/** Publishes that may wait for room at once, unless publishQueueLimit says. */
const PUBLISH_QUEUE_LIMIT = 1024;
const WSN_ELIMIT = -12; // wsnotify.h; codes are never renumbered

/** Every core option by its camelCase name. */
function optionNames() { return [...SNAKE_OF.keys()]; }

/** The core's defaults by camelCase name (durations in ms). */
function defaultOptions() {
  const res = {};
  for (const o of OPTIONS) res[camel(o.name)] = o.default;
  return res;
}

function coreOptions(options) {
  const res = {};
  for (const [key, value] of Object.entries(options)) {
    if (JS_ONLY.has(key) || value === undefined) continue;
    const snake = SNAKE_OF.get(key);
    if (snake === undefined) {
      throw new TypeError(`unknown option '${key}' (options: ${optionNames().join(', ')}, ` +
        'logger, publishQueueLimit)');
    }
    // On the I/O thread the core hands events to C handlers and never
    // queues them: this binding has none, so every event would be lost.
    if (key === 'eventsOnIoThread' && value === true) {
      throw new RangeError('option eventsOnIoThread: true is not supported by the Node ' +
        'binding: handlers run on the JS thread, never on the core\'s I/O thread');
    }
    let v = value;
    if (key === 'authenticate' && typeof v === 'function') v = true; // the handler
    if (key === 'allowedOrigins' && Array.isArray(v)) v = v.join(',');
    if (key === 'logLevel' && typeof v === 'string') {
      const level = LEVEL_NAME.indexOf(v.toLowerCase());
      if (level < 0) throw new RangeError(`option logLevel: unknown level '${v}'`);
      v = level;
    }
    res[snake] = v;
  }
  return res;
}

// ---------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------

/**
 * One WebSocket connection. The server hands the same Client object to
 * every event of a connection; it stays usable after the client has gone
 * (metadata stays readable; calls that need the connection fail with
 * WSN_EGONE).
 */
class Client {
  constructor(nativeClient, id) {
    this._native = nativeClient;
    this.id = id;
  }

  get remoteAddress() { return this._native.remoteAddress(); }

  get subprotocol() { return this._native.subprotocol(); }

  get connected() { return this._native.connected(); }

  /**
   * Moves the time at which the client is closed with 4001 "authorization
   * expired" (a Date or Unix milliseconds; null clears it): for a client
   * that refreshed its credentials in band.
   */
  setExpiry(when) { this._native.setExpiry(unixMs(when)); }

  /**
   * Stores a value under key. Strings, numbers (integers as int64, others
   * as double), BigInts, booleans and bytes keep their type; anything else
   * is stored as JSON.
   */
  setMetadata(key, value) {
    const n = this._native;
    switch (typeof value) {
      case 'string': return n.setString(key, value);
      case 'bigint': return n.setInt(key, value);
      case 'boolean': return n.setBool(key, value);
      case 'number':
        return Number.isSafeInteger(value) ? n.setInt(key, value) : n.setDouble(key, value);
      case 'undefined':
      case 'function':
      case 'symbol':
        throw new TypeError(`metadata value must not be ${typeof value}`);
      default:
        if (isBytes(value)) return n.setBytes(key, value);
        return n.setJson(key, jsonText(value, 'metadata value'));
    }
  }

  /** The value under key (undefined when there is none). */
  getMetadata(key) {
    const r = this._native.get(key);
    if (r === undefined) return undefined;
    return r[0] === 6 ? JSON.parse(r[1]) : r[1];
  }

  /** Removes key; true if it was there. */
  deleteMetadata(key) { return this._native.delete(key); }

  /** A snapshot of the metadata keys. */
  metadataKeys() { return this._native.keys(); }

  /** A snapshot of all metadata as a plain object. */
  get metadata() {
    const res = {};
    for (const key of this._native.keys()) {
      const v = this.getMetadata(key);
      if (v !== undefined) res[key] = v;
    }
    return res;
  }

  toString() { return `Client(${this.id})`; }
}

// ---------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------

/** A Date or Unix milliseconds as the core's Unix milliseconds (0 = never). */
function unixMs(when) {
  if (when === null || when === undefined) return 0;
  const ms = when instanceof Date ? when.getTime() : when;
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) {
    throw new TypeError('an expiry is a Date or Unix milliseconds >= 0');
  }
  return Math.max(1, Math.floor(ms));
}

/**
 * A WebSocket upgrade waiting for the host's answer (option authenticate).
 * `path`, `query` (raw), `peer`, `headers` (names lower-cased, repeats
 * joined with ", "), `queryArg(name)`, `bearerToken`. The handler answers
 * by returning (or resolving to) true / false, {status, body} to reject,
 * or {metadata, channels, expiresAt} to accept; or it calls accept() /
 * reject() itself later (then it returns undefined).
 */
class UpgradeRequest {
  constructor(server, id, path, query, peer, headerLines) {
    this._server = server;
    this.id = id;
    this.path = path;
    this.query = query;
    this.peer = peer;
    const headers = {};
    for (const line of headerLines.split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
    }
    this.headers = headers;
    this.answered = false;
  }

  header(name) { return this.headers[name.toLowerCase()]; }

  /** The first value of a query argument, percent-decoded ('+' is a space). */
  queryArg(name) {
    const v = new URLSearchParams(this.query).get(name);
    return v === null ? undefined : v;
  }

  get bearerToken() {
    const m = /^bearer\s+(\S+)/i.exec(this.headers.authorization || '');
    return m ? m[1] : undefined;
  }

  /** Lets the upgrade proceed: metadata (an object), channels, expiresAt. */
  accept({ metadata, channels = [], expiresAt } = {}) {
    this.answered = true;
    if (!Array.isArray(channels)) throw new TypeError('channels must be an array');
    const meta = metadata === undefined || metadata === null ? null : JSON.stringify(metadata);
    if (meta !== null && (typeof metadata !== 'object' || Array.isArray(metadata))) {
      throw new TypeError('metadata must be a plain object');
    }
    this._server._native.acceptUpgrade(this.id, meta, channels, unixMs(expiresAt));
  }

  /** Refuses it with an HTTP status (400..599) and body (over TLS: close 4000 + status). */
  reject(status = 401, body = '') {
    this.answered = true;
    this._server._native.rejectUpgrade(this.id, status, body || null);
  }

  // A handler's result; later ones (and a wait that ended) are ignored.
  _answer(result) {
    if (this.answered || result === undefined) return;
    if (result === true) this.accept();
    else if (result === false) this.reject(401, 'unauthorized');
    else if (result && typeof result === 'object' && 'status' in result) {
      this.reject(result.status, result.body);
    } else if (result && typeof result === 'object') this.accept(result);
    else throw new TypeError(`an upgrade handler returns true, false, {status, body} or {metadata, channels, expiresAt}; got ${String(result)}`);
  }
}

const EV_CONNECT = 1;
const EV_MESSAGE = 2;
const EV_DISCONNECT = 3;
const EV_STOPPED = 4;
const EV_BROKER = 5;
const EV_UPGRADE = 6;
// A batch of events (src/events.c take_events) is n records of int64
// fields (wsn_event_record), read here as pairs of 32-bit words
// (little-endian; the addon builds for 64-bit Linux only), and an arena
// holding the strings and payloads of the batch's messages, both reused
// from batch to batch: everything is read before the next batch.
// A big-endian host would read every record wrong: refuse to load there
// rather than dispatch garbage.
if (require('node:os').endianness() !== 'LE') {
  throw new Error('wsnotify: the Node binding reads event records as little-endian words; ' +
    'this host is big-endian, which it does not support');
}
const REC_WORDS = cVersionInfo.eventRecordSize / 4;
const R_KIND = 0;
const R_TYPE = 2;
const R_CLIENT_LO = 4;
const R_CLIENT_HI = 5;
const R_CHANNEL = 6; // offset, then length at +2
const R_PAYLOAD = 10;
const R_MESSAGE_ID = 14;
const R_REPLY_TO_ID = 18;
const TWO32 = 4294967296;

// The arena's bytes [off, off + len) as a string (Buffer's utf8Slice
// skips toString's argument checks where Node has it).
const utf8 = typeof Buffer.prototype.utf8Slice === 'function'
  ? (buf, off, len) => (len === 0 ? '' : buf.utf8Slice(off, off + len))
  : (buf, off, len) => (len === 0 ? '' : buf.toString('utf8', off, off + len));

/**
 * A WebSocket notification server: channels, pub/sub, batching.
 *
 * Events: 'connect' (client), 'message' (client, msg), 'disconnect'
 * (client), 'error' (err: a handler's exception, a core log line at error
 * level), 'stopped'. Handlers run on the JS thread, in batches handed over
 * by the addon; the core's sockets and fan-out never wait for them.
 */
class Server extends EventEmitter {
  constructor(options = {}) {
    super({ captureRejections: true });
    if (options === null || typeof options !== 'object') {
      throw new TypeError('options must be an object');
    }
    const logger = options.logger;
    if (logger !== undefined && typeof logger !== 'function') {
      throw new TypeError('option logger must be a function (level, line)');
    }
    const limit = options.publishQueueLimit ?? PUBLISH_QUEUE_LIMIT;
    if (!Number.isSafeInteger(limit) || limit < 0) {
      throw new RangeError('option publishQueueLimit must be an integer >= 0, ' +
        `not ${String(limit)}`);
    }
    this._native = new native.NativeServer(coreOptions(options));
    this._authenticate = options.authenticate;
    this._onUpgrade = typeof options.authenticate === 'function' ? options.authenticate : null;
    this._logger = logger;
    this._waiting = []; // publishes refused for room, in call order
    this._publishQueueLimit = limit;
    this._writeWait = options.writeWait ?? defaultOptions().writeWait;
    this._clients = new Map(); // id -> Client, connect to disconnect
    this._byHandle = new Map(); // the handle's address -> the same Client
    this._records = null; // the addon's records buffer, and views of it
    this._words = null;
    this._uwords = null;
    this._started = false;
    this._stopped = false;
    this._stoppedPromise = new Promise((resolve) => { this._resolveStopped = resolve; });
  }

  /** Binds and starts serving; rejects with WSN_EIO when it cannot listen. */
  async start() {
    try {
      this._start();
    } finally {
      if (!this._started) { // why it failed
        const logs = this._native.takeLogs();
        if (logs !== undefined) this._onLogs(logs);
      }
    }
  }

  /**
   * The handler of every upgrade with the option authenticate: (req) =>
   * its answer, or a Promise of it (see UpgradeRequest). A handler that
   * throws or rejects refuses with 500; one that never answers gets 503
   * after authTimeout.
   */
  setUpgradeHandler(fn) {
    if (fn !== null && typeof fn !== 'function') throw new TypeError('the upgrade handler is a function');
    this._onUpgrade = fn;
  }

  _start() {
    if (this._authenticate && !this._onUpgrade) {
      throw new TypeError('option authenticate needs an upgrade handler ' +
        '(authenticate: async (req) => ..., or setUpgradeHandler() before start())');
    }
    this._native.start((n, logs, records, arena, arenaUsed, connects, big) => {
      if (n < 0) {
        this._retry();
      } else {
        if (logs !== undefined) this._onLogs(logs);
        this._onEvents(n, records, arena, connects, big);
      }
    });
    this._started = true;
  }

  /** The port bound (useful with port 0); -1 before start. */
  get port() { return this._native.port(); }

  /**
   * Graceful shutdown: delivers what was accepted (queued messages,
   * pending batches), closes every client with 1001, and resolves once the
   * 'stopped' event was emitted: true when every client closed within
   * timeoutMs (default: writeWait), false when some had to be cut.
   */
  async shutdown(timeoutMs = this._writeWait) {
    const [rc] = await this._native.shutdown(timeoutMs);
    if (this._started) await this._stoppedPromise;
    return rc === 0;
  }

  /**
   * Reads the tlsCert and tlsKey files again and serves the new
   * certificate to connections made from then on; open connections stay.
   * Resolves once the server switched; rejects (WsnotifyError: WSN_EIO
   * naming the file and why, WSN_EINVAL without TLS, WSN_ECLOSED) and
   * keeps the previous certificate when the files are not right. The
   * files are read on the server's thread, never on the JS thread.
   */
  async reloadTls() {
    const [rc, detail] = await this._native.reloadTls();
    if (rc !== 0) throw coreError(rc, 'reloadTls', detail);
  }

  // -- pub/sub ---------------------------------------------------------------

  // Every publish goes through here: the core is asked never to wait
  // (WSN_PUBLISH_NONBLOCK). Accepted: a resolved Promise. No room: the
  // call waits in order behind earlier refused ones until the core's room
  // fd says to try again, unless publishQueueLimit calls wait already:
  // then it rejects with WSN_ELIMIT, so a stalled client cannot make the
  // JS heap grow without bound. Core errors reject; wrong arguments
  // (TypeError, RangeError) are thrown where the call is made.
  _submit(method, args) {
    if (this._waiting.length === 0) {
      let ok;
      try {
        ok = this._native[method](...args);
      } catch (e) {
        if (e instanceof WsnotifyError) return Promise.reject(e);
        throw e;
      }
      if (ok) return RESOLVED;
    }
    const limit = this._publishQueueLimit;
    if (this._waiting.length >= limit) {
      return Promise.reject(new WsnotifyError(`${method}: ${native.strerror(WSN_ELIMIT)} ` +
        `(${limit} publishes already wait for room: option publishQueueLimit) [WSN_ELIMIT]`,
        'WSN_ELIMIT', WSN_ELIMIT));
    }
    return new Promise((resolve, reject) => {
      this._waiting.push({ method, args: own(args), resolve, reject });
      if (this._waiting.length === 1) this._watchRoom();
    });
  }

  _watchRoom() {
    if (!this._native.watchRoom()) setImmediate(() => this._retry());
  }

  _retry() {
    const q = this._waiting;
    while (q.length) {
      const p = q[0];
      let ok;
      try {
        ok = this._native[p.method](...p.args);
      } catch (e) {
        q.shift();
        p.reject(e);
        continue;
      }
      if (!ok) {
        this._watchRoom();
        return;
      }
      q.shift();
      p.resolve();
    }
  }

  /** Adds client to channel (takes effect before any later publish). */
  subscribe(client, channel) { this._native.subscribe(nativeOf(client), channel); }

  /** Removes client from channel; a non-member is a no-op. */
  unsubscribe(client, channel) { this._native.unsubscribe(nativeOf(client), channel); }

  /**
   * Publishes a JSON-serialisable value (or a RawJSON) to every subscriber
   * of channel. Resolves once the message is accepted for delivery.
   */
  publish(channel, value) {
    const text = jsonText(value, 'message');
    return this._submit('publish',
      [null, channel, 0, text, undefined, undefined, isCoreJSON(value)]);
  }

  /** publish with a type: 'json' (any value), 'text' (string), 'binary' (bytes). */
  publishWithType(channel, data, type = MessageType.JSON, opts = undefined) {
    const code = typeCode(type);
    const body = payload(data, type, 'message');
    const [mid, rid] = ids(opts);
    return this._submit('publish', [null, channel, code, body, mid, rid]);
  }

  /** Sends one message to one client with the channel envelope. */
  publishToClient(client, channel, data, type = MessageType.JSON, opts = undefined) {
    const nc = nativeOf(client);
    const code = typeCode(type);
    const body = payload(data, type, 'message');
    const [mid, rid] = ids(opts);
    return this._submit('publish', [nc, channel, code, body, mid, rid]);
  }

  /**
   * Sends one message to the client with this id on any server of the
   * cluster (with the broker option; else on this server). Rejects with
   * WSN_EGONE for a gone client of this server, WSN_EBROKER when the id is
   * another server's and the broker is down.
   */
  publishToClientId(clientId, channel, data, type = MessageType.JSON, opts = undefined) {
    const code = typeCode(type);
    const body = payload(data, type, 'message');
    const [mid, rid] = ids(opts);
    try {
      this._native.publishToClientId(clientId, channel, code, body, mid, rid);
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * The broker's state: {state: 'none'|'connecting'|'up'|'down', reason,
   * serverId, sent, refused, unconfirmed, received, ignored, dropped,
   * reconnects}. A 'broker' event (state, reason) tells each change.
   */
  brokerState() { return this._native.brokerState(); }

  /**
   * The core's counters and gauges (docs/production.md, "Metrics"):
   * {connections, connectionsAccepted, connectionsRefused: {origin, ...},
   * messagesReceived: {json, text, binary}, deliveries, queued, ...}.
   * Never waits for the I/O thread.
   */
  metrics() { return this._native.metrics(); }

  /** The same snapshot in the Prometheus text format (what GET /metrics serves). */
  metricsText() { return this._native.metricsText(); }

  /**
   * Adds a JSON value to the batch of (channel, ident): ttlMs after the
   * batch's first message the channel gets {"messages":[...],"name":name}
   * (identical messages kept once). The first call for a key fixes its
   * name, type and ttl.
   */
  publishWait(channel, value, ident, name, ttlMs) {
    const text = jsonText(value, 'message');
    return this._submit('publishWait', [channel, 0, text, ident, name, ttlMs]);
  }

  /** publishWait with a type (binary messages are base64 in the batch). */
  publishWaitWithType(channel, data, type, ident, name, ttlMs) {
    const code = typeCode(type);
    const body = payload(data, type, 'message');
    return this._submit('publishWait', [channel, code, body, ident, name, ttlMs]);
  }

  /** Batches text: the channel gets name + "\n\n" + the texts joined by "\n". */
  publishWaitString(channel, text, ident, name, ttlMs) {
    if (typeof text !== 'string') throw new TypeError('text must be a string');
    return this._submit('publishWait', [channel, -1, text, ident, name, ttlMs]);
  }

  /** Drops the pending batch of (channel, ident) undelivered. */
  cancelPendingMessages(channel, ident) { this._native.cancelPendingMessages(channel, ident); }

  /** The number of batches waiting for their ttl. */
  pendingBatches() { return this._native.pendingBatches(); }

  /**
   * Sends one frame to one client as it is, without the envelope: a string
   * as a text frame, bytes as a binary frame, unless type says otherwise.
   */
  sendRaw(client, data, type = undefined) {
    const nc = nativeOf(client);
    const t = type === undefined ? (typeof data === 'string' ? 'text' : 'binary') : type;
    if (t !== 'text' && t !== 'binary') throw new TypeError('sendRaw sends TEXT or BINARY frames');
    const body = payload(data, t, 'frame');
    return this._submit('sendRaw', [nc, TYPE_CODE[t], body]);
  }

  // -- monitoring --------------------------------------------------------------

  /** The number of connected WebSocket clients. */
  connectedClients() { return this._native.connectedClients(); }

  /** A snapshot of the connected client ids. */
  clientList() { return this._native.clientList(); }

  /** The Client of a connected client whose 'connect' was emitted. */
  getClient(id) { return this._clients.get(id); }

  // -- events ------------------------------------------------------------------

  // Core log lines ([level, line, ...]) at or above logLevel: to the
  // logger; error lines also to 'error' listeners; without a logger,
  // warnings and errors to stderr.
  _onLogs(logs) {
    for (let i = 0; i < logs.length; i += 2) {
      const level = logs[i];
      const line = logs[i + 1];
      const name = LEVEL_NAME[level] || 'info';
      if (this._logger) {
        try { this._logger(name, line); } catch (e) { this._handlerError(e); }
      }
      if (level === LogLevel.ERROR && this.listenerCount('error') > 0) {
        this.emit('error', new WsnotifyError(line, 'WSN_LOG_ERROR', 0));
      } else if (!this._logger && level <= LogLevel.WARN) {
        console.error(`wsnotify ${name}: ${line}`);
      }
    }
  }

  // A client is found by its handle's address (a Client holds its
  // handle, so the address is not reused while the Client is in the map).
  _onEvents(n, records, arena, connects, big) {
    if (this._records !== records) {
      this._records = records;
      this._words = new Int32Array(records);
      this._uwords = new Uint32Array(records);
    }
    const w = this._words;
    const u = this._uwords;
    let c = 0;
    for (let i = 0, o = 0; i < n; i++, o += REC_WORDS) {
      const kind = w[o + R_KIND];
      const ptr = w[o + R_CLIENT_HI] * TWO32 + u[o + R_CLIENT_LO];
      try {
        if (kind === EV_MESSAGE) {
          const client = this._byHandle.get(ptr);
          if (client === undefined) continue;
          const type = TYPE_NAME[w[o + R_TYPE]];
          const off = w[o + R_PAYLOAD];
          let msg;
          if (off >= 0) {
            const len = w[o + R_PAYLOAD + 2];
            msg = new IncomingMessage(type,
              utf8(arena, w[o + R_CHANNEL], w[o + R_CHANNEL + 2]),
              type === 'binary' ? Buffer.from(arena.subarray(off, off + len))
                : utf8(arena, off, len),
              utf8(arena, w[o + R_MESSAGE_ID], w[o + R_MESSAGE_ID + 2]),
              utf8(arena, w[o + R_REPLY_TO_ID], w[o + R_REPLY_TO_ID + 2]), client.id);
          } else { // did not fit in the arena: the addon made its values
            msg = new IncomingMessage(type, big[0], big[1], big[2], big[3], client.id);
          }
          this.emit('message', client, msg);
        } else if (kind === EV_CONNECT) {
          const nc = connects[c++];
          const id = connects[c++];
          if (nc === undefined) continue;
          const client = new Client(nc, id);
          this._clients.set(id, client);
          this._byHandle.set(ptr, client);
          this.emit('connect', client);
        } else if (kind === EV_DISCONNECT) {
          const client = this._byHandle.get(ptr);
          if (client === undefined) continue;
          try {
            this.emit('disconnect', client);
          } finally {
            this._clients.delete(client.id);
            this._byHandle.delete(ptr);
          }
        } else if (kind === EV_UPGRADE) {
          const req = new UpgradeRequest(this, connects[c], connects[c + 1], connects[c + 2],
            connects[c + 3], connects[c + 4]);
          c += 5;
          this._upgrade(req);
        } else if (kind === EV_BROKER) {
          const state = connects[c++];
          const reason = connects[c++];
          this.emit('broker', state, reason);
        } else if (kind === EV_STOPPED) {
          this._stopped = true;
          this._clients.clear();
          this._byHandle.clear();
          this._retry(); // what still waits for room now fails: WSN_ECLOSED
          try {
            this.emit('stopped');
          } finally {
            this._resolveStopped();
          }
        }
      } catch (e) {
        this._handlerError(e);
      }
    }
  }

  _upgrade(req) {
    const refuse = (err) => {
      this._handlerError(err);
      try { req._answer({ status: 500, body: 'authentication failed' }); } catch { /* it stopped waiting */ }
    };
    const settle = (result) => {
      try {
        req._answer(result);
      } catch (e) {
        if (!(e instanceof WsnotifyError && e.code === 'WSN_EGONE')) refuse(e);
      }
    };
    let result;
    try {
      result = this._onUpgrade ? this._onUpgrade(req) : { status: 503, body: 'no upgrade handler' };
    } catch (e) {
      refuse(e);
      return;
    }
    if (result && typeof result.then === 'function') {
      result.then(settle, refuse);
    } else {
      settle(result);
    }
  }

  _handlerError(err) {
    if (this.listenerCount('error') > 0) {
      this.emit('error', err);
    } else {
      console.error('wsnotify: an event handler threw:', err);
    }
  }

  // An async handler's rejection (captureRejections) goes the same way.
  [Symbol.for('nodejs.rejection')](err) {
    this._handlerError(err);
  }
}

function nativeOf(client) {
  if (!(client instanceof Client)) {
    throw new TypeError('client must be a Client given by the server');
  }
  return client._native;
}

/**
 * Reads one top-level string member of a JSON object without building the
 * document (for dispatching on a small field of a large message).
 */
function jsonGetString(text, key) { return native.jsonGetString(text, key); }

/**
 * Gives a connection this process accepted, and the request head read from
 * it, to the engine whose handoffSocket option is `path` (wsn_handoff). The
 * engine then serves it as a connection it accepted itself, with the real
 * peer address. `sock` is a net.Socket or a descriptor; `head` a Buffer or
 * a latin1 string. On return the engine holds the socket: destroy() your
 * net.Socket (never end(): that shuts the engine's connection down too).
 * Throws WSN_ECLOSED (no engine at path), WSN_EAGAIN (its queue is full:
 * retry soon, or answer 503), WSN_ELIMIT (head over 16,384 bytes),
 * WSN_EINVAL.
 */
function handoff(path, sock, head) {
  let fd = sock;
  if (typeof sock !== 'number') {
    fd = sock && sock._handle && sock._handle.fd;
    if (typeof fd !== 'number' || fd < 0) {
      throw new TypeError('sock must be a connected net.Socket or a file descriptor');
    }
  }
  native.handoff(path, fd, typeof head === 'string' ? Buffer.from(head, 'latin1') : head);
}

module.exports = {
  Server,
  Client,
  UpgradeRequest,
  IncomingMessage,
  RawJSON,
  MessageType,
  LogLevel,
  WsnotifyError,
  defaultOptions,
  optionNames,
  jsonGetString,
  handoff,
  strerror,
  errorName,
  cVersion: cVersionInfo.string,
  SUPPORTED_MAJOR,
};
