import type { IncomingHttpHeaders } from 'node:http';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { createUser } from '@nats-io/nkeys';
import type { NatsConnection } from '@nats-io/transport-node';
import { NestFactory } from '@nestjs/core';
import type { INestApplication, INestApplicationContext, INestMicroservice } from '@nestjs/common';
import { ClientProxyFactory, Transport, type MicroserviceOptions } from '@nestjs/microservices';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { initSecrets, SERVICE_USERS, TokenSigner } from '#auth';
import { agentSubjects, EVENTS_STREAM, type Actor } from '#contracts';
import { CommandBus, commandServerOptions, natsAuthenticator } from '#messaging';
import { caEncryptionKeySecret, loadPkiConfig } from '#pki';
import { createLogger, type Logger } from '#platform';
import { createApiApp } from '../../apps/api/src/api.module.js';
import { apiConfigSchema } from '../../apps/api/src/config.js';
import { createCertificatesApp } from '../../apps/certificates/src/app.js';
import { certificatesConfigSchema } from '../../apps/certificates/src/config.js';
import { createProjectorApp } from '../../apps/projector/src/app.js';
import { ProjectorModule } from '../../apps/projector/src/projector.module.js';
import { projectorConfigSchema } from '../../apps/projector/src/config.js';
import { registrationConfigSchema } from '../../apps/registration/src/config.js';
import { RegistrationModule } from '../../apps/registration/src/registration.module.js';
import { createDeploymentsApp } from '../../apps/deployments/src/app.js';
import { deploymentsConfigSchema } from '../../apps/deployments/src/config.js';
import { createRoutingApp } from '../../apps/routing/src/app.js';
import { routingConfigSchema } from '../../apps/routing/src/config.js';
import { createInstallation, startAuthNats, type AuthNats, type TestInstallation } from './installation.js';
import { requestReply } from './http.js';
import { freePort } from './ports.js';
import { startApp } from './apps.js';
import { createTestDatabase, type TestDatabase } from './postgres.js';
import { waitFor, type RunningProcess } from './processes.js';

export interface StackOptions {
  livenessTimeoutMs?: number;
  livenessCheckMs?: number;
  accessTokenTtlS?: number;
  verbose?: boolean;
  /** Also start the routing service (issue 5). */
  routing?: boolean;
  /** Start the projector with its NATS commands (rebuilds, time travel, status), as production does. */
  projectorCommands?: boolean;
  /** Extra or overriding environment for every service (CL_DOMAIN, CL_ROUTING_*, …). */
  env?: Record<string, string>;
  /**
   * Also start the certificates service (issue 4): the CA encryption key is added to the installation's
   * secrets, the CA lives in a `pki` directory beside them (CL_PKI_DIR), CL_DOMAIN defaults to
   * `cloudlunacy.localhost`.
   */
  certificates?: boolean;
  /** Also start the deployments service (issue 16), in this process. */
  deployments?: boolean;
  /** The logger of the services run in this process (default: errors to stdout). */
  logger?: Logger;
  /**
   * Run registration, projector, routing (always, in this mode) and API as their own processes
   * (`node dist/apps/<app>/src/main.js`, as production does) instead of in this process.
   */
  processes?: boolean;
}

/** The services a stack in process mode runs, in start order (certificates only with `certificates`). */
export const STACK_SERVICES = ['registration', 'projector', 'routing', 'certificates', 'api'] as const;
export type StackService = (typeof STACK_SERVICES)[number];

export interface AgentKeys {
  seed: string;
  publicKey: string;
}

/** What `AgentsStack.enroll` gives back: the API's answer, the agent's keys and its address. */
export type EnrolledAgent = Awaited<ReturnType<AgentsStack['enroll']>>;

export function agentKeys(): AgentKeys {
  const user = createUser();
  return { seed: new TextDecoder().decode(user.getSeed()), publicKey: user.getPublicKey() };
}

