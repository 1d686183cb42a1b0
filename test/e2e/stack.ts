/**
 * The whole system for end-to-end tests and the propagation benchmark, every part real and on its own
 * ports: nats-server with the installation's JWT auth, a Postgres database, registration, projector,
 * routing and API as their own processes (test/harness/stack.ts in process mode), a real HAProxy behind the
 * Data Plane API emulator (test/harness/haproxy.ts), proxy-sync as its own process reading the routes
 * projection, the certificates service as its own process with the CloudLunacy CA (#pki, on disk), the
 * front's certificate from ensureFrontCertificate, and real agents (node dist/apps/agent/src/main.js)
 * enrolled through the API, which get their certificates from that service.
 */
import { execFile } from 'node:child_process';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import {
  CaStore,
  ensureFrontCertificate,
  generateCaEncryptionKey,
  readCaEncryptionKey,
  issueCertificate,
  parseCsr,
  assertNamesAllowed,
  type CertificateAuthority,
} from '#pki';
import { createCsr, generateRsaKeyPair } from '#pki-client';
import { AgentsStack, type StackOptions } from '../harness/stack.js';
import { startApp } from '../harness/apps.js';
import { startHaproxyStack, type HaproxyStack } from '../harness/haproxy.js';
import { makeTempDir, waitFor, type RunningProcess } from '../harness/processes.js';
import { divergence, getThrough, proxyEnv, type Reply } from '../proxy-sync/helpers.js';
import type { ProxyNodeRecord } from '../../apps/proxy-sync/src/reporting.js';
import type { SourcedRoute } from '../../apps/proxy-sync/src/route-source.js';

export const DOMAIN = 'e2e.test';
export const NODE = 'front-e2e';
export const SECOND_NODE = 'front-e2e-2';

export interface E2eOptions {
  /** proxy-sync's full-pass interval (default 60 s: passes come from events). */
  reconcileIntervalMs?: number;
  /** Extra environment for proxy-sync. */
  proxyEnv?: Record<string, string>;
  /** Extra environment for every service. */
  env?: Record<string, string>;
  /** Do not start proxy-sync (the caller starts it). */
  withoutProxySync?: boolean;
  stack?: StackOptions;
  /**
   * Also run the deployments service (its own process), verifying through this front's HTTPS listener
   * against the CA, with short leases; agents started with `startAgent(…, { deployments })` run apps.
   */
  deployments?: { env?: Record<string, string> };
}

/** Where the deployment tests' repositories live (the service's and the agents' `file://` root). */
export const DEPLOY_REPOS = '/srv/cloudlunacy-test-repos';

export interface RealAgent {
  agentId: string;
  address: string;
  process: RunningProcess;
  configPath: string;
  /** The agent's current access token (from its identity file). */
  token(): Promise<string>;
}

export interface TlsPair {
  key: string;
  /** The certificate followed by the CA certificate. */
  cert: string;
}

export class E2eStack {
  stack!: AgentsStack;
  haproxy!: HaproxyStack;
  ca!: CertificateAuthority;
  dir!: { path: string; remove(): Promise<void> };
  caFile = '';
  frontFile = '';
  admin = '';
  proxySyncEnv: Record<string, string> = {};
  /** The second front's HAProxy and Data Plane API, once started. */
  second?: HaproxyStack;
  private readonly agents: RealAgent[] = [];

  private constructor(private readonly options: E2eOptions) {}

  static async start(options: E2eOptions = {}): Promise<E2eStack> {
    const e2e = new E2eStack(options);
    try {
      await e2e.boot();
    } catch (error) {
      await e2e.stop();
      throw error;
    }
    return e2e;
  }

