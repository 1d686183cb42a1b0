import { spawn } from 'node:child_process';
import { existsSync, openSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { env, loadConfig } from '#platform';
import { UsageError, type CliCommand } from '../command.js';

/**
 * The README's main job, run by `deploy/local/stack.sh demo` once the stack is up: two real agents on
 * 127.0.0.2 and 127.0.0.3 (two VPSs), each with a small web app and a TLS Redis that presents the agent's
 * CloudLunacy certificate; their routes are created through the API and checked through HAProxy. Every
 * process it starts is detached, with a pid file in `.stack/run` (so `stack.sh status` and `down` see it)
 * and a log in `.stack/logs`. Running it again reuses what is there.
 */
const demoConfigSchema = z.object({
  CL_STACK_ABS: env.string(),
  CL_API_PORT: env.int(3000),
  CL_DOMAIN: env.string('cloudlunacy.localhost'),
  CL_HTTPS_PORT: env.int(8443),
  CL_TLS_SNI_PORT: env.int(27017),
});
type DemoConfig = z.output<typeof demoConfigSchema>;

const DEMO_AGENTS = [
  { agentId: 'alpha', address: '127.0.0.2' },
  { agentId: 'beta', address: '127.0.0.3' },
] as const;
const WEB_PORT = 8081;
const REDIS_TLS_PORT = 6380;
const WAIT_MS = 60_000;

type DemoAgent = (typeof DEMO_AGENTS)[number];

interface RouteView {
  routeId: string;
  hostname: string;
  status: string;
  statusReason?: string | null;
}

function step(message: string): void {
  process.stdout.write(`[demo] ${message}\n`);
}

function paths(config: DemoConfig, agent: DemoAgent) {
  const dir = join(config.CL_STACK_ABS, 'demo', agent.agentId);
  const live = join(dir, 'state', 'certificates', 'live');
  return {
    dir,
    config: join(dir, 'agent.json'),
    state: join(dir, 'state'),
    identity: join(dir, 'state', 'identity.json'),
    fullchain: join(live, 'fullchain.pem'),
    key: join(live, 'key.pem'),
    redisSocket: join(dir, 'redis.sock'),
  };
}

async function api<T>(
  config: DemoConfig,
  token: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: T }> {
  const response = await fetch(`http://127.0.0.1:${config.CL_API_PORT}/api/v1/${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : {}) as T };
}

async function waitUntil<T>(what: string, probe: () => Promise<T | undefined>, hint: string): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      const cause = lastError instanceof Error ? ` (${lastError.message})` : '';
      throw new Error(`timed out waiting for ${what}${cause}; ${hint}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

function pidAlive(pidFile: string): Promise<boolean> {
  return readFile(pidFile, 'utf8').then(
    (pid) => {
      try {
        process.kill(Number(pid), 0);
        return true;
      } catch {
        return false;
      }
    },
    () => false,
  );
}

/** Starts a detached process with a pid file and a log, unless its pid file names a live one. */
async function startDetached(config: DemoConfig, name: string, command: string, args: string[]) {
  const pidFile = join(config.CL_STACK_ABS, 'run', `${name}.pid`);
  if (await pidAlive(pidFile)) return;
  const log = openSync(join(config.CL_STACK_ABS, 'logs', `${name}.log`), 'a');
  const child = spawn(command, args, { detached: true, stdio: ['ignore', log, log] });
  child.unref();
  await writeFile(pidFile, `${child.pid}\n`);
  step(`${name} started (pid ${child.pid}, log ${join('.stack', 'logs', `${name}.log`)})`);
}

const cliMain = fileURLToPath(new URL('../main.js', import.meta.url));
const agentMain = fileURLToPath(new URL('../../../agent/src/main.js', import.meta.url));

async function startAgent(config: DemoConfig, admin: string, agent: DemoAgent): Promise<void> {
  const files = paths(config, agent);
  await mkdir(files.state, { recursive: true });
  const enrolled = existsSync(files.identity);
  let enrollmentToken: string | undefined;
  if (!enrolled) {
    const issued = await api<{ token: string; message?: string }>(
      config,
      admin,
      'POST',
      'enrollment-tokens',
      {},
    );
    if (issued.status !== 201 && issued.status !== 200)
      throw new Error(`enrollment token refused (${issued.status}): ${issued.body.message}`);
    enrollmentToken = issued.body.token;
  }
  const agentConfig = {
    apiUrl: `http://127.0.0.1:${config.CL_API_PORT}`,
    ...(enrollmentToken ? { enrollmentToken } : {}),
    agentId: agent.agentId,
    // The agent enrolls from its VPS's address: the front takes that as the agent's own.
    sourceAddress: agent.address,
    labels: { demo: 'true' },
    stateDir: files.state,
    heartbeatIntervalMs: 5_000,
    certificates: {
      keyBits: 2048,
      // The agent's database reloads its certificate after every install (renewals included).
      hook: {
        command: ['redis-cli', '-s', files.redisSocket, 'CONFIG', 'SET', 'tls-cert-file', files.fullchain],
      },
    },
  };
  await writeFile(files.config, `${JSON.stringify(agentConfig, null, 2)}\n`, { mode: 0o600 });
  await startDetached(config, `agent-${agent.agentId}`, process.execPath, [
    agentMain,
    '--config',
    files.config,
  ]);
  await startDetached(config, `web-${agent.agentId}`, process.execPath, [
    cliMain,
    'demo',
    'web',
    '--name',
    agent.agentId,
    '--listen',
    `${agent.address}:${WEB_PORT}`,
  ]);
}

async function startRedis(config: DemoConfig, agent: DemoAgent): Promise<void> {
  const files = paths(config, agent);
  await waitUntil(
    `${agent.agentId}'s certificate`,
    async () => (existsSync(files.fullchain) && existsSync(files.key)) || undefined,
    `see .stack/logs/agent-${agent.agentId}.log and .stack/logs/certificates.log`,
  );
  const caFile = join(config.CL_STACK_ABS, 'ca.pem');
  // A TLS-only Redis on the agent's address: the SNI route reaches it, and it presents the agent's
  // certificate; the unix socket is for the agent's reload hook.
  await startDetached(config, `redis-${agent.agentId}`, 'redis-server', [
    '--port',
    '0',
    '--bind',
    agent.address,
    '--tls-port',
    String(REDIS_TLS_PORT),
    '--tls-cert-file',
    files.fullchain,
    '--tls-key-file',
    files.key,
    '--tls-ca-cert-file',
    caFile,
    '--tls-auth-clients',
    'no',
    '--unixsocket',
    files.redisSocket,
    '--unixsocketperm',
    '700',
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    files.dir,
  ]);
}

async function ensureRoute(
  config: DemoConfig,
  admin: string,
  agent: DemoAgent,
  body: { kind: 'http' | 'tls-sni'; hostname: string; target: { host: string; port: number } },
): Promise<RouteView> {
  const existing = await api<{ routes: RouteView[] }>(
    config,
    admin,
    'GET',
    `routes?agentId=${agent.agentId}&hostname=${encodeURIComponent(body.hostname)}`,
  );
  let route = existing.body.routes?.[0];
  if (!route) {
    const created = await api<RouteView & { message?: string }>(
      config,
      admin,
      'POST',
      'routes?wait=active&timeout=30000',
      { ...body, agentId: agent.agentId },
    );
    if (created.status >= 300)
      throw new Error(`route ${body.hostname} refused (${created.status}): ${created.body.message}`);
    route = created.body;
  }
  const routeId = route.routeId;
  return waitUntil(
    `route ${body.hostname} to be active`,
    async () => {
      const view = (await api<RouteView>(config, admin, 'GET', `routes/${routeId}`)).body;
      if (view.status === 'failed') throw new Error(`route failed: ${view.statusReason}`);
      return view.status === 'active' ? view : undefined;
    },
    'see .stack/logs/proxy-sync.log',
  );
}

function httpsThroughFront(config: DemoConfig, hostname: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = httpsRequest(
      {
        host: '127.0.0.1',
        port: config.CL_HTTPS_PORT,
        servername: hostname,
        headers: { host: hostname },
        ca,
        path: '/',
        timeout: 5_000,
      },
      (response) => {
        let body = '';
        response.on('data', (chunk: Buffer) => (body += chunk.toString()));
        response.on('end', () =>
          response.statusCode === 200
            ? resolve(body.trim())
            : reject(new Error(`HTTP ${response.statusCode}`)),
        );
      },
    );
    request.on('timeout', () => request.destroy(new Error('timed out')));
    request.on('error', reject);
    request.end();
  });
}

/** PING over TLS through the SNI port; the certificate must chain to the CA and name `hostname`. */
function redisPingThroughFront(config: DemoConfig, hostname: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port: config.CL_TLS_SNI_PORT, servername: hostname, ca });
    let answer = '';
    socket.setTimeout(5_000, () => socket.destroy(new Error('timed out')));
    socket.on('secureConnect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString();
      if (answer.includes('\r\n')) {
        socket.end();
        resolve(answer.trim());
      }
    });
    socket.on('error', reject);
  });
}