/**
 * Everything issue 3 runs on, for real: an installation's secrets, nats-server with its auth config,
 * a Postgres database, and registration, projector and API in this process (API on a free port).
 */
export class AgentsStack {
  installation!: TestInstallation;
  nats!: AuthNats;
  db!: TestDatabase;
  service!: NatsConnection;
  registration?: INestMicroservice;
  projector?: INestApplicationContext;
  routing?: INestApplication;
  certificates?: INestApplication;
  deployments?: INestApplication;
  api?: NestExpressApplication;
  baseUrl = '';
  env: Record<string, string> = {};
  private addressesHandedOut = 0;
  /** The services' processes (process mode). */
  readonly processes = new Map<string, RunningProcess>();
  readonly logger: Logger;

  constructor(private readonly options: StackOptions = {}) {
    this.logger = options.logger ?? createLogger('test', { level: options.verbose ? 'debug' : 'error' });
  }

  static async start(options: StackOptions = {}): Promise<AgentsStack> {
    const stack = new AgentsStack(options);
    try {
      await stack.boot();
    } catch (error) {
      await stack.stop();
      throw error;
    }
    return stack;
  }

  private async boot(): Promise<void> {
    this.installation = await createInstallation();
    this.nats = await startAuthNats(this.installation);
    this.db = await createTestDatabase('agents');
    const port = await freePort();
    this.env = {
      CL_NATS_URL: this.nats.url,
      // Each service gets its own user (envOf); this one is for tools run with the stack's environment.
      CL_NATS_CREDS: this.installation.layout.credsOf('cli'),
      CL_SECRETS_DIR: this.installation.dir,
      CL_DATABASE_URL: this.db.url,
      CL_DATABASE_POOL_SIZE: '5',
      CL_API_PORT: String(port),
      CL_LIVENESS_TIMEOUT_MS: String(this.options.livenessTimeoutMs ?? 60_000),
      CL_LIVENESS_CHECK_MS: String(this.options.livenessCheckMs ?? 1_000),
      CL_ACCESS_TOKEN_TTL_S: String(this.options.accessTokenTtlS ?? 900),
      CL_PROJECTOR_BATCH_SIZE: '200',
      // Agents of the stack live on this machine's loopback addresses (all but the front's 127.0.0.1);
      // tests use the documentation ranges as public addresses.
      CL_ALLOWED_PRIVATE_ADDRESSES:
        '127.0.0.2-127.255.255.254,192.0.2.0/24,198.51.100.0/24,203.0.113.0/24,2001:db8::/32',
      ...(this.options.certificates
        ? { CL_DOMAIN: 'cloudlunacy.localhost', CL_PKI_DIR: join(dirname(this.installation.dir), 'pki') }
        : {}),
      ...this.options.env,
    };
    if (this.options.certificates) await initSecrets(this.installation.dir, {}, [caEncryptionKeySecret]);
    // The tests' own view of the broker: the installation admin, allowed everything in the account.
    this.service = await this.nats.connectWithCreds(this.installation.layout.adminCreds);
    this.baseUrl = `http://127.0.0.1:${port}`;
    if (this.options.processes) {
      for (const service of STACK_SERVICES)
        if (service !== 'certificates' || this.options.certificates) this.startService(service);
      if (this.options.deployments) this.startService('deployments');
      await this.ready();
      return;
    }
    await this.startRegistration();
    const projectorConfig = projectorConfigSchema.parse(this.envOf('projector'));
    if (this.options.projectorCommands) {
      this.projector = await createProjectorApp(projectorConfig, this.logger, { nestLogs: false });
    } else {
      this.projector = await NestFactory.createApplicationContext(
        ProjectorModule.forRoot(projectorConfig, this.logger),
        { logger: false },
      );
      await this.projector.init();
    }
    if (this.options.routing) await this.startRouting();
    if (this.options.certificates) await this.startCertificates();
    if (this.options.deployments) await this.startDeployments();
    this.api = await createApiApp(apiConfigSchema.parse(this.envOf('api')), this.logger);
    await this.api.listen(port, '127.0.0.1');
  }