  private async boot(): Promise<void> {
    this.dir = await makeTempDir('e2e');
    // The installation's CA, on disk as the certificates service keeps it: the service (started with the
    // stack) loads this same CA, so agents' certificates, the front's and HAProxy's trust share one anchor.
    const pkiDir = join(this.dir.path, 'pki');
    const caKeyFile = join(this.dir.path, 'ca-encryption.key');
    await writeFile(caKeyFile, generateCaEncryptionKey(), { mode: 0o600 });
    ({ ca: this.ca } = await new CaStore({
      dir: pkiDir,
      encryptionKey: await readCaEncryptionKey(caKeyFile),
    }).openOrCreate({ installation: DOMAIN, permittedDomains: [DOMAIN] }));
    this.caFile = join(this.dir.path, 'ca.pem');
    await writeFile(this.caFile, this.ca.certificatePem);
    this.frontFile = join(this.dir.path, 'front', 'front.pem');
    await ensureFrontCertificate(this.ca, {
      domain: DOMAIN,
      path: this.frontFile,
      validitySeconds: 24 * 3600,
      renewBeforeSeconds: 3600,
    });
    const startStack = (deploymentsEnv: Record<string, string>) =>
      AgentsStack.start({
        ...this.options.stack,
        processes: true,
        certificates: true,
        ...(this.options.deployments ? { deployments: true } : {}),
        env: {
          CL_DOMAIN: DOMAIN,
          CL_PKI_DIR: pkiDir,
          CL_PKI_CA_KEY_FILE: caKeyFile,
          CL_ROUTING_SNI_ZONES: 'mongodb,redis',
          CL_PROJECTOR_BATCH_SIZE: '500',
          ...deploymentsEnv,
          ...this.options.stack?.env,
          ...this.options.env,
        },
      });
    if (this.options.deployments) {
      // The service verifies through this front, so the front's port comes first.
      this.haproxy = await startHaproxyStack({ caPem: this.ca.certificatePem });
      await mkdir(DEPLOY_REPOS, { recursive: true, mode: 0o755 });
      this.stack = await startStack({
        CL_DEPLOY_VERIFY_URLS: `https://127.0.0.1:${this.haproxy.ports.https}`,
        CL_DEPLOY_VERIFY_SNI_ADDRESSES: `127.0.0.1:${this.haproxy.ports.tlsSni}`,
        CL_FRONT_SNI_PORT: String(this.haproxy.ports.tlsSni),
        CL_DEPLOY_VERIFY_CA_FILE: this.caFile,
        CL_DEPLOY_FILE_ROOTS: DEPLOY_REPOS,
        CL_DEPLOY_LEASE_TTL_MS: '4000',
        CL_DEPLOY_LEASE_RENEW_MS: '1000',
        CL_DEPLOY_SUPERVISE_MS: '250',
        CL_DEPLOY_VERIFY_TIMEOUT_S: '15',
        ...this.options.deployments.env,
      });
    } else {
      [this.stack, this.haproxy] = await Promise.all([
        startStack({}),
        startHaproxyStack({ caPem: this.ca.certificatePem }),
      ]);
    }
    const { stack, haproxy } = this;
    this.admin = stack.adminToken('e2e-admin', 3600);
    this.proxySyncEnv = proxyEnv(haproxy, {
      CL_PROXY_NODE_ID: NODE,
      CL_FRONT_CERT_FILE: this.frontFile,
      CL_PROXY_RECONCILE_INTERVAL_MS: String(this.options.reconcileIntervalMs ?? 60_000),
      ...this.options.proxyEnv,
    });
    if (!this.options.withoutProxySync) await this.startProxySync();
  }

  /** Starts proxy-sync as its own process and waits for its first successful pass. */
  async startProxySync(extra: Record<string, string> = {}): Promise<RunningProcess> {
    const since = new Date().toISOString();
    const started = this.stack.startService('proxy-sync', { ...this.proxySyncEnv, ...extra });
    await this.nodeRecord(
      (record) =>
        record.status === 'in-sync' && record.lastSuccessAt !== null && record.lastSuccessAt >= since,
      'proxy-sync to be in sync',
      started,
    );
    return started;
  }

  /**
   * A second front: its own HAProxy and Data Plane API, and its own proxy-sync (node `<NODE>-2`, kept as
   * process `proxy-sync-2`), waiting for its first successful pass.
   */
  async startSecondFront(extra: Record<string, string> = {}): Promise<HaproxyStack> {
    this.second ??= await startHaproxyStack({ caPem: this.ca.certificatePem });
    await this.startSecondProxySync(extra);
    return this.second;
  }

  async startSecondProxySync(extra: Record<string, string> = {}): Promise<RunningProcess> {
    const since = new Date().toISOString();
    // The first front's settings (front certificate, pass interval), with the second's addresses.
    const env = {
      ...this.proxySyncEnv,
      ...proxyEnv(this.second!),
      CL_PROXY_NODE_ID: SECOND_NODE,
      CL_PROXY_RECONCILE_INTERVAL_MS: this.proxySyncEnv.CL_PROXY_RECONCILE_INTERVAL_MS!,
      ...extra,
    };
    const started = this.stack.startService('proxy-sync', env, 'proxy-sync-2');
    await this.nodeRecord(
      (record) =>
        record.status === 'in-sync' && record.lastSuccessAt !== null && record.lastSuccessAt >= since,
      'the second proxy-sync to be in sync',
      started,
      30_000,
      SECOND_NODE,
    );
    return started;
  }

  async stopSecondProxySync(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.stack.stopService('proxy-sync-2', signal);
  }

