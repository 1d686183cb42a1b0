/**
 * A test double of HAProxy's Data Plane API v3 for the subset in libs/dataplane/openapi.yaml, driving a
 * real HAProxy (master-worker): configuration through haproxy.cfg with `haproxy -c` before every write,
 * reloads through the master CLI, runtime changes through the stats socket. See docs/dataplane.md.
 */
import { exec } from 'node:child_process';
import { X509Certificate, createPrivateKey, timingSafeEqual } from 'node:crypto';
import { unwatchFile, watchFile } from 'node:fs';
import { access, copyFile, mkdir, readFile, readdir, rm, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, freemem, hostname, release, totalmem, type, uptime } from 'node:os';
import { basename, dirname, join } from 'node:path';
import busboy from 'busboy';
import { hasControlCharacter } from '#contracts';
import { createLogger, type Logger } from '#platform';
import { findSection, parseConfig, tokenize, unquote, type CfgDocument } from './cfg/document.js';
import { serverParamsWords, type ChildKind, type Json } from './cfg/objects.js';
import type { EmulatorConfig } from './config.js';
import { HaproxyControl, RuntimeError } from './haproxy.js';
import { OpenApiDocument, type MatchedOperation } from './openapi.js';
import { ReloadAgent, ReloadFailedError } from './reloads.js';
import * as resources from './resources.js';
import { ApiError, ConfigStore, asApiError, atomicWrite } from './store.js';

export const EMULATOR_VERSION = 'v3.4.2 cloudlunacy-emulator';
const BUILD_DATE = '2026-11-22T00:00:00.000Z';

interface Context {
  matched: MatchedOperation;
  path: Record<string, string>;
  query: Record<string, unknown>;
  rawQuery: URLSearchParams;
  body: unknown;
  rawBody: Buffer;
  headers: IncomingMessage['headers'];
}

interface Reply {
  status: number;
  body?: unknown;
  raw?: { data: string | Buffer; contentType: string };
  headers?: Record<string, string>;
}

type Handler = (context: Context) => Promise<Reply>;

/** Map keys and values travel as CLI words: no whitespace, no control characters. */
function assertMapWord(value: unknown, field: string): string {
  if (typeof value !== 'string' || value === '' || /\s/.test(value) || hasControlCharacter(value)) {
    throw new ApiError(400, `${field} must be a non-empty string without whitespace`);
  }
  return value;
}

