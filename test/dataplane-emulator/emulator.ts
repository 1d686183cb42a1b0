/**
 * A test double of HAProxy's Data Plane API v3 for the subset in libs/dataplane/openapi.yaml, driving a
 * real HAProxy (master-worker): configuration through haproxy.cfg with `haproxy -c` before every write,
 * reloads through the master CLI, runtime changes through the stats socket. See docs/dataplane.md.
 *
 * This file is the core (lifecycle, authentication, validation, dispatch); the operations live in
 * operations/, one file per group of the Data Plane API specification's tags.
 */
import { timingSafeEqual } from 'node:crypto';
import { unwatchFile, watchFile } from 'node:fs';
import { copyFile, readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLogger, type Logger } from '#platform';
import { findSection, parseConfig, tokenize, unquote, type CfgDocument } from './cfg/document.js';
import type { Json } from './cfg/objects.js';
import type { EmulatorConfig } from './config.js';
import { HaproxyControl, RuntimeError } from './haproxy.js';
import { OpenApiDocument } from './openapi.js';
import { bindOperations } from './operations/binds.js';
import { informationOperations } from './operations/information.js';
import { mapOperations } from './operations/maps.js';
import { exists, type EmulatorParts, type Operations, type Reply } from './operations/operation.js';
import { ruleOperations } from './operations/rules.js';
import { sectionOperations } from './operations/sections.js';
import { serverOperations } from './operations/servers.js';
import { stickTableOperations } from './operations/stick-tables.js';
import { storageOperations } from './operations/storage.js';
import { transactionOperations } from './operations/transactions.js';
import { ReloadAgent } from './reloads.js';
import { ApiError, ConfigStore, asApiError } from './store.js';

/** Every operation the emulator answers, by operationId. */
const OPERATIONS: Operations = {
  ...informationOperations,
  ...transactionOperations,
  ...sectionOperations,
  ...bindOperations,
  ...serverOperations,
  ...ruleOperations,
  ...mapOperations,
  ...stickTableOperations,
  ...storageOperations,
};

function errorBody(status: number, message: string): Json {
  return { code: status, message };
}

export class DataplaneEmulator {
  readonly haproxy: HaproxyControl;
  readonly store: ConfigStore;
  readonly reloads: ReloadAgent;
  private readonly parts: EmulatorParts;
  private readonly api = new OpenApiDocument();
  private server: Server | undefined;
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
    this.parts = { config, haproxy: this.haproxy, store: this.store, reloads: this.reloads, logger };
  }

  /** The operationIds this emulator answers (every operation of the document, checked by a test). */
  static implementedOperations(): string[] {
    return Object.keys(OPERATIONS);
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
    const operationId = matched.operation.operationId as string;
    const handler = Object.hasOwn(OPERATIONS, operationId) ? OPERATIONS[operationId] : undefined;
    if (!handler) throw new ApiError(501, `${operationId} is not implemented`);
    return handler(this.parts, {
      matched,
      path: matched.pathParams,
      query: this.api.queryValues(matched, url.searchParams),
      rawQuery: url.searchParams,
      body,
      rawBody,
      headers: request.headers,
    });
  }
}

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