async function runDemo(): Promise<void> {
  const config = loadConfig(demoConfigSchema);
  const admin = (await readFile(join(config.CL_STACK_ABS, 'admin.token'), 'utf8')).trim();
  const ca = await readFile(join(config.CL_STACK_ABS, 'ca.pem'), 'utf8');
  for (const agent of DEMO_AGENTS) await startAgent(config, admin, agent);
  for (const agent of DEMO_AGENTS) {
    await waitUntil(
      `agent ${agent.agentId} to be online`,
      async () => {
        const found = await api<{ status?: string }>(config, admin, 'GET', `agents/${agent.agentId}`);
        return found.body.status === 'online' || undefined;
      },
      `see .stack/logs/agent-${agent.agentId}.log`,
    );
    step(`agent ${agent.agentId} enrolled and online on ${agent.address}`);
  }
  for (const agent of DEMO_AGENTS) await startRedis(config, agent);

  const checks: string[] = [];
  for (const agent of DEMO_AGENTS) {
    const web = `${agent.agentId}.apps.${config.CL_DOMAIN}`;
    const sni = `${agent.agentId}.mongodb.${config.CL_DOMAIN}`;
    await ensureRoute(config, admin, agent, {
      kind: 'http',
      hostname: web,
      target: { host: agent.address, port: WEB_PORT },
    });
    await ensureRoute(config, admin, agent, {
      kind: 'tls-sni',
      hostname: sni,
      target: { host: agent.address, port: REDIS_TLS_PORT },
    });
    step(`routes active: https://${web}:${config.CL_HTTPS_PORT} and ${sni}:${config.CL_TLS_SNI_PORT}`);
    const page = await waitUntil(
      `${web} to answer through HAProxy`,
      () => httpsThroughFront(config, web, ca),
      'see .stack/logs/dataplane.log',
    );
    const pong = await waitUntil(
      `${sni} to answer through HAProxy`,
      () => redisPingThroughFront(config, sni, ca),
      `see .stack/logs/redis-${agent.agentId}.log`,
    );
    checks.push(`  ${web} → "${page.split('\n')[0]}"`, `  ${sni} → Redis says ${pong}`);
  }

  const first = DEMO_AGENTS[0].agentId;
  const second = DEMO_AGENTS[1].agentId;
  process.stdout.write(
    [
      '',
      'CloudLunacy demo is running. Checked through HAProxy just now:',
      ...checks,
      '',
      'Web apps by Host, over HTTPS verified against the CloudLunacy CA:',
      `  curl --cacert .stack/ca.pem --resolve ${first}.apps.${config.CL_DOMAIN}:${config.CL_HTTPS_PORT}:127.0.0.1 https://${first}.apps.${config.CL_DOMAIN}:${config.CL_HTTPS_PORT}/`,
      `  curl --cacert .stack/ca.pem --resolve ${second}.apps.${config.CL_DOMAIN}:${config.CL_HTTPS_PORT}:127.0.0.1 https://${second}.apps.${config.CL_DOMAIN}:${config.CL_HTTPS_PORT}/`,
      '',
      'Databases by SNI (TLS passed through to the agent, which presents its own certificate):',
      `  redis-cli -h 127.0.0.1 -p ${config.CL_TLS_SNI_PORT} --tls --sni ${first}.mongodb.${config.CL_DOMAIN} --cacert .stack/ca.pem PING`,
      `  openssl s_client -connect 127.0.0.1:${config.CL_TLS_SNI_PORT} -servername ${second}.mongodb.${config.CL_DOMAIN} -CAfile .stack/ca.pem -verify_return_error -brief </dev/null`,
      '',
      `Dashboard: http://127.0.0.1:${config.CL_API_PORT}/  (sign in with the token in .stack/admin.token)`,
      `API:       http://127.0.0.1:${config.CL_API_PORT}/api/v1  (Authorization: Bearer $(cat .stack/admin.token))`,
      'Stop everything: deploy/local/stack.sh down',
      '',
    ].join('\n'),
  );
}