  /** A request through the second front's HTTPS listener. */
  httpsSecond(hostname: string, path = '/'): Promise<Reply> {
    return getThrough(this.second!.ports.https, hostname, this.ca.certificatePem, path);
  }

  async stopProxySync(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.stack.stopService('proxy-sync', signal);
  }

  get proxySync(): RunningProcess | undefined {
    return this.stack.processes.get('proxy-sync');
  }

  /** Waits until the node's liveness record (KV) satisfies `accept`; returns it. */
  async nodeRecord(
    accept: (record: ProxyNodeRecord) => boolean,
    what = 'the proxy node record',
    process: RunningProcess | undefined = this.proxySync,
    timeoutMs = 30_000,
    node = NODE,
  ): Promise<ProxyNodeRecord> {
    // nats-server 2.9.10 can crash (a nil pointer in jsMsgGetRequest) when a message get races the
    // creation of its stream, which proxy-sync makes as it starts: no get until the stream is listed, and
    // a moment more for its creation to finish. (Listing reads names only.)
    const jsm = await jetstreamManager(this.stack.service);
    await waitFor(
      'proxy-sync to create the proxy-nodes bucket',
      async () => {
        if (process && (process.child.exitCode !== null || process.child.signalCode !== null))
          throw new Error(`proxy-sync exited:\n${process.output()}`);
        for await (const name of jsm.streams.names('$KV.proxy-nodes.>'))
          if (name === 'KV_proxy-nodes') return true;
        return undefined;
      },
      { timeoutMs, intervalMs: 100 },
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}\n${process?.output().slice(-4000) ?? ''}`);
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    const kv = await new Kvm(this.stack.service).open('proxy-nodes');
    return waitFor(
      what,
      async () => {
        if (process && (process.child.exitCode !== null || process.child.signalCode !== null))
          throw new Error(`proxy-sync exited:\n${process.output()}`);
        const entry = await kv.get(node);
        const record = entry && entry.length > 0 ? entry.json<ProxyNodeRecord>() : undefined;
        return record && accept(record) ? record : undefined;
      },
      { timeoutMs, intervalMs: 50 },
    ).catch((error: unknown) => {
      // The broker's own log says why a JetStream request went unanswered, when it knows.
      const broker = this.stack.nats.process.output().slice(-3000);
      throw new Error(
        `${String(error)}\n${process?.output().slice(-4000) ?? ''}\nnats-server:\n${broker || '(no output)'}`,
      );
    });
  }

  /** A real agent process, enrolled through the API with a one-time token, on `address`. */
  async startAgent(
    agentId: string,
    address: string,
    options: { deployments?: Record<string, unknown>; logLevel?: string } = {},
  ): Promise<RealAgent> {
    const dir = join(this.dir.path, `agent-${agentId}`);
    await mkdir(dir, { recursive: true });
    const appsDir = join(dir, 'apps');
    // Apps run as their own uids: they must be able to walk down to their directories.
    if (options.deployments) for (const path of [this.dir.path, dir]) await chmod(path, 0o711);
    const configPath = join(dir, 'agent.json');
    const stateDir = join(dir, 'state');
    if (options.deployments) this.appStateDirs.push(stateDir);
    await writeFile(
      configPath,
      JSON.stringify({
        apiUrl: this.stack.baseUrl,
        enrollmentToken: await this.stack.enrollmentToken(this.admin),
        agentId,
        // It enrolls from its address, which the front then takes as the agent's.
        sourceAddress: address,
        stateDir,
        heartbeatIntervalMs: 2_000,
        reconnect: { initialDelayMs: 100, maxDelayMs: 1_000 },
        deployments: options.deployments
          ? {
              dir: appsDir,
              fileRoots: [DEPLOY_REPOS],
              reconcileIntervalMs: 2_000,
              superviseIntervalMs: 300,
              logBatchMs: 100,
              // The tests leave the host's passwd alone; the one that needs names turns this on and
              // removes them afterwards.
              systemUsers: 'off',
              ...options.deployments,
            }
          : { enabled: false },
      }),
    );
    const process = startApp('agent', { CL_LOG_LEVEL: options.logLevel ?? 'warn' }, ['--config', configPath]);
    this.stack.processes.set(`agent-${agentId}`, process);
    const identityPath = join(stateDir, 'identity.json');
    const token = async () =>
      (JSON.parse(await readFile(identityPath, 'utf8')) as { accessToken: string }).accessToken;
    await waitFor('the agent to enroll', async () => (await token().catch(() => undefined)) !== undefined, {
      timeoutMs: 30_000,
    }).catch((error: unknown) => {
      throw new Error(`${String(error)}\n${process.output()}`);
    });
    await this.stack.waitForAgentStatus(agentId, 'online', 30_000);
    const agent = { agentId, address, process, token, configPath };
    this.agents.push(agent);
    return agent;
  }

  /** Starts an agent again with its config and state (after a stop or a crash); it reconnects by itself. */
  async restartAgent(agent: RealAgent, logLevel = 'info'): Promise<RealAgent> {
    const previous = agent.process.child;
    if (previous.exitCode === null && previous.signalCode === null)
      throw new Error(`agent ${agent.agentId} still runs`);
    agent.process = startApp('agent', { CL_LOG_LEVEL: logLevel }, ['--config', agent.configPath]);
    this.stack.processes.set(`agent-${agent.agentId}`, agent.process);
    return agent;
  }

  /** A key pair made "on the agent" and a certificate of the CA for its names (what the certificates service will do). */
  async certificateFor(agentId: string, names: string[]): Promise<TlsPair> {
    const { privateKeyPem } = await generateRsaKeyPair(2048);
    const csr = parseCsr(createCsr({ privateKey: privateKeyPem, names }), { field: 'csr' });
    // The names an agent owns: its own name in the zone, and names under it.
    const own = `${agentId}.mongodb.${DOMAIN}`;
    assertNamesAllowed(
      csr.names,
      names.filter((name) => name === own || name.endsWith(`.${own}`)),
      'csr',
    );
    const issued = issueCertificate(this.ca, csr, { validitySeconds: 3600 });
    return { key: privateKeyPem, cert: issued.certificatePem + issued.chainPem };
  }

  request(
    method: string,
    path: string,
    options: { body?: unknown; token?: string; headers?: Record<string, string> } = {},
  ) {
    return this.stack.request(method, path, { token: this.admin, ...options });
  }

  /** HTTPS through HAProxy by Host, verified against the CloudLunacy CA. */
  https(hostname: string, path = '/'): Promise<Reply> {
    return getThrough(this.haproxy.ports.https, hostname, this.ca.certificatePem, path);
  }

  /** The live routes of the projection, as proxy-sync sees them. */
  async projectedRoutes(): Promise<SourcedRoute[]> {
    const rows: {
      route_id: string;
      revision: number;
      agent_id: string;
      kind: 'http' | 'tls-sni';
      hostname: string;
      target_host: string;
      target_port: number;
      options: { tlsToTarget?: boolean };
    }[] = await this.stack.db.dataSource.query(
      `SELECT route_id, revision, agent_id, kind, hostname, target_host, target_port, options
         FROM routes WHERE removed_at IS NULL`,
    );
    return rows.map((row) => ({
      routeId: row.route_id,
      revision: row.revision,
      agentId: row.agent_id,
      kind: row.kind,
      hostname: row.hostname,
      target: { host: row.target_host, port: row.target_port },
      options: { tlsToTarget: row.options.tlsToTarget ?? false },
    }));
  }

  /** Why HAProxy differs from the routes projection (undefined when it holds exactly its routes). */
  async divergence(): Promise<string | undefined> {
    return divergence(this.haproxy, await this.projectedRoutes(), this.haproxy.client());
  }

  /** Waits until HAProxy holds exactly the projection's routes and no transaction is open. */
  async converged(what: string, timeoutMs = 30_000): Promise<void> {
    let last: string | undefined;
    await waitFor(
      what,
      async () => {
        last = await this.divergence();
        return last === undefined;
      },
      { timeoutMs, intervalMs: 100 },
    ).catch((error: unknown) => {
      throw new Error(
        `${String(error)}; last difference: ${last}\n${this.proxySync?.output().slice(-4000) ?? ''}`,
      );
    });
  }

  /** The state directories of agents that run apps: their apps' uids are in `deployments/uids.json`. */
  private readonly appStateDirs: string[] = [];

  /**
   * Apps outlive their agent by design (a crashed agent must not take them down), so a test's apps are
   * ended here: every process of every uid an agent gave its apps.
   */
  private async stopApps(): Promise<void> {
    for (const stateDir of this.appStateDirs) {
      const uids = await readFile(join(stateDir, 'deployments', 'uids.json'), 'utf8')
        .then((text) => Object.values(JSON.parse(text) as Record<string, number>))
        .catch(() => [] as number[]);
      for (const uid of uids)
        await new Promise((resolve) => execFile('pkill', ['-KILL', '-U', String(uid)], () => resolve(null)));
    }
  }

  async stop(): Promise<void> {
    await this.stack?.stop().catch(() => undefined);
    await this.stopApps().catch(() => undefined);
    await this.haproxy?.stop().catch(() => undefined);
    await this.second?.stop().catch(() => undefined);
    await this.dir?.remove().catch(() => undefined);
  }
}
