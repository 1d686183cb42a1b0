/**
 * Shared pieces of the proxy-sync tests: a CA and certificates made with openssl, "agents" (real HTTP,
 * HTTPS and TLS servers on 127.0.0.2 / 127.0.0.3), real clients, and proxy-sync's configuration for a
 * test HAProxy stack.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect as netConnect, type AddressInfo } from 'node:net';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect, createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { promisify } from 'node:util';
import type { DataplaneClient } from '#dataplane';
import { desiredState, desiredStructure, diffStructure, renderMapFile } from '#haproxy';
import { loadConfig } from '#platform';
import { requestReply, type Reply } from '../harness/http.js';
import { layoutOf, proxySyncConfigSchema, type ProxySyncConfig } from '../../apps/proxy-sync/src/config.js';
import { DataplaneGateway } from '../../apps/proxy-sync/src/gateway.js';
import type { SourcedRoute } from '../../apps/proxy-sync/src/route-source.js';
import type { HaproxyStack } from '../harness/haproxy.js';
import { makeTempDir } from '../harness/processes.js';

const run = promisify(execFile);

export interface TestCa {
  dir: string;
  certPem: string;
  keyFile: string;
  certFile: string;
  /** A leaf certificate signed by the CA for these DNS names (the first is the CN). */
  issue(names: string[]): Promise<{ cert: string; key: string; pem: string }>;
  remove(): Promise<void>;
}

export async function createTestCa(name = 'CloudLunacy Test CA'): Promise<TestCa> {
  const temporary = await makeTempDir('ca');
  const dir = temporary.path;
  const keyFile = join(dir, 'ca.key');
  const certFile = join(dir, 'ca.crt');
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  const certPem = await readFile(certFile, 'utf8');
  let serial = 0;
  return {
    dir,
    certPem,
    keyFile,
    certFile,
    async issue(names) {
      const base = join(dir, `leaf-${++serial}`);
      await run('openssl', [
        'req',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-subj',
        `/CN=${names[0]}`,
        '-keyout',
        `${base}.key`,
        '-out',
        `${base}.csr`,
      ]);
      await writeFile(
        `${base}.ext`,
        `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}\n` +
          'keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n',
      );
      await run('openssl', [
        'x509',
        '-req',
        '-in',
        `${base}.csr`,
        '-CA',
        certFile,
        '-CAkey',
        keyFile,
        '-CAcreateserial',
        '-days',
        '2',
        '-out',
        `${base}.crt`,
        '-extfile',
        `${base}.ext`,
      ]);
      const cert = await readFile(`${base}.crt`, 'utf8');
      const key = await readFile(`${base}.key`, 'utf8');
      return { cert, key, pem: cert + key };
    },
    remove: () => temporary.remove(),
  };
}

export interface Agent {
  host: string;
  port: number;
  close(): Promise<void>;
}

function listen(server: HttpServer | TlsServer, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve((server.address() as AddressInfo).port));
  });
}

function closer(server: HttpServer | TlsServer): () => Promise<void> {
  return () =>
    new Promise<void>((resolve) => {
      if ('closeAllConnections' in server) (server as HttpServer).closeAllConnections();
      server.close(() => resolve());
    });
}

/** An agent's web app: answers `<name> <Host> <X-Forwarded-Proto>` over plain HTTP. */
export async function httpAgent(host: string, name: string): Promise<Agent> {
  const server = createHttpServer((request, response) => {
    response.setHeader('content-type', 'text/plain');
    response.end(`${name} ${request.headers.host ?? ''} ${request.headers['x-forwarded-proto'] ?? ''}`);
  });
  return { host, port: await listen(server, host), close: closer(server) };
}

/** An agent's web app over HTTPS with a certificate of the CA. */
export async function httpsAgent(
  host: string,
  name: string,
  tls: { cert: string; key: string },
): Promise<Agent> {
  const server = createHttpsServer(tls, (request, response) => {
    response.end(`${name} over tls ${request.headers.host ?? ''}`);
  });
  return { host, port: await listen(server, host), close: closer(server) };
}

