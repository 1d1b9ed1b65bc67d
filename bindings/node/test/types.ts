// A typed usage of the package: `tsc --noEmit` checks index.d.ts against
// what a TypeScript user writes (never run).
import { Client, UpgradeRequest, IncomingMessage, Metrics, MessageType, RawJSON, Server, WsnotifyError, defaultOptions, jsonGetString } from '..';

async function main(): Promise<void> {
  const server = new Server({ port: 0, writeWait: 5000, allowedOrigins: ['https://a.example'], logLevel: 'info',
    logger: (level, line) => console.log(level, line) });
  server.on('connect', (client: Client) => { client.setMetadata('since', Date.now()); });
  server.on('message', async (client: Client, msg: IncomingMessage) => {
    if (msg.type === MessageType.JSON) {
      server.subscribe(client, msg.channel);
      await server.publish(msg.channel, msg.raw as RawJSON);
      await server.publishWithType(msg.channel, 'hi', MessageType.TEXT, { messageId: 'm1' });
      await server.publishToClient(client, '', Buffer.from([1]), MessageType.BINARY, { replyToId: msg.messageId });
    }
    const user: unknown = client.getMetadata('user');
    void user;
  });
  server.on('disconnect', (client) => { console.log(client.id, client.connected); });
  server.on('error', (err) => { if (err instanceof WsnotifyError) console.log(err.code); });
  server.on('stopped', () => {});
  await server.start();
  const port: number = server.port;
  await server.publishWait('c', { a: 1 }, 1n, 'batch', 100);
  await server.publishWaitString('c', 'line', 2, 'log', 100);
  server.cancelPendingMessages('c', 1);
  const n: number = server.pendingBatches() + server.connectedClients();
  const ids: string[] = server.clientList();
  const m: Metrics = server.metrics();
  const refused: number = m.connectionsRefused.origin + m.messagesReceived.json + m.queued;
  const text: string = server.metricsText();
  console.log(refused, m.readsPaused === false, m.brokerState, text.length);
  const d = defaultOptions();
  const action: string = jsonGetString('{"action":"x"}', 'action');
  const secure = new Server({ port: 0, tlsCert: 'cert.pem', tlsKey: 'key.pem', tlsCa: 'ca.pem', tlsClientCert: 2 });
  await secure.reloadTls();
  const clean: boolean = await server.shutdown(1000);
  console.log(port, n, ids, d, action, clean);
}

void main();

// Authentication at the upgrade: an async handler and a later answer.
export function authTypes(): void {
  const server = new Server({
    port: 0,
    authenticate: async (req: UpgradeRequest) =>
      req.bearerToken === 'T' ? { metadata: { user: 'ann' }, channels: ['news'], expiresAt: Date.now() + 60000 } : { status: 401, body: 'no' },
    authTimeout: 5000,
  });
  server.setUpgradeHandler((req) => { req.reject(403); return undefined; });
  server.on('connect', (c: Client) => c.setExpiry(null));
}
