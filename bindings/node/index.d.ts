// Type declarations of the wsnotify Node.js binding (index.js).

import { EventEmitter } from 'node:events';

export type MessageTypeName = 'json' | 'text' | 'binary';

export declare const MessageType: Readonly<{
  JSON: 'json';
  TEXT: 'text';
  BINARY: 'binary';
}>;

export declare const LogLevel: Readonly<{
  NONE: 0;
  ERROR: 1;
  WARN: 2;
  INFO: 3;
  DEBUG: 4;
}>;

export type LogLevelName = 'none' | 'error' | 'warn' | 'info' | 'debug';

/** Bytes accepted wherever a binary payload is. */
export type Bytes = Buffer | Uint8Array | ArrayBufferView | ArrayBuffer;

/** An error the C core reported; `code` is its enum name ('WSN_ECLOSED'). */
export declare class WsnotifyError extends Error {
  readonly code: string;
  readonly errno: number;
}

/** JSON text already encoded, published as it is. */
export declare class RawJSON {
  constructor(text: string | Uint8Array);
  readonly text: string | Uint8Array;
  toString(): string;
}

/** A message a client sent. */
export declare class IncomingMessage {
  readonly type: MessageTypeName;
  readonly channel: string;
  /** The decoded JSON value, the string (text) or the bytes (binary). */
  readonly message: unknown;
  /** As received: RawJSON for json, string for text, Buffer for binary. */
  readonly raw: RawJSON | string | Buffer;
  readonly messageId: string;
  readonly replyToId: string;
  readonly clientId: string;
}

/** Values metadata holds (JSON values come back decoded). */
export type MetadataValue = string | number | bigint | boolean | Buffer | null | unknown[] | { [key: string]: unknown };

export declare class Client {
  private constructor();
  readonly id: string;
  readonly remoteAddress: string;
  readonly subprotocol: string;
  readonly connected: boolean;
  setMetadata(key: string, value: MetadataValue | Uint8Array | ArrayBuffer): void;
  getMetadata(key: string): MetadataValue | undefined;
  deleteMetadata(key: string): boolean;
  metadataKeys(): string[];
  readonly metadata: Record<string, MetadataValue>;
  /** Moves (null: clears) when the client is closed with 4001; a Date or Unix ms. */
  setExpiry(when: Date | number | null): void;
}

/** What an upgrade handler may answer. */
export interface UpgradeAccept {
  metadata?: Record<string, unknown>;
  channels?: string[];
  /** A Date or Unix ms: then closed with 4001 "authorization expired". */
  expiresAt?: Date | number;
}
export interface UpgradeReject {
  /** 400..599 (over TLS: close code 4000 + status). */
  status: number;
  body?: string;
}
export type UpgradeAnswer = boolean | UpgradeAccept | UpgradeReject | undefined;

/** A WebSocket upgrade waiting for the host's answer (option authenticate). */
export declare class UpgradeRequest {
  private constructor();
  readonly id: number;
  readonly path: string;
  /** The raw query string, without '?'. */
  readonly query: string;
  readonly peer: string;
  /** Names lower-cased; repeats joined with ", ". */
  readonly headers: Record<string, string>;
  readonly answered: boolean;
  readonly bearerToken: string | undefined;
  header(name: string): string | undefined;
  queryArg(name: string): string | undefined;
  accept(answer?: UpgradeAccept): void;
  reject(status?: number, body?: string): void;
}

export type UpgradeHandler = (req: UpgradeRequest) => UpgradeAnswer | Promise<UpgradeAnswer>;