  /**
   * Starts app `name` as its own process with the stack's environment, kept under `key` (a second
   * proxy-sync is `proxy-sync-2`). A service that runs already is returned as it is when no extra
   * environment is asked for (the stack may have started it).
   */
  startService(name: string, env: Record<string, string> = {}, key = name): RunningProcess {
    const running = this.processes.get(key);
    const previous = running?.child;
    if (previous && previous.exitCode === null && previous.signalCode === null) {
      if (Object.keys(env).length === 0) return running!;
      throw new Error(`${key} is running already`);
    }
    const started = startApp(name, {
      ...this.envOf(name),
      CL_LOG_LEVEL: this.options.verbose ? 'info' : 'warn',
      ...env,
    });
    this.processes.set(key, started);
    return started;
  }

  /** The stack's environment as `service` runs with it: its own broker user, when it is one of ours. */
  envOf(service: string): Record<string, string> {
    const user = SERVICE_USERS.find((candidate) => candidate === service);
    return user ? { ...this.env, CL_NATS_CREDS: this.installation.layout.credsOf(user) } : this.env;
  }

  /** Stops a service's process (SIGKILL for a crash). */
  async stopService(name: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.processes.get(name)?.stop(signal);
  }

  /** Waits until the API answers, registration and routing take commands, and the projector follows the log. */
  async ready(timeoutMs = 60_000): Promise<void> {
    const admin = this.adminToken('stack-ready');
    const exited = () =>
      [...this.processes].find(
        ([, started]) => started.child.exitCode !== null || started.child.signalCode !== null,
      );
    await waitFor(
      'the services to answer',
      async () => {
        const dead = exited();
        if (dead) throw new Error(`${dead[0]} exited:\n${dead[1].output()}`);
        // A route that does not exist: 404 from the routing service (503 while it is not there).
        const probe = await this.request('GET', 'routes/00000000-0000-4000-8000-000000000000', {
          token: admin,
        });
        if (probe.status !== 404) return undefined;
        // The certificates service answers the public CA (503 while it is not there).
        if (this.options.certificates && (await fetch(`${this.baseUrl}/api/v1/ca.pem`)).status !== 200)
          return undefined;
        // An app that does not exist: 404 from the deployments service (503 while it is not there).
        if (
          this.options.deployments &&
          (await this.request('GET', 'apps/no-such-app', { token: admin })).status !== 404
        )
          return undefined;
        return (await this.request('POST', 'enrollment-tokens', { token: admin, body: {} })).status === 201;
      },
      { timeoutMs, intervalMs: 200 },
    ).catch((error: unknown) => {
      const dead = exited();
      throw dead ? new Error(`${dead[0]} exited:\n${dead[1].output()}`) : error;
    });
    await waitFor(
      'the projector to follow the log',
      async () => {
        const end = await this.lastEventSequence();
        const [row]: { position: string | null }[] = await this.db.dataSource.query(
          'SELECT min(last_sequence) AS position FROM projection_checkpoints',
        );
        return Number(row?.position ?? 0) >= end;
      },
      { timeoutMs, intervalMs: 100 },
    );
  }

  async startRegistration(): Promise<void> {
    const config = registrationConfigSchema.parse(this.envOf('registration'));
    this.registration = await NestFactory.createMicroservice<MicroserviceOptions>(
      RegistrationModule.forRoot(config, this.logger),
      { ...commandServerOptions(config, 'registration'), logger: false },
    );
    await this.registration.listen();
  }

  async startRouting(): Promise<void> {
    this.routing = await createRoutingApp(routingConfigSchema.parse(this.envOf('routing')), this.logger, {
      nestLogs: false,
    });
  }