function errorBody(status: number, message: string): Json {
  return { code: status, message };
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

export class DataplaneEmulator {
  readonly haproxy: HaproxyControl;
  readonly store: ConfigStore;
  readonly reloads: ReloadAgent;
  private readonly api = new OpenApiDocument();
  private readonly handlers = new Map<string, Handler>();
  private server: Server | undefined;
  private readonly startedAt = Date.now();
  private users: { name: string; password: string }[];
  private watching = false;

  private constructor(
    readonly config: EmulatorConfig,
    statsSocket: string,
    private readonly logger: Logger,
  ) {
    this.haproxy = new HaproxyControl(config.haproxyBin, config.masterSocket, statsSocket);
    this.store = new ConfigStore(
      config.configFile,
      config.transactionDir,
      config.maxOpenTransactions,
      this.haproxy,
    );
    this.reloads = new ReloadAgent(this.haproxy, config.configFile, config.reloadDelayMs, logger);
    this.users = config.users;
    this.register();
  }

  /** Reads the configuration, then listens on host:port (port 0 picks a free one). */
  static async start(
    config: EmulatorConfig,
    logger = createLogger('dataplane-emulator'),
  ): Promise<DataplaneEmulator> {
    const document = parseConfig(await readFile(config.configFile, 'utf8'));
    const statsSocket = config.statsSocket ?? statsSocketOf(document);
    if (!statsSocket) throw new Error(`no "stats socket" in the global section of ${config.configFile}`);
    const emulator = new DataplaneEmulator(config, statsSocket, logger);
    await emulator.store.init();
    if (emulator.users.length === 0) emulator.users = usersOf(document, config.userlist);
    if (!(await exists(emulator.reloads.lkgFile)))
      await copyFile(config.configFile, emulator.reloads.lkgFile);
    const server = createServer((request, response) => void emulator.handle(request, response));
    server.keepAliveTimeout = 5_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, () => resolve());
    });
    emulator.server = server;
    if (!config.disableInotify) emulator.watchConfigFile();
    logger.info('data plane API emulator listening', { url: emulator.url, config: config.configFile });
    return emulator;
  }

  get port(): number {
    return (this.server?.address() as AddressInfo).port;
  }

  /** Base URL of the API (`http://host:port/v3`). */
  get url(): string {
    const host = this.config.host.includes(':') ? `[${this.config.host}]` : this.config.host;
    return `http://${host}:${this.port}/v3`;
  }

  /** Hand edits of haproxy.cfg are adopted as dataplaneapi's inotify watcher does (polled here). */
  private watchConfigFile(): void {
    this.watching = true;
    watchFile(this.config.configFile, { interval: 100 }, () => {
      void (async () => {
        const lkg = await readFile(this.reloads.lkgFile, 'utf8').catch(() => undefined);
        const version = await this.store.adoptExternalEdit(lkg);
        if (version !== undefined) {
          this.logger.warn('haproxy.cfg was changed outside the API; re-read it', { version });
        }
      })().catch((error: unknown) =>
        this.logger.error('reading a hand-edited haproxy.cfg failed', { error }),
      );
    });
  }

  async stop(): Promise<void> {
    if (this.watching) unwatchFile(this.config.configFile);
    this.watching = false;
    await this.reloads.stop();
    const server = this.server;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  // ------------------------------------------------------------------------------ HTTP plumbing

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://emulator');
    const transactionId = url.searchParams.get('transaction_id');
    let reply: Reply;
    try {
      const rawBody = await readBody(request);
      reply = await this.dispatch(request, url, rawBody);
    } catch (error) {
      const api = asApiError(error);
      if (api) {
        reply = { status: api.status, body: errorBody(api.status, api.message) };
      } else if (error instanceof RuntimeError) {
        reply = { status: 500, body: errorBody(500, error.message) };
      } else {
        this.logger.error('request failed', { path: url.pathname, error });
        reply = { status: 500, body: errorBody(500, error instanceof Error ? error.message : String(error)) };
      }
    }
    const headers: Record<string, string> = {
      'Configuration-Version': String(this.store.versionFor(transactionId)),
      ...reply.headers,
    };
    if (reply.raw) {
      headers['Content-Type'] = reply.raw.contentType;
      response.writeHead(reply.status, headers).end(reply.raw.data);
    } else if (reply.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      response.writeHead(reply.status, headers).end(JSON.stringify(reply.body) + '\n');
    } else {
      response.writeHead(reply.status, headers).end();
    }
  }

  private authorized(header: string | undefined): boolean {
    const match = /^Basic\s+(.+)$/i.exec(header ?? '');
    if (!match) return false;
    const decoded = Buffer.from(match[1], 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return false;
    const name = decoded.slice(0, colon);
    const password = Buffer.from(decoded.slice(colon + 1));
    return this.users.some((user) => {
      const expected = Buffer.from(user.password);
      return user.name === name && expected.length === password.length && timingSafeEqual(expected, password);
    });
  }

  private async dispatch(request: IncomingMessage, url: URL, rawBody: Buffer): Promise<Reply> {
    if (!this.authorized(request.headers.authorization)) {
      return {
        status: 401,
        body: errorBody(401, 'unauthorized'),
        headers: { 'WWW-Authenticate': 'Basic realm="API"' },
      };
    }
    const method = (request.method ?? 'GET').toUpperCase();
    if (!url.pathname.startsWith('/v3/')) throw new ApiError(404, `path ${url.pathname} was not found`);
    const path = url.pathname.slice(3);
    const matched = this.api.match(method, path);
    if (!matched) {
      if (this.api.pathExists(path))
        throw new ApiError(405, `method ${method} is not allowed for path ${url.pathname}`);
      throw new ApiError(404, `path ${url.pathname} was not found`);
    }
    const contentType = request.headers['content-type'] ?? '';
    let body: unknown;
    const hasBody = rawBody.length > 0;
    if (hasBody && contentType.startsWith('application/json')) {
      try {
        body = JSON.parse(rawBody.toString('utf8'));
      } catch (error) {
        throw new ApiError(400, `invalid JSON body: ${(error as Error).message}`);
      }
    } else if (hasBody && contentType.startsWith('text/plain')) {
      body = rawBody.toString('utf8');
    }
    const problems = this.api.checkRequest({
      method,
      path,
      query: url.searchParams,
      contentType,
      body,
      hasBody,
    });
    const parameterProblem = problems.find((problem) => problem.kind === 'params');
    if (parameterProblem) throw new ApiError(400, parameterProblem.message);
    const bodyProblem = problems.find((problem) => problem.kind === 'body');
    if (bodyProblem) throw new ApiError(422, bodyProblem.message);
    const handler = this.handlers.get(matched.operation.operationId as string);
    if (!handler) throw new ApiError(501, `${matched.operation.operationId as string} is not implemented`);
    return handler({
      matched,
      path: matched.pathParams,
      query: this.api.queryValues(matched, url.searchParams),
      rawQuery: url.searchParams,
      body,
      rawBody,
      headers: request.headers,
    });
  }

  // ------------------------------------------------------------------------------ configuration writes

  /** Reads the document the request names (a transaction's or the master). */
  private read<T>(context: Context, reader: (document: CfgDocument) => T): Reply {
    const document = this.store.documentFor(context.query.transaction_id as string | undefined);
    return { status: 200, body: reader(document) };
  }

  /**
   * A configuration change: inside a transaction (202), or as an implicit transaction on `version`
   * (202 + Reload-ID, or `forcedStatus` after a synchronous reload with force_reload). `runtime` may
   * apply the change to the running HAProxy instead of a reload (dataplaneapi's server shortcuts).
   */
  private async write(
    context: Context,
    forcedStatus: number,
    edit: (document: CfgDocument) => unknown,
    runtime?: {
      before?: (document: CfgDocument) => unknown;
      apply: (result: unknown, before: unknown) => Promise<Reply | undefined>;
    },
  ): Promise<Reply> {
    const transactionId = context.query.transaction_id as string | undefined;
    const version = context.query.version as number | undefined;
    const force = context.query.force_reload === true;
    if (transactionId && force) {
      throw new ApiError(400, 'Both force_reload and transaction specified, specify only one');
    }
    if (transactionId && version !== undefined) {
      throw new ApiError(400, 'both version and transaction specified, specify only one');
    }
    if (!transactionId && version === undefined) {
      throw new ApiError(400, 'version or transaction not specified, specify only one');
    }
    if (transactionId) {
      const result = await this.store.edit(transactionId, edit);
      return { status: 202, body: result ?? undefined };
    }
    const before = runtime?.before?.(this.store.documentFor(undefined));
    const { result } = await this.store.implicit(version as number, edit);
    if (force) {
      await this.forceReload();
      return { status: forcedStatus, body: forcedStatus === 204 ? undefined : (result ?? undefined) };
    }
    if (runtime) {
      const shortcut = await runtime.apply(result, before);
      if (shortcut) return shortcut;
    }
    return { status: 202, body: result ?? undefined, headers: { 'Reload-ID': this.reloads.reload() } };
  }

  private async forceReload(): Promise<void> {
    try {
      await this.reloads.forceReload();
    } catch (error) {
      if (error instanceof ReloadFailedError) throw new ApiError(400, error.message);
      throw error;
    }
  }

  // ------------------------------------------------------------------------------ handlers

  /** The operationIds this emulator answers (every operation of the document, checked by a test). */
  static implementedOperations(): string[] {
    const probe = Object.create(DataplaneEmulator.prototype) as DataplaneEmulator;
    (probe as unknown as { handlers: Map<string, Handler> }).handlers = new Map();
    probe.register();
    return [...(probe as unknown as { handlers: Map<string, Handler> }).handlers.keys()];
  }

  private on(operationId: string, handler: Handler): void {
    this.handlers.set(operationId, handler);
  }

  private register(): void {
    this.registerDiscovery();
    this.registerTransactions();
    this.registerSections();
    this.registerNamedChildren();
    this.registerIndexedChildren();
    this.registerRuntimeServers();
    this.registerRuntimeMaps();
    this.registerStorage();
  }

  private registerDiscovery(): void {
    this.on('getHealth', async () => {
      if (!this.config.statusCmd) return { status: 200, body: { haproxy: 'unknown' } };
      const up = await new Promise<boolean>((resolve) =>
        exec(this.config.statusCmd as string, (error) => resolve(!error)),
      );
      return { status: 200, body: { haproxy: up ? 'up' : 'down' } };
    });
    this.on('getInfo', async () => ({
      status: 200,
      body: {
        api: { version: EMULATOR_VERSION, build_date: BUILD_DATE },
        system: {
          hostname: hostname(),
          os_string: `${type()} ${release()}`,
          time: Math.floor(Date.now() / 1000),
          uptime: Math.floor(uptime()),
          cpu_info: { model: cpus()[0]?.model ?? 'unknown', num_cpus: cpus().length },
          mem_info: {
            dataplaneapi_memory: process.memoryUsage().rss,
            free_memory: freemem(),
            total_memory: totalmem(),
          },
        },
      },
    }));
    this.on('getConfigurationVersion', async (context) => ({
      status: 200,
      body: this.store.versionFor(context.query.transaction_id as string | undefined),
    }));
    this.on('getHaproxyProcessInfo', async () => {
      const answer = await this.haproxy.stats('show info');
      const info: Record<string, string> = {};
      for (const line of answer.split('\n')) {
        const colon = line.indexOf(':');
        if (colon > 0) info[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
      }
      const num = (key: string) =>
        info[key] !== undefined && /^\d+$/.test(info[key]) ? Number(info[key]) : null;
      return {
        status: 200,
        body: {
          runtimeAPI: this.haproxy.statsSocket,
          info: {
            pid: num('Pid'),
            version: info.Version ?? '',
            release_date: (info.Release_date ?? '').replace(/\//g, '-'),
            uptime: num('Uptime_sec'),
            nbthread: num('Nbthread'),
            processes: num('Nbproc'),
            process_num: num('Process_num'),
            node: info.node ?? '',
            jobs: num('Jobs'),
            curr_conns: num('CurrConns'),
            cum_req: num('CumReq'),
            stopping: info.Stopping === undefined ? null : info.Stopping === '1',
          },
        },
      };
    });
    this.on('getReloads', async () => ({ status: 200, body: this.reloads.list() }));
    this.on('getReload', async (context) => {
      const found = this.reloads.get(context.path.id);
      if (!found) throw new ApiError(404, `reload ${context.path.id} does not exist`);
      return { status: 200, body: found };
    });
  }

  private registerTransactions(): void {
    const view = (transaction: { id: string; version: number; status: string }) => ({
      _version: transaction.version,
      id: transaction.id,
      status: transaction.status,
    });
    this.on('getTransactions', async (context) => ({
      status: 200,
      body: this.store.list(context.query.status as string | undefined).map(view),
    }));
    this.on('startTransaction', async (context) => ({
      status: 201,
      body: view(await this.store.start(context.query.version as number)),
    }));
    this.on('getTransaction', async (context) => ({
      status: 200,
      body: view(this.store.get(context.path.id)),
    }));
    this.on('deleteTransaction', async (context) => {
      await this.store.delete(context.path.id);
      return { status: 204 };
    });
    this.on('commitTransaction', async (context) => {
      const { transaction } = await this.store.commit(context.path.id);
      const body = view(transaction);
      if (context.query.force_reload === true) {
        await this.forceReload();
        return { status: 200, body };
      }
      return { status: 202, body, headers: { 'Reload-ID': this.reloads.reload() } };
    });
  }

  private registerSections(): void {
    for (const [type, plural, title] of [
      ['frontend', 'Frontends', 'Frontend'],
      ['backend', 'Backends', 'Backend'],
    ] as const) {
      const full = (context: Context) => context.query.full_section === true;
      this.on(`get${plural}`, async (context) =>
        this.read(context, (document) => resources.listSections(document, type, full(context))),
      );
      this.on(`get${title}`, async (context) =>
        this.read(context, (document) =>
          resources.sectionObject(
            resources.parentOrFail(document, type, context.path.name),
            type,
            full(context),
          ),
        ),
      );
      this.on(`create${title}`, async (context) =>
        this.write(context, 201, (document) =>
          resources.createSection(document, type, context.body as Json, full(context)),
        ),
      );
      this.on(`replace${title}`, async (context) =>
        this.write(context, 200, (document) =>
          resources.replaceSection(document, type, context.path.name, context.body as Json, full(context)),
        ),
      );
      this.on(`delete${title}`, async (context) =>
        this.write(context, 204, (document) => resources.deleteSection(document, type, context.path.name)),
      );
    }
  }

  private registerNamedChildren(): void {
    this.on('getAllBindFrontend', async (context) =>
      this.read(context, (document) =>
        resources.listNamed(document, 'frontend', context.path.parent_name, 'bind'),
      ),
    );
    this.on('getBindFrontend', async (context) =>
      this.read(context, (document) =>
        resources.getNamed(document, 'frontend', context.path.parent_name, 'bind', context.path.name),
      ),
    );
    this.on('createBindFrontend', async (context) =>
      this.write(context, 201, (document) =>
        resources.createNamed(document, 'frontend', context.path.parent_name, 'bind', context.body as Json),
      ),
    );
    this.on('replaceBindFrontend', async (context) =>
      this.write(context, 200, (document) =>
        resources.replaceNamed(
          document,
          'frontend',
          context.path.parent_name,
          'bind',
          context.path.name,
          context.body as Json,
        ),
      ),
    );
    this.on('deleteBindFrontend', async (context) =>
      this.write(context, 204, (document) =>
        resources.deleteNamed(document, 'frontend', context.path.parent_name, 'bind', context.path.name),
      ),
    );

    this.on('getAllServerBackend', async (context) =>
      this.read(context, (document) =>
        resources.listNamed(document, 'backend', context.path.parent_name, 'server'),
      ),
    );
    this.on('getServerBackend', async (context) =>
      this.read(context, (document) =>
        resources.getNamed(document, 'backend', context.path.parent_name, 'server', context.path.name),
      ),
    );
    this.on('createServerBackend', async (context) => {
      const backend = context.path.parent_name;
      const server = context.body as Json;
      return this.write(
        context,
        201,
        (document) => resources.createNamed(document, 'backend', backend, 'server', server),
        {
          // dataplaneapi: into a backend without default-server, `add server` at runtime and no reload.
          before: (document) => resources.hasDefaultServer(document, backend),
          apply: async (_result, hadDefaultServer) => {
            if (hadDefaultServer) return undefined;
            try {
              await this.haproxy.stats(
                `add server ${backend}/${server.name as string} ${runtimeServerArguments(server)}`,
                (answer) => !answer.includes('New server registered'),
              );
              return { status: 201, body: server };
            } catch (error) {
              this.logger.warn('runtime add server failed; reloading instead', { backend, error });
              return undefined;
            }
          },
        },
      );
    });
    this.on('replaceServerBackend', async (context) => {
      const backend = context.path.parent_name;
      const name = context.path.name;
      const next = { ...(context.body as Json), name };
      return this.write(
        context,
        200,
        (document) => resources.replaceNamed(document, 'backend', backend, 'server', name, next),
        {
          before: (document) => resources.getNamed(document, 'backend', backend, 'server', name),
          apply: async (_result, onDisk) => this.serverThroughRuntime(backend, name, next, onDisk as Json),
        },
      );
    });
    this.on('deleteServerBackend', async (context) =>
      this.write(context, 204, (document) =>
        resources.deleteNamed(document, 'backend', context.path.parent_name, 'server', context.path.name),
      ),
    );
  }

  /**
   * dataplaneapi's PUT shortcut: when only weight, address, port or maintenance changed, `set server`
   * and answer 200 without a reload; undefined (→ reload) when other fields changed or a command failed.
   */
  private async serverThroughRuntime(
    backend: string,
    name: string,
    next: Json,
    onDisk: Json,
  ): Promise<Reply | undefined> {
    const keys = new Set([...Object.keys(next), ...Object.keys(onDisk)]);
    const changed = [...keys].filter((key) => JSON.stringify(next[key]) !== JSON.stringify(onDisk[key]));
    if (changed.length === 0) return { status: 200, body: next };
    const supported = new Set(['weight', 'address', 'port', 'maintenance']);
    if (!changed.every((key) => supported.has(key))) return undefined;
    const target = `${backend}/${name}`;
    const ok = (answer: string) => answer.trim() === '' || /changed from|no need to change/i.test(answer);
    try {
      if (changed.includes('weight') && typeof next.weight === 'number') {
        await this.haproxy.stats(
          `set server ${target} weight ${next.weight}`,
          (answer) => answer.trim() !== '',
        );
      }
      if (changed.includes('address') || changed.includes('port')) {
        const port = typeof next.port === 'number' ? ` port ${next.port}` : '';
        await this.haproxy.stats(
          `set server ${target} addr ${next.address as string}${port}`,
          (answer) => !ok(answer),
        );
      }
      if (changed.includes('maintenance')) {
        const state = next.maintenance === 'enabled' ? 'maint' : 'ready';
        await this.haproxy.stats(`set server ${target} state ${state}`, (answer) => answer.trim() !== '');
      }
      return { status: 200, body: next };
    } catch (error) {
      this.logger.warn('runtime set server failed; reloading instead', { target, error });
      return undefined;
    }
  }

  private registerIndexedChildren(): void {
    const families: { kind: ChildKind; title: string; parents: resources.ParentType[]; plain?: true }[] = [
      { kind: 'acl', title: 'Acl', parents: ['frontend', 'backend'] },
      { kind: 'backend_switching_rule', title: 'BackendSwitchingRule', parents: ['frontend'], plain: true },
      { kind: 'tcp_request_rule', title: 'TCPRequestRule', parents: ['frontend', 'backend'] },
      { kind: 'http_request_rule', title: 'HTTPRequestRule', parents: ['frontend', 'backend'] },
    ];
    for (const family of families) {
      for (const parent of family.parents) {
        const suffix = family.plain ? '' : parent === 'frontend' ? 'Frontend' : 'Backend';
        const all = family.plain ? `${family.title}s` : `All${family.title}${suffix}`;
        const kind = family.kind;
        const index = (context: Context) => Number(context.path.index);
        this.on(`get${all}`, async (context) =>
          this.read(context, (document) => {
            const aclName = context.query.acl_name as string | undefined;
            return resources.listIndexed(
              document,
              parent,
              context.path.parent_name,
              kind,
              aclName ? (object) => object.acl_name === aclName : undefined,
            );
          }),
        );
        this.on(`replace${all}`, async (context) =>
          this.write(context, 200, (document) =>
            resources.replaceAllIndexed(
              document,
              parent,
              context.path.parent_name,
              kind,
              context.body as Json[],
            ),
          ),
        );
        this.on(`get${family.title}${suffix}`, async (context) =>
          this.read(context, (document) =>
            resources.getIndexed(document, parent, context.path.parent_name, kind, index(context)),
          ),
        );
        this.on(`create${family.title}${suffix}`, async (context) =>
          this.write(context, 201, (document) =>
            resources.createIndexed(
              document,
              parent,
              context.path.parent_name,
              kind,
              index(context),
              context.body as Json,
            ),
          ),
        );
        this.on(`replace${family.title}${suffix}`, async (context) =>
          this.write(context, 200, (document) =>
            resources.replaceIndexed(
              document,
              parent,
              context.path.parent_name,
              kind,
              index(context),
              context.body as Json,
            ),
          ),
        );
        this.on(`delete${family.title}${suffix}`, async (context) =>
          this.write(context, 204, (document) =>
            resources.deleteIndexed(document, parent, context.path.parent_name, kind, index(context)),
          ),
        );
      }
    }
  }

  // ------------------------------------------------------------------------------ runtime: servers

  private async serverStates(backend: string): Promise<Json[]> {
    const answer = await this.haproxy.stats(`show servers state ${backend}`);
    if (/no such backend|can't find backend/i.test(answer)) {
      throw new ApiError(404, `No such backend: ${backend}`);
    }
    const states: Json[] = [];
    for (const line of answer.split('\n')) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 20 || line.startsWith('#')) continue;
      const [beId, beName, srvId, srvName, address, opState, adminState, uweight, iweight] = fields;
      const admin = Number(adminState);
      states.push({
        name: srvName,
        id: srvId,
        address,
        port: Number(fields[18]) || null,
        admin_state: admin & 0x67 ? 'maint' : admin & 0x18 ? 'drain' : 'ready',
        operational_state: opState === '0' ? 'down' : opState === '3' ? 'stopping' : 'up',
        weight: Number(uweight),
        uweight: Number(uweight),
        iweight: Number(iweight),
        backend_id: Number(beId),
        backend_name: beName,
      });
    }
    return states;
  }

  private async serverState(backend: string, name: string): Promise<Json> {
    const found = (await this.serverStates(backend)).find((state) => state.name === name);
    if (!found) throw new ApiError(404, `Runtime server ${name} not found in backend ${backend}`);
    return found;
  }

  private registerRuntimeServers(): void {
    this.on('getAllRuntimeServer', async (context) => ({
      status: 200,
      body: await this.serverStates(context.path.parent_name),
    }));
    this.on('getRuntimeServer', async (context) => ({
      status: 200,
      body: await this.serverState(context.path.parent_name, context.path.name),
    }));
    this.on('addRuntimeServer', async (context) => {
      const server = context.body as Json;
      const backend = context.path.parent_name;
      const answer = await this.haproxy.stats(
        `add server ${backend}/${server.name as string} ${runtimeServerArguments(server)}`,
      );
      if (answer.includes('New server registered')) return { status: 201, body: server };
      const message = answer.trim();
      if (/no such backend/i.test(message)) throw new ApiError(404, message);
      if (/already exists/i.test(message)) throw new ApiError(409, message);
      throw new ApiError(400, message);
    });
    this.on('replaceRuntimeServer', async (context) => {
      const backend = context.path.parent_name;
      const name = context.path.name;
      const target = `${backend}/${name}`;
      const wanted = context.body as Json;
      const current = await this.serverState(backend, name);
      const failed = (answer: string) =>
        answer.trim() !== '' && !/changed from|no need to change/i.test(answer);
      if (wanted.operational_state && wanted.operational_state !== current.operational_state) {
        await this.haproxy.stats(`set server ${target} health ${wanted.operational_state as string}`, failed);
      }
      if (wanted.admin_state && wanted.admin_state !== current.admin_state) {
        await this.haproxy.stats(`set server ${target} state ${wanted.admin_state as string}`, failed);
      }
      if (typeof wanted.weight === 'number' && wanted.weight !== current.weight) {
        await this.haproxy.stats(`set server ${target} weight ${wanted.weight}`, failed);
      }
      const address = (wanted.address as string | undefined) ?? (current.address as string);
      const port = (wanted.port as number | undefined) ?? (current.port as number | undefined);
      if (address !== current.address || port !== current.port) {
        await this.haproxy.stats(
          `set server ${target} addr ${address}${port ? ` port ${port}` : ''}`,
          failed,
        );
      }
      return { status: 200, body: await this.serverState(backend, name) };
    });
    this.on('deleteRuntimeServer', async (context) => {
      const backend = context.path.parent_name;
      const name = context.path.name;
      const state = await this.serverState(backend, name);
      const target = `${backend}/${name}`;
      if (state.admin_state !== 'maint') await this.haproxy.stats(`disable server ${target}`);
      const answer = await this.haproxy.stats(`del server ${target}`);
      if (!/server deleted/i.test(answer)) throw new ApiError(400, answer.trim());
      return { status: 204 };
    });
  }

  // ------------------------------------------------------------------------------ runtime: maps

  /** `<maps_dir>/<name>.map`, or `#<id>` as given. */
  private mapFile(name: string): string {
    if (name.startsWith('#')) return name;
    if (name.includes('/')) throw new ApiError(400, `invalid map name ${name}`);
    return join(this.config.mapsDir, name.endsWith('.map') ? name : `${name}.map`);
  }

  private async loadedMaps(): Promise<{ id: string; file: string; description: string }[]> {
    const answer = await this.haproxy.stats('show map');
    const maps: { id: string; file: string; description: string }[] = [];
    for (const line of answer.split('\n')) {
      const match = /^(\d+)\s+\(([^)]*)\)\s*(.*)$/.exec(line.trim());
      if (match) maps.push({ id: match[1], file: match[2], description: match[3] });
    }
    return maps;
  }

  private async loadedMap(name: string): Promise<{ id: string; file: string; description: string }> {
    const reference = this.mapFile(name);
    const found = (await this.loadedMaps()).find((map) =>
      reference.startsWith('#') ? `#${map.id}` === reference : map.file === reference,
    );
    if (!found) throw new ApiError(404, `map ${name} is not loaded by HAProxy`);
    return found;
  }

  private mapView(map: { id: string; file: string; description: string }): Json {
    const managed = dirname(map.file) === this.config.mapsDir;
    return {
      id: map.id,
      file: map.file,
      description: map.description,
      ...(managed ? { storage_name: basename(map.file) } : {}),
    };
  }

  private async mapEntries(file: string): Promise<Json[]> {
    const answer = await this.haproxy.stats(`show map ${file}`);
    if (/unknown map identifier/i.test(answer)) throw new ApiError(404, answer.trim());
    const entries: Json[] = [];
    for (const line of answer.split('\n')) {
      const match = /^(0x[0-9a-f]+)\s+(\S+)\s?(.*)$/i.exec(line.trim());
      if (match) entries.push({ id: match[1], key: match[2], value: match[3] });
    }
    return entries;
  }

  private async mapLookup(file: string, key: string): Promise<Json | undefined> {
    const answer = await this.haproxy.stats(`get map ${file} ${key}`);
    if (/unknown map identifier/i.test(answer)) throw new ApiError(404, answer.trim());
    if (!/found=yes/.test(answer)) return undefined;
    const value = /value="((?:[^"\\]|\\.)*)"/.exec(answer)?.[1] ?? '';
    return { id: key, key, value };
  }

  /** force_sync: writes the map as HAProxy holds it to its file. */
  private async syncMap(file: string): Promise<void> {
    const map = file.startsWith('#') ? await this.loadedMap(file) : { file };
    const entries = await this.mapEntries(map.file);
    const text = entries.map((entry) => `${entry.key as string} ${entry.value as string}\n`).join('');
    await atomicWrite(map.file, text);
  }

  private registerRuntimeMaps(): void {
    this.on('getAllRuntimeMapFiles', async (context) => {
      const all = await this.loadedMaps();
      const include = context.query.include_unmanaged === true;
      return {
        status: 200,
        body: all
          .filter((map) => include || dirname(map.file) === this.config.mapsDir)
          .map((map) => this.mapView(map)),
      };
    });
    this.on('getOneRuntimeMap', async (context) => ({
      status: 200,
      body: this.mapView(await this.loadedMap(context.path.name)),
    }));
    this.on('clearRuntimeMap', async (context) => {
      const map = await this.loadedMap(context.path.name);
      await this.haproxy.stats(`clear map ${map.file}`, (answer) => answer.trim() !== '');
      if (context.query.forceDelete === true) await rm(map.file, { force: true });
      else if (context.query.force_sync === true) await this.syncMap(map.file);
      return { status: 204 };
    });
    this.on('addPayloadRuntimeMap', async (context) => {
      const file = this.mapFile(context.path.name);
      const entries = context.body as Json[];
      const payload = entries
        .map((entry) => `${assertMapWord(entry.key, 'key')} ${assertMapWord(entry.value, 'value')}\n`)
        .join('');
      const isError = (answer: string) => answer.trim() !== '';
      if (Buffer.byteLength(payload) > 8192) {
        // Large payloads replace the map atomically (prepare, fill the new version, commit).
        const prepared = await this.haproxy.stats(`prepare map ${file}`);
        const version = /New version created:\s*(\d+)/.exec(prepared)?.[1];
        if (!version) throw new ApiError(/unknown map/i.test(prepared) ? 404 : 400, prepared.trim());
        // The CLI takes a payload of at most one buffer (tune.bufsize, 16 KiB by default): send it in
        // line-aligned pieces, as client-native does, then commit them all at once.
        for (const piece of payloadPieces(payload, 8192)) {
          await this.haproxy.stats(`add map @${version} ${file} <<\n${piece}`, isError);
        }
        await this.haproxy.stats(`commit map @${version} ${file}`, isError);
      } else if (payload !== '') {
        const answer = await this.haproxy.stats(`add map ${file} <<\n${payload}`);
        if (/unknown map identifier/i.test(answer)) throw new ApiError(404, answer.trim());
        if (isError(answer)) throw new ApiError(400, answer.trim());
      }
      if (context.query.force_sync === true) await this.syncMap(file);
      return { status: 201, body: entries };
    });
    this.on('showRuntimeMap', async (context) => ({
      status: 200,
      body: await this.mapEntries(this.mapFile(context.path.parent_name)),
    }));
    this.on('addMapEntry', async (context) => {
      const file = this.mapFile(context.path.parent_name);
      const entry = context.body as Json;
      const key = assertMapWord(entry.key, 'key');
      const value = assertMapWord(entry.value, 'value');
      if (await this.mapLookup(file, key))
        throw new ApiError(409, `key ${key} already exists in map ${file}`);
      await this.haproxy.stats(`add map ${file} ${key} ${value}`, (answer) => answer.trim() !== '');
      if (context.query.force_sync === true) await this.syncMap(file);
      return { status: 201, body: { key, value } };
    });
    this.on('getRuntimeMapEntry', async (context) => {
      const found = await this.mapLookup(this.mapFile(context.path.parent_name), context.path.id);
      if (!found) throw new ApiError(404, `key ${context.path.id} not found`);
      return { status: 200, body: found };
    });
    this.on('replaceRuntimeMapEntry', async (context) => {
      const file = this.mapFile(context.path.parent_name);
      const key = assertMapWord(context.path.id, 'id');
      const value = assertMapWord((context.body as Json).value, 'value');
      const answer = await this.haproxy.stats(`set map ${file} ${key} ${value}`);
      if (/not found|unknown map/i.test(answer)) throw new ApiError(404, answer.trim());
      if (answer.trim() !== '') throw new ApiError(400, answer.trim());
      const found = await this.mapLookup(file, key);
      if (!found) throw new ApiError(404, `key ${key} not found`);
      if (context.query.force_sync === true) await this.syncMap(file);
      return { status: 200, body: found };
    });
    this.on('deleteRuntimeMapEntry', async (context) => {
      const file = this.mapFile(context.path.parent_name);
      const key = assertMapWord(context.path.id, 'id');
      const answer = await this.haproxy.stats(`del map ${file} ${key}`);
      if (/not found|unknown map/i.test(answer)) throw new ApiError(404, answer.trim());
      if (answer.trim() !== '') throw new ApiError(400, answer.trim());
      if (context.query.force_sync === true) await this.syncMap(file);
      return { status: 204 };
    });
  }

  // ------------------------------------------------------------------------------ storage

  private storageName(name: string): string {
    if (name === '' || name.includes('/') || name.startsWith('.') || hasControlCharacter(name)) {
      throw new ApiError(400, `invalid file name ${name}`);
    }
    return name;
  }

  /** The existing file for a storage name (with or without `.map` for maps); 404 when there is none. */
  private async storedFile(folder: string, name: string, suffix?: string): Promise<string> {
    const candidates = [join(folder, this.storageName(name))];
    if (suffix && !name.endsWith(suffix)) candidates.push(join(folder, `${name}${suffix}`));
    for (const candidate of candidates) {
      if (await exists(candidate)) return candidate;
    }
    throw new ApiError(404, `file ${name} does not exist`);
  }

  /** A change of a file the configuration uses: the reload it needs, as the query asks. */
  private async afterFileChange(context: Context, ok: Reply): Promise<Reply> {
    if (context.query.skip_reload === true) return ok;
    if (context.query.force_reload === true) {
      await this.forceReload();
      return ok;
    }
    return { ...ok, status: 202, headers: { 'Reload-ID': this.reloads.reload() } };
  }

  /** 409 when a non-comment line of haproxy.cfg mentions the file (dataplaneapi's check). */
  private assertUnreferenced(file: string): void {
    const lines = this.store.text().split('\n');
    lines.forEach((line, number) => {
      const trimmed = line.trim();
      if (trimmed.includes(file) && !trimmed.startsWith('#')) {
        throw new ApiError(
          409,
          `rejecting attempt to delete file ${file} referenced in haproxy conf at line ${number - 1}: ${trimmed}`,
        );
      }
    });
  }

  private registerStorage(): void {
    this.on('getAllStorageMapFiles', async () => {
      const names = (await readdir(this.config.mapsDir)).filter((name) => !name.includes('.tmp-')).sort();
      return {
        status: 200,
        body: names.map((name) => ({
          file: join(this.config.mapsDir, name),
          storage_name: name,
          description: 'managed map file',
          id: '',
        })),
      };
    });
    this.on('createStorageMapFile', async (context) => {
      const upload = await fileUpload(context);
      const name = this.storageName(
        upload.filename.endsWith('.map') ? upload.filename : `${upload.filename}.map`,
      );
      const file = join(this.config.mapsDir, name);
      if (await exists(file)) throw new ApiError(409, `file ${name} already exists`);
      await atomicWrite(file, upload.data);
      return {
        status: 201,
        body: {
          file,
          storage_name: name,
          description: 'managed but not loaded map file (no runtime ID)',
          size: upload.data.length,
        },
      };
    });
    this.on('getOneStorageMap', async (context) => {
      const file = await this.storedFile(this.config.mapsDir, context.path.name, '.map');
      return { status: 200, raw: { data: await readFile(file), contentType: 'application/octet-stream' } };
    });
    this.on('replaceStorageMapFile', async (context) => {
      const file = await this.storedFile(this.config.mapsDir, context.path.name, '.map');
      await atomicWrite(file, context.rawBody);
      return this.afterFileChange(context, { status: 204 });
    });
    this.on('deleteStorageMap', async (context) => {
      const file = await this.storedFile(this.config.mapsDir, context.path.name, '.map');
      this.assertUnreferenced(file);
      await rm(file);
      return { status: 204 };
    });

    this.on('createStorageGeneralFile', async (context) => {
      const upload = await fileUpload(context);
      const name = this.storageName(upload.filename);
      await mkdir(this.config.generalStorageDir, { recursive: true });
      const file = join(this.config.generalStorageDir, name);
      if (await exists(file)) throw new ApiError(409, `file ${name} already exists`);
      await atomicWrite(file, upload.data);
      return {
        status: 201,
        body: { file, storage_name: name, description: 'managed general use file', size: upload.data.length },
      };
    });
    this.on('getOneStorageGeneralFile', async (context) => {
      const file = await this.storedFile(this.config.generalStorageDir, context.path.name);
      return { status: 200, raw: { data: await readFile(file), contentType: 'application/octet-stream' } };
    });
    this.on('replaceStorageGeneralFile', async (context) => {
      const file = await this.storedFile(this.config.generalStorageDir, context.path.name);
      const upload = await fileUpload(context);
      await atomicWrite(file, upload.data);
      return this.afterFileChange(context, { status: 204 });
    });

    this.on('getAllStorageSSLCertificates', async () => {
      const names = (await readdir(this.config.sslCertsDir)).filter((name) => !name.includes('.tmp-')).sort();
      return {
        status: 200,
        body: names.map((name) => ({
          file: join(this.config.sslCertsDir, name),
          storage_name: name,
          description: 'managed SSL file',
        })),
      };
    });
    this.on('getOneStorageSSLCertificate', async (context) => {
      const file = await this.storedFile(this.config.sslCertsDir, context.path.name);
      const pem = await readFile(file, 'utf8');
      return {
        status: 200,
        body: { ...certificateInfo(pem), file, storage_name: basename(file), size: (await stat(file)).size },
      };
    });
    this.on('createStorageSSLCertificate', async (context) => {
      const upload = await fileUpload(context);
      const name = this.storageName(upload.filename);
      const file = join(this.config.sslCertsDir, name);
      if (await exists(file)) throw new ApiError(409, `file ${name} already exists`);
      const pem = upload.data.toString('utf8');
      const info = certificateInfo(pem);
      await atomicWrite(file, upload.data, 0o600);
      const body = { ...info, file, storage_name: name, size: upload.data.length };
      if (context.query.skip_reload === true) return { status: 201, body };
      if (context.query.force_reload === true) {
        await this.forceReload();
        return { status: 201, body };
      }
      // Like dataplaneapi: load it into HAProxy's certificate store (new/set/commit ssl cert). That does
      // not attach it to a bind; a bind that loads a directory picks it up at the next reload.
      if (await this.pushCertificate(file, pem, true)) return { status: 201, body };
      return { status: 202, body, headers: { 'Reload-ID': this.reloads.reload() } };
    });
    this.on('replaceStorageSSLCertificate', async (context) => {
      const file = await this.storedFile(this.config.sslCertsDir, context.path.name);
      const pem = context.rawBody.toString('utf8');
      const info = certificateInfo(pem);
      await atomicWrite(file, context.rawBody, 0o600);
      const body = { ...info, file, storage_name: basename(file), size: context.rawBody.length };
      if (context.query.skip_reload === true) return { status: 200, body };
      if (context.query.force_reload === true) {
        await this.forceReload();
        return { status: 200, body };
      }
      if (await this.pushCertificate(file, pem, false)) return { status: 200, body };
      return { status: 202, body, headers: { 'Reload-ID': this.reloads.reload() } };
    });
    this.on('deleteStorageSSLCertificate', async (context) => {
      const file = await this.storedFile(this.config.sslCertsDir, context.path.name);
      this.assertUnreferenced(file);
      await rm(file);
      if (context.query.skip_reload === true) return { status: 204 };
      if (context.query.force_reload === true) {
        await this.forceReload();
        return { status: 204 };
      }
      const answer = await this.haproxy.stats(`del ssl cert ${file}`).catch(() => '');
      if (/deleted/i.test(answer)) return { status: 204 };
      return { status: 202, headers: { 'Reload-ID': this.reloads.reload() } };
    });
  }

  /** new (for a new file) / set / commit ssl cert; false when HAProxy refused any step. */
  private async pushCertificate(file: string, pem: string, isNew: boolean): Promise<boolean> {
    const payload = pem
      .split('\n')
      .filter((line) => line.trim() !== '')
      .join('\n');
    try {
      if (isNew) {
        await this.haproxy.stats(
          `new ssl cert ${file}`,
          (answer) => !/new empty certificate store/i.test(answer),
        );
      }
      await this.haproxy.stats(
        `set ssl cert ${file} <<\n${payload}\n`,
        (answer) => !/transaction (created|updated)/i.test(answer),
      );
      await this.haproxy.stats(`commit ssl cert ${file}`, (answer) => !/success/i.test(answer));
      return true;
    } catch (error) {
      await this.haproxy.stats(`abort ssl cert ${file}`).catch(() => undefined);
      this.logger.warn('runtime certificate update failed; reloading instead', { file, error });
      return false;
    }
  }
}