/** An agent's TLS service (a database, say): greets with its name, then echoes. */
export async function tlsAgent(
  host: string,
  name: string,
  tls: { cert: string; key: string },
): Promise<Agent> {
  const sockets = new Set<import('node:net').Socket>();
  const server = createTlsServer(tls, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.write(`hello from ${name}\n`);
    socket.pipe(socket);
  });
  const port = await listen(server, host);
  return {
    host,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

export type { Reply };

/** HTTPS through HAProxy, with SNI and Host set to `hostname`, verified against `ca`. */
export function getThrough(port: number, hostname: string, ca: string, path = '/'): Promise<Reply> {
  return requestReply(
    { https: true, port, path, servername: hostname, headers: { host: hostname }, ca },
    10_000,
  );
}

/**
 * A request written byte for byte (HTTP/1.1, `Connection: close`), so that headers a client library
 * would refuse — several Host headers, a Host with a comma — reach HAProxy as an attacker sends them.
 * Over TLS when `tls` is given (SNI `tls.servername`). Resolves with the status code and the raw answer.
 */
export function rawRequest(
  port: number,
  headerLines: string[],
  tls?: { servername: string; ca: string },
): Promise<{ status: number; raw: string }> {
  const request = ['GET / HTTP/1.1', ...headerLines, 'Connection: close', '', ''].join('\r\n');
  return new Promise((resolve, reject) => {
    const socket = tls
      ? tlsConnect({ host: '127.0.0.1', port, servername: tls.servername, ca: tls.ca }, () =>
          socket.write(request),
        )
      : netConnect({ host: '127.0.0.1', port }, () => socket.write(request));
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.setTimeout(10_000, () => socket.destroy(new Error('timeout')));
    socket.on('error', reject);
    socket.on('close', () => {
      const raw = Buffer.concat(chunks).toString('latin1');
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(raw);
      if (status) resolve({ status: Number(status[1]), raw });
      else reject(new Error(`no HTTP status in ${JSON.stringify(raw.slice(0, 200))}`));
    });
  });
}

/** A TLS connection to the SNI port: the peer certificate's CN and the greeting, verified against `ca`. */
export function tlsThrough(
  port: number,
  servername: string,
  ca: string,
): Promise<{ subject: string; greeting: string; authorized: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername, ca }, () => {
      const subject = String(socket.getPeerCertificate().subject?.CN ?? '');
      socket.once('data', (data: Buffer) => {
        resolve({ subject, greeting: data.toString().trim(), authorized: socket.authorized });
        socket.destroy();
      });
    });
    socket.setTimeout(10_000, () => socket.destroy(new Error('timeout')));
    socket.on('error', reject);
    socket.on('close', () => reject(new Error('closed before a greeting')));
  });
}

let sequence = 0;
export function httpRoute(
  hostname: string,
  agent: Agent,
  overrides: Partial<SourcedRoute> = {},
): SourcedRoute {
  return {
    routeId: randomUUID(),
    revision: 1,
    agentId: `agent-${++sequence}`,
    kind: 'http',
    hostname,
    target: { host: agent.host, port: agent.port },
    options: { tlsToTarget: false },
    ...overrides,
  };
}

export function sniRoute(agentId: string, domain: string, agent: Agent): SourcedRoute {
  return {
    routeId: randomUUID(),
    revision: 1,
    agentId,
    kind: 'tls-sni',
    hostname: `${agentId}.mongodb.${domain}`,
    target: { host: agent.host, port: agent.port },
    options: { tlsToTarget: false },
  };
}