  async startCertificates(): Promise<void> {
    this.certificates = await createCertificatesApp(
      certificatesConfigSchema.parse(this.envOf('certificates')),
      loadPkiConfig(this.env),
      this.logger,
      { nestLogs: false },
    );
  }

  async startDeployments(): Promise<void> {
    this.deployments = await createDeploymentsApp(
      deploymentsConfigSchema.parse(this.envOf('deployments')),
      this.logger,
      { nestLogs: false },
    );
  }

  async stopDeployments(): Promise<void> {
    await this.deployments?.close();
    this.deployments = undefined;
  }

  async stopCertificates(): Promise<void> {
    await this.certificates?.close();
    this.certificates = undefined;
  }

  async stopRouting(): Promise<void> {
    await this.routing?.close();
    this.routing = undefined;
  }

  async stopRegistration(): Promise<void> {
    await this.registration?.close();
    this.registration = undefined;
  }

  async stop(): Promise<void> {
    const services: readonly string[] = STACK_SERVICES;
    const steps: (() => Promise<unknown> | undefined)[] = [
      // Processes started beside the services (proxy-sync, agents) first, then the services in reverse.
      ...[...this.processes.keys()]
        .filter((name) => !services.includes(name))
        .map((name) => () => this.processes.get(name)?.stop()),
      ...[...services].reverse().map((name) => () => this.processes.get(name)?.stop()),
      () => this.api?.close(),
      () => this.deployments?.close(),
      () => this.certificates?.close(),
      () => this.routing?.close(),
      () => this.registration?.close(),
      () => this.projector?.close(),
      () => (this.service && !this.service.isClosed() ? this.service.close() : undefined),
      () => this.nats?.destroy(),
      () => this.db?.drop(),
      () => this.installation?.remove(),
    ];
    for (const step of steps) await Promise.resolve(step()).catch(() => undefined);
  }

  /** Sends a command to a service as the API does (NATS request/reply with the service credentials). */
  async command<R>(
    subject: string,
    payload: unknown,
    actor: Actor = { kind: 'admin', id: 'test' },
    commandId?: string,
  ): Promise<R> {
    const client = ClientProxyFactory.create({
      transport: Transport.NATS,
      options: {
        servers: [this.nats.url],
        authenticator: natsAuthenticator({
          CL_NATS_URL: this.nats.url,
          CL_NATS_CREDS: this.installation.layout.credsOf('api'),
        }),
      },
    });
    try {
      return await new CommandBus(client).execute<R>(subject, payload, {
        actor,
        ...(commandId ? { commandId } : {}),
      });
    } finally {
      await client.close();
    }
  }

  signer(): TokenSigner {
    return new TokenSigner(readFileSync(this.installation.layout.jwtPrivateKey, 'utf8'));
  }

  adminToken(name = 'test-admin', ttlSeconds = 600): string {
    return this.signer().adminToken(name, ttlSeconds).token;
  }

