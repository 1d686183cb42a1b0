import { connect as tlsConnect, createServer as createTlsServer, type Server } from 'node:tls';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  agentCertificateSubject,
  EVENTS_STREAM,
  type AgentCertificateCommand,
  type CommandReply,
} from '#contracts';
import { createCsr, generateRsaKeyPair, type GeneratedKeyPair } from '#pki-client';
import { createLogger } from '#platform';
import { AgentsStack, type StackOptions } from '../harness/stack.js';
import { waitFor } from '../harness/processes.js';

/** JSON read back from the log or Postgres, looked into by tests. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Loose = Record<string, any>;

export const DOMAIN = 'certs.test';
export const databaseName = (agentId: string) => `${agentId}.mongodb.${DOMAIN}`;

/** Everything the stack's in-process services logged (JSON lines), for the grep-proof. */
export class LogCapture {
  readonly lines: string[] = [];
  readonly logger = createLogger('stack', { level: 'debug', write: (line) => this.lines.push(line) });
}

/** Registration, projector, routing, certificates and API on a private NATS and database. */
export function startCertificatesStack(
  options: StackOptions & { capture?: LogCapture } = {},
): Promise<AgentsStack> {
  return AgentsStack.start({
    routing: true,
    certificates: true,
    logger: options.capture?.logger,
    ...options,
    env: {
      CL_DOMAIN: DOMAIN,
      CL_PKI_CA_VALIDITY_DAYS: '30',
      CL_CERTS_RENEW_CHECK_MS: '500',
      ...options.env,
    },
  });
}

/** A key pair made like an agent makes it (OpenSSL through node:crypto), and its CSR for `names`. */
export async function keyAndCsr(names: string[]): Promise<GeneratedKeyPair & { csr: string }> {
  const key = await generateRsaKeyPair(2048);
  return { ...key, csr: createCsr({ privateKey: key.privateKeyPem, names }) };
}

/** A certificate request over the agent's own prefix; the CommandReply as it came. */
export async function natsRequest<T = unknown>(
  connection: NatsConnection,
  agentId: string,
  command: AgentCertificateCommand,
  body: unknown,
): Promise<CommandReply<T>> {
  const message = await connection.request(agentCertificateSubject(agentId, command), JSON.stringify(body), {
    timeout: 15_000,
  });
  return message.json<CommandReply<T>>();
}

/** Every message of the event log, raw (bytes as text) and parsed. */
export async function readWholeLog(stack: AgentsStack): Promise<{ raw: string[]; events: Loose[] }> {
  const jsm = await jetstreamManager(stack.service);
  const last = (await jsm.streams.info(EVENTS_STREAM)).state.last_seq;
  const raw: string[] = [];
  for (let seq = 1; seq <= last; seq++) {
    const message = await jsm.streams.getMessage(EVENTS_STREAM, { seq });
    if (message) raw.push(new TextDecoder().decode(message.data));
  }
  return { raw, events: raw.map((text) => JSON.parse(text) as Loose) };
}

export async function eventsOfType(stack: AgentsStack, type: string): Promise<Loose[]> {
  return (await readWholeLog(stack)).events.filter((event) => event.type === type);
}

export async function certificateRow(stack: AgentsStack, serial: string): Promise<Loose | undefined> {
  const rows: Loose[] = await stack.db.dataSource.query('SELECT * FROM certificates WHERE serial = $1', [
    serial,
  ]);
  return rows[0];
}

export function waitForRow(
  stack: AgentsStack,
  serial: string,
  predicate: (row: Loose) => boolean = () => true,
  timeoutMs = 15_000,
): Promise<Loose> {
  return waitFor(
    `certificate ${serial} in the projection`,
    async () => {
      const row = await certificateRow(stack, serial);
      return row && predicate(row) ? row : undefined;
    },
    { timeoutMs, intervalMs: 100 },
  );
}

/** The CA as anyone gets it: `GET /api/v1/ca.pem` without credentials. */
export async function fetchText(
  stack: AgentsStack,
  path: string,
): Promise<{ status: number; text: string; headers: Headers }> {
  const response = await fetch(`${stack.baseUrl}/api/v1/${path}`);
  return { status: response.status, text: await response.text(), headers: response.headers };
}

/** A TLS server with a key and certificate chain, answering one line; closed by the caller. */
export async function tlsServer(key: string, cert: string): Promise<{ server: Server; port: number }> {
  const server = createTlsServer({ key, cert }, (socket) => socket.end('hello\n'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as { port: number }).port };
}

/**
 * Connects with Node's TLS client trusting only `ca`, sending `servername` as SNI and verifying the
 * certificate for it. Resolves the line served and the peer's serial; rejects on any verification error.
 */
export function tlsClient(
  port: number,
  servername: string,
  ca: string,
): Promise<{ line: string; serial: string; authorized: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername, ca, rejectUnauthorized: true }, () => {
      const peer = socket.getPeerCertificate();
      let data = '';
      socket.on('data', (chunk) => (data += chunk.toString()));
      socket.on('end', () =>
        resolve({
          line: data.trim(),
          serial: peer.serialNumber.toLowerCase(),
          authorized: socket.authorized,
        }),
      );
    });
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error('TLS client timed out')));
  });
}