/** The core's options by camelCase name; durations in milliseconds. */
export interface ServerOptions {
  host?: string;
  port?: number;
  path?: string;
  staticDir?: string;
  writeWait?: number;
  pongWait?: number;
  pingPeriod?: number;
  readLimit?: number;
  compression?: boolean;
  sendBuffer?: number;
  dropOnBackpressure?: boolean;
  backpressureReason?: string;
  closeGrace?: number;
  /** '' = same origin, '*' = any, else exact origins. */
  allowedOrigins?: string | string[];
  /** Only false: handlers run on the JS thread (true throws RangeError). */
  eventsOnIoThread?: false;
  eventQueueLimit?: number;
  maxChannelName?: number;
  maxMetadataBytes?: number;
  maxClients?: number;
  maxPendingBatches?: number;
  maxBatchMessages?: number;
  maxBatchBytes?: number;
  logLevel?: number | LogLevelName;
  rawIncoming?: boolean;
  coalesceWindow?: number;
  readBuffer?: number;
  /** Core log lines kept for the JS thread (default here 1000); more are dropped and counted. */
  logQueue?: number;
  rxBufferPool?: boolean;
  mallocTrim?: boolean;
  /**
   * Every upgrade waits for the answer of this handler (or of the one
   * setUpgradeHandler() sets, with true).
   */
  authenticate?: boolean | UpgradeHandler;
  /** Ms a request and its answer may take (then 408 / 503). */
  authTimeout?: number;
  /** Upgrades waiting for an answer at once; beyond, 503. */
  authQueue?: number;
  /** Connections one remote address may hold; 0 = no bound. */
  maxClientsPerAddress?: number;
  /** PEM certificate (chain) file: with tlsKey the server speaks only TLS (wss://). */
  tlsCert?: string;
  /** PEM private key of tlsCert (no passphrase). */
  tlsKey?: string;
  /** PEM file of the CAs whose client certificates are accepted. */
  tlsCa?: string;
  /** Client certificates: 0 not asked for, 1 requested, 2 required (1, 2 need tlsCa). */
  tlsClientCert?: 0 | 1 | 2;
  /** Every core log line at or above logLevel. */
  logger?: (level: LogLevelName, line: string) => void;
  /**
   * Publishes that may wait for room at once (default 1024); one more
   * rejects with WSN_ELIMIT. 0: a publish the core has no room for
   * rejects at once.
   */
  publishQueueLimit?: number;
  /** Serve GET /metrics (the Prometheus text of metricsText()). */
  metrics?: boolean;
  /** With metrics: only requests with `Authorization: Bearer <token>`; others get 401. */
  metricsToken?: string;
  /** A unix socket path told (one byte) whenever events become pending: for hosts that cannot wait on an fd. */
  eventSocket?: string;
  /** A unix datagram socket path where fronts hand over connections they accepted (handoff()). */
  handoffSocket?: string;
  /** Options a newer core adds. */
  [option: string]: unknown;
}

export interface PublishIds {
  messageId?: string;
  replyToId?: string;
}

export type Ident = number | bigint;

export interface ServerEvents {
  connect: [client: Client];
  message: [client: Client, msg: IncomingMessage];
  disconnect: [client: Client];
  error: [err: Error];
  stopped: [];
  broker: [state: BrokerStateName, reason: string];
}

export type BrokerStateName = 'none' | 'connecting' | 'up' | 'down';

export interface BrokerState {
  state: BrokerStateName;
  reason: string;
  serverId: string;
  sent: number;
  refused: number;
  unconfirmed: number;
  received: number;
  ignored: number;
  dropped: number;
  reconnects: number;
}

/** Why connections were refused (labels of the core, e.g. 'origin', 'max_clients'). */
export type RefusalCounts = Record<string, number>;

/**
 * metrics(): the core's counters (since the server was made) and gauges
 * (now); docs/production.md, "Metrics".
 */