  /**
   * One API request. `from` is the local address it leaves from: the API takes it as the agent's
   * address at enrollment (the machine's loopback /8 stands in for the VPSs' addresses).
   */
  async request(
    method: string,
    path: string,
    options: {
      body?: unknown;
      rawBody?: string;
      token?: string;
      headers?: Record<string, string>;
      from?: string;
    } = {},
  ): Promise<{ status: number; body: Record<string, unknown>; headers: IncomingHttpHeaders }> {
    const headers: Record<string, string> = { ...options.headers };
    if ((options.body !== undefined || options.rawBody !== undefined) && !headers['content-type'])
      headers['content-type'] = 'application/json';
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    const url = new URL(`${this.baseUrl}/api/v1/${path}`);
    const reply = await requestReply(
      {
        method,
        host: url.hostname,
        port: url.port,
        path: `${url.pathname}${url.search}`,
        headers,
        body: options.rawBody ?? (options.body === undefined ? undefined : JSON.stringify(options.body)),
        ...(options.from ? { localAddress: options.from } : {}),
      },
      // A request that hangs fails the test that made it, with its name, not the whole file's timeout.
      30_000,
    );
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(reply.body) as Record<string, unknown>;
    } catch {
      body = { raw: reply.body };
    }
    return { status: reply.status, body, headers: reply.headers };
  }

  /**
   * An address of this machine no other agent of the stack has: 127.0.1.2, 127.0.1.3, … (the stack
   * allows 127.0.0.2-127.255.255.254 as agents' addresses).
   */
  nextAgentAddress(): string {
    const index = this.addressesHandedOut++;
    const host = 2 + (index % 253);
    // From 127.0.1.2 on: tests name addresses of 127.0.0.0/24 themselves.
    const subnet = 1 + Math.floor(index / 253);
    return `127.${Math.floor(subnet / 256) % 256}.${subnet % 256}.${host}`;
  }

  async enrollmentToken(
    admin = this.adminToken(),
    ttlSeconds?: number,
    approvedAddresses?: string[],
  ): Promise<string> {
    const response = await this.request('POST', 'enrollment-tokens', {
      token: admin,
      body: {
        ...(ttlSeconds === undefined ? {} : { ttlSeconds }),
        ...(approvedAddresses ? { approvedAddresses } : {}),
      },
    });
    if (response.status !== 201)
      throw new Error(`token: ${response.status} ${JSON.stringify(response.body)}`);
    return response.body.token as string;
  }

  /**
   * Enrolls an agent through the API with a fresh key pair; returns the answer, the agent's seed and its
   * address. It enrolls from its address when that is one of this machine's (a new one unless given);
   * another address (the documentation ranges tests use as public ones) is approved with the token, as
   * an admin approves an agent behind NAT — which also lets two agents of a test share one.
   */
  async enroll(
    agentId: string,
    labels: Record<string, string> = {},
    publicAddress = this.nextAgentAddress(),
  ) {
    const keys = agentKeys();
    const local = publicAddress.startsWith('127.');
    const response = await this.request('POST', 'agents/enroll', {
      from: local ? publicAddress : this.nextAgentAddress(),
      body: {
        token: await this.enrollmentToken(undefined, undefined, local ? undefined : [publicAddress]),
        agentId,
        publicAddress,
        natsPublicKey: keys.publicKey,
        labels,
      },
    });
    if (response.status !== 201)
      throw new Error(`enroll: ${response.status} ${JSON.stringify(response.body)}`);
    return {
      keys,
      agentId: response.body.agentId as string,
      accessToken: response.body.accessToken as string,
      refreshToken: response.body.refreshToken as string,
      natsJwt: (response.body.nats as { jwt: string }).jwt,
      address: publicAddress,
      body: response.body,
    };
  }

  /** The agent's own NATS connection (its JWT and seed, its inbox prefix), as the agent program opens it. */
  connectAsAgent(agent: EnrolledAgent): Promise<NatsConnection> {
    return this.nats.connectWithJwt(agent.natsJwt, agent.keys.seed, {
      inboxPrefix: agentSubjects.inboxPrefix(agent.agentId),
    });
  }

  /** The event log's last sequence: unchanged after a refused request. */
  async lastEventSequence(): Promise<number> {
    const jsm = await jetstreamManager(this.service);
    return (await jsm.streams.info(EVENTS_STREAM)).state.last_seq;
  }

  async agentRow(agentId: string): Promise<Record<string, unknown> | undefined> {
    const rows: Record<string, unknown>[] = await this.db.dataSource.query(
      'SELECT agent_id, status, public_address, labels, last_seen_at FROM agents WHERE agent_id = $1',
      [agentId],
    );
    return rows[0];
  }

  waitForAgentStatus(agentId: string, status: string, timeoutMs = 20_000) {
    return waitFor(
      `agent ${agentId} to be ${status}`,
      async () => ((await this.agentRow(agentId))?.status === status ? true : undefined),
      { timeoutMs, intervalMs: 100 },
    );
  }
}