/** A demo web app: says which agent answered, for which host, and who asked (HAProxy's X-Forwarded-For). */
async function serveWebApp(values: Record<string, string | boolean | undefined>): Promise<void> {
  const name = typeof values.name === 'string' ? values.name : undefined;
  const listen = typeof values.listen === 'string' ? /^([\d.]+):(\d+)$/.exec(values.listen) : null;
  if (!name) throw new UsageError('--name is required');
  if (!listen) throw new UsageError('--listen must be <ipv4>:<port>');
  const server = createServer((request, response) => {
    response.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
    response.end(
      `hello from ${name}, a CloudLunacy demo app\n` +
        `host: ${request.headers.host ?? '-'}\nforwarded-for: ${String(request.headers['x-forwarded-for'] ?? '-')}\n`,
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(listen[2]), listen[1], resolve);
  });
  step(`web app ${name} listening on ${values.listen}`);
  await new Promise<void>((resolve) => {
    for (const signal of ['SIGINT', 'SIGTERM'] as const)
      process.once(signal, () => server.close(() => resolve()));
  });
}

export const demoCommands: CliCommand[] = [
  {
    path: ['demo'],
    summary: 'two demo agents with web apps and TLS Redis, routed through HAProxy (run by stack.sh demo)',
    async run() {
      await runDemo();
    },
  },
  {
    path: ['demo', 'web'],
    summary: 'a small web app that says which agent answered (started by the demo)',
    usage: '--name <agent> --listen <ip>:<port>',
    options: { name: { type: 'string' }, listen: { type: 'string' } },
    async run({ values }) {
      await serveWebApp(values);
    },
  },
];