// ------------------------------------------------------------------------------ helpers

function readBody(request: IncomingMessage, limit = 64 * 1024 * 1024): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new ApiError(413, `request body exceeds the maximum allowed size of ${limit} bytes`));
        request.destroy();
        return;
      }
      chunks.push(chunk);
    });
    request.on('end', () => resolve(Buffer.concat(chunks)));
    request.on('error', reject);
  });
}

/** The multipart field `file_upload`: its file name and content. */
function fileUpload(context: Context): Promise<{ filename: string; data: Buffer }> {
  return new Promise((resolve, reject) => {
    let parser: busboy.Busboy;
    try {
      parser = busboy({ headers: context.headers });
    } catch (error) {
      reject(new ApiError(400, (error as Error).message));
      return;
    }
    let found: { filename: string; data: Buffer } | undefined;
    parser.on('file', (field, stream, info) => {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        if (field === 'file_upload')
          found = { filename: basename(info.filename ?? ''), data: Buffer.concat(chunks) };
      });
    });
    parser.on('error', (error) => reject(new ApiError(400, (error as Error).message)));
    parser.on('close', () => {
      if (!found || found.filename === '')
        reject(new ApiError(400, 'http: no such file (multipart field file_upload)'));
      else resolve(found);
    });
    parser.end(context.rawBody);
  });
}