/** proxy-sync's configuration for a test stack, parsed like production (the variables are the interface). */
export function proxyEnv(stack: HaproxyStack, extra: Record<string, string> = {}): Record<string, string> {
  return {
    CL_PROXY_NODE_ID: 'front-test',
    CL_DATAPLANE_URL: stack.dataplaneUrl,
    CL_DATAPLANE_USER: stack.credentials.username,
    CL_DATAPLANE_PASSWORD: stack.credentials.password,
    CL_PROXY_HTTP_BIND: `127.0.0.1:${stack.ports.http}`,
    CL_PROXY_HTTPS_BIND: `127.0.0.1:${stack.ports.https}`,
    CL_PROXY_TLS_SNI_BIND: `127.0.0.1:${stack.ports.tlsSni}`,
    CL_PROXY_MAPS_DIR: stack.paths.mapsDir,
    CL_PROXY_CERTS_DIR: `${stack.paths.sslDir}/`,
    CL_PROXY_CA_FILE: stack.paths.caFile,
    CL_PROXY_GENERAL_DIR: stack.paths.generalDir,
    CL_PROXY_RECONCILE_INTERVAL_MS: '60000',
    CL_PROXY_BACKOFF_MIN_MS: '50',
    CL_PROXY_BACKOFF_MAX_MS: '500',
    ...extra,
  };
}

export function proxyConfig(stack: HaproxyStack, extra: Record<string, string> = {}): ProxySyncConfig {
  return loadConfig(proxySyncConfigSchema, proxyEnv(stack, extra));
}

/** The master's reload counter and current workers: unchanged means no reload happened. */
export async function reloadState(stack: HaproxyStack): Promise<{ reloads: number; workers: number[] }> {
  const proc = await stack.showProc();
  return { reloads: proc.reloads, workers: proc.workers.map((worker) => worker.pid).sort() };
}

/** The runtime map as HAProxy holds it, as `key value` lines sorted. */
export async function runtimeMap(stack: HaproxyStack, name: 'hosts' | 'sni'): Promise<string[]> {
  const answer = await stack.control.stats(`show map ${join(stack.paths.mapsDir, `${name}.map`)}`);
  return answer
    .split('\n')
    .map((line) => /^0x[0-9a-f]+\s+(\S+)\s+(\S+)/i.exec(line.trim()))
    .filter((match): match is RegExpExecArray => match !== null)
    .map((match) => `${match[1]} ${match[2]}`)
    .sort();
}

/**
 * Why HAProxy does not hold exactly `routes` (runtime maps, map files, the layout's sections) or has a
 * transaction open; undefined when it does.
 */
export async function divergence(
  stack: HaproxyStack,
  routes: readonly SourcedRoute[],
  client: DataplaneClient,
): Promise<string | undefined> {
  const config = proxyConfig(stack);
  // Once proxy-sync stored the CA's CRL, TLS-to-target servers name it (crl-file).
  const crlFile = join(config.CL_PROXY_GENERAL_DIR, config.CL_PROXY_CRL_NAME);
  const layout = existsSync(crlFile) ? { ...layoutOf(config), crlFile } : layoutOf(config);
  const desired = desiredState([...routes], layout);
  const lines = (map: Map<string, string>) => [...map].map(([key, value]) => `${key} ${value}`).sort();
  for (const name of ['hosts', 'sni'] as const) {
    const runtime = await runtimeMap(stack, name);
    if (JSON.stringify(runtime) !== JSON.stringify(lines(desired.maps[name])))
      return `runtime ${name}.map: ${JSON.stringify(runtime)} ≠ ${JSON.stringify(lines(desired.maps[name]))}`;
    const file = await readFile(name === 'hosts' ? stack.paths.hostsMap : stack.paths.sniMap, 'utf8');
    if (file !== renderMapFile(desired.maps[name]))
      return `${name}.map file differs: ${JSON.stringify(file)}`;
  }
  const changes = diffStructure(desiredStructure(layout), await new DataplaneGateway(client).readStructure());
  if (changes.length > 0)
    return `sections differ: ${changes.map((change) => `${change.action} ${change.name}`).join(', ')}`;
  const open = await client.listTransactions('in_progress');
  if (open.length > 0) return `${open.length} transaction(s) open`;
  return undefined;
}

/** The counters of wrk's report (it prints them when stopped with SIGINT). */
export function parseWrk(output: string): { requests: number; non2xx: number; socketErrors: number } {
  const requests = Number(/(\d+) requests in/.exec(output)?.[1] ?? NaN);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(output)?.[1] ?? 0);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  const socketErrors = socket ? socket.slice(1).reduce((sum, value) => sum + Number(value), 0) : 0;
  return { requests, non2xx, socketErrors };
}