export interface Metrics {
  connections: number;
  connectionsAccepted: number;
  /** By reason: shutdown, max_clients, per_address, descriptors, origin, bad_request, auth, auth_timeout, auth_queue, tls. */
  connectionsRefused: RefusalCounts;
  /** Closed by the server, by reason: slow, rate, expired, too_big, pong_timeout, queue_full, busy. */
  connectionsClosed: Record<string, number>;
  connectionsEnded: number;
  subscriptions: number;
  channels: number;
  messagesReceived: Record<MessageTypeName, number>;
  bytesReceived: Record<MessageTypeName, number>;
  messagesInvalid: number;
  deliveries: number;
  messagesSent: number;
  bytesSent: number;
  messagesDropped: number;
  queued: number;
  queueMax: number;
  stalledClients: number;
  publishRefusedLimit: number;
  publishRefusedAgain: number;
  publishRefusedTimeout: number;
  publishRefusedBackpressure: number;
  pendingBatches: number;
  eventsQueued: number;
  eventsQueuedBytes: number;
  clientsPaused: number;
  readsPaused: boolean;
  logsDropped: number;
  brokerState: BrokerStateName;
  brokerSent: number;
  brokerRefused: number;
  brokerUnconfirmed: number;
  brokerReceived: number;
  brokerIgnored: number;
  brokerDropped: number;
  brokerReconnects: number;
  /** Messages of other servers found missing (sequence gaps); docs/scale-out.md. */
  brokerLost: number;
}

export declare class Server extends EventEmitter {
  constructor(options?: ServerOptions);
  start(): Promise<void>;
  setUpgradeHandler(fn: UpgradeHandler | null): void;
  readonly port: number;
  shutdown(timeoutMs?: number): Promise<boolean>;
  /** Reads tlsCert and tlsKey again; open connections keep theirs. */
  reloadTls(): Promise<void>;

  subscribe(client: Client, channel: string): void;
  unsubscribe(client: Client, channel: string): void;
  publish(channel: string, value: unknown): Promise<void>;
  publishWithType(channel: string, data: unknown, type?: MessageTypeName, ids?: PublishIds): Promise<void>;
  publishToClient(client: Client, channel: string, data: unknown, type?: MessageTypeName, ids?: PublishIds): Promise<void>;
  publishToClientId(clientId: string, channel: string, data: unknown, type?: MessageTypeName, ids?: PublishIds): Promise<void>;
  publishWait(channel: string, value: unknown, ident: Ident, name: string, ttlMs: number): Promise<void>;
  publishWaitWithType(channel: string, data: unknown, type: MessageTypeName, ident: Ident, name: string, ttlMs: number): Promise<void>;
  publishWaitString(channel: string, text: string, ident: Ident, name: string, ttlMs: number): Promise<void>;
  cancelPendingMessages(channel: string, ident: Ident): void;
  pendingBatches(): number;
  sendRaw(client: Client, data: string | Bytes, type?: 'text' | 'binary'): Promise<void>;

  connectedClients(): number;
  clientList(): string[];
  brokerState(): BrokerState;
  metrics(): Metrics;
  /** The same snapshot in the Prometheus text format. */
  metricsText(): string;
  getClient(id: string): Client | undefined;

  on<K extends keyof ServerEvents>(event: K, listener: (...args: ServerEvents[K]) => unknown): this;
  once<K extends keyof ServerEvents>(event: K, listener: (...args: ServerEvents[K]) => unknown): this;
  off<K extends keyof ServerEvents>(event: K, listener: (...args: ServerEvents[K]) => unknown): this;
  emit<K extends keyof ServerEvents>(event: K, ...args: ServerEvents[K]): boolean;
}

export declare function defaultOptions(): Record<string, string | number | boolean>;
export declare function optionNames(): string[];
export declare function jsonGetString(text: string | Uint8Array, key: string): string;
/** Gives an accepted connection and the request head read from it to the
 * engine whose handoffSocket option is `path` (wsn_handoff). Afterwards
 * destroy() the socket, never end() it. */
export declare function handoff(path: string, sock: import('net').Socket | number,
                                head: string | Uint8Array): void;
export declare function strerror(errno: number): string;
export declare function errorName(errno: number): string;
export declare const cVersion: string;
export declare const SUPPORTED_MAJOR: number;