/** Certificate facts for the API; a PEM without a certificate and a private key is refused (500, as dataplaneapi). */
function certificateInfo(pem: string): Json {
  const certificate = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem)?.[0];
  const key = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]+?-----END [A-Z ]*PRIVATE KEY-----/.exec(pem)?.[0];
  if (!certificate || !key) {
    throw new ApiError(
      500,
      'failed to parse certificate: the PEM must hold a certificate and its private key',
    );
  }
  let parsed: X509Certificate;
  try {
    parsed = new X509Certificate(certificate);
    createPrivateKey(key);
  } catch (error) {
    throw new ApiError(500, `failed to parse certificate: ${(error as Error).message}`);
  }
  const names = (parsed.subjectAltName ?? '').split(',').map((name) => name.trim());
  return {
    description: 'managed SSL file',
    not_before: new Date(parsed.validFrom).toISOString(),
    not_after: new Date(parsed.validTo).toISOString(),
    issuers: parsed.issuer.split('\n').join(', '),
    subject: parsed.subject.split('\n').join(', '),
    serial: parsed.serialNumber,
    domains: names
      .filter((name) => name.startsWith('DNS:'))
      .map((name) => name.slice(4))
      .join(' '),
    ip_addresses: names
      .filter((name) => name.startsWith('IP Address:'))
      .map((name) => name.slice(11))
      .join(' '),
  };
}

/** Splits `key value` lines into pieces of at most `limit` bytes, never inside a line. */
export function payloadPieces(payload: string, limit: number): string[] {
  const pieces: string[] = [];
  let current = '';
  for (const line of payload.split(/(?<=\n)/)) {
    if (current !== '' && Buffer.byteLength(current) + Buffer.byteLength(line) > limit) {
      pieces.push(current);
      current = '';
    }
    current += line;
  }
  if (current !== '') pieces.push(current);
  return pieces;
}

/** `add server` arguments for a server object, as dataplaneapi serialises them for HAProxy < 3.0. */
export function runtimeServerArguments(server: Json): string {
  const address = server.address as string;
  const host = address.includes(':') ? `[${address}]` : address;
  const words = [server.port ? `${host}:${server.port as number}` : host];
  const params = { ...server };
  delete params.name;
  delete params.address;
  delete params.port;
  if (typeof params.id === 'string') params.id = Number(params.id);
  words.push(...serverParamsWords(params));
  // Servers added at runtime start in maintenance before HAProxy 3.0; "disabled" maintenance asks for enabled.
  if (server.maintenance === 'disabled') words.push('enabled');
  return words.join(' ');
}

function statsSocketOf(document: CfgDocument): string | undefined {
  const global = findSection(document, 'global', '');
  for (const line of global?.lines ?? []) {
    const tokens = tokenize(line);
    if (tokens[0] === 'stats' && tokens[1] === 'socket' && tokens[2]) {
      const path = unquote(tokens[2]).replace(/^unix@/, '');
      if (path.startsWith('/')) return path;
    }
  }
  return undefined;
}

/** Plain-text users of a haproxy.cfg userlist (`user <name> insecure-password <password>`). */
function usersOf(document: CfgDocument, userlist: string): { name: string; password: string }[] {
  const section = findSection(document, 'userlist', userlist);
  const users: { name: string; password: string }[] = [];
  for (const line of section?.lines ?? []) {
    const tokens = tokenize(line);
    if (tokens[0] === 'user' && tokens[2] === 'insecure-password' && tokens[3]) {
      users.push({ name: unquote(tokens[1]), password: unquote(tokens[3]) });
    }
  }
  return users;
}
