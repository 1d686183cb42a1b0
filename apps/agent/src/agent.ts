import { createUser } from '@nats-io/nkeys';
import { jetstream, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import {
  connect,
  headers as natsHeaders,
  jwtAuthenticator,
  type NatsConnection,
} from '@nats-io/transport-node';
import { agentSubjects, IDEMPOTENCY_HEADER, isErrorBody, type CommandReply } from '#contracts';
import type { Logger } from '#platform';
import { ApiClient, ApiError } from './api-client.js';
import { backoffDelay, type AgentConfig } from './config.js';
import {
  AgentRequestError,
  type AgentContext,
  type AgentExtension,
  type HandlerRegistry,
  type InboundMessage,
} from './handlers.js';
import { natsPublicKeyOf } from './keys.js';
import {
  loadIdentity,
  loadPendingSeed,
  removePendingSeed,
  saveIdentity,
  savePendingSeed,
  type Identity,
} from './identity.js';

export const AGENT_VERSION = '0.1.0';
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Raised when the agent cannot go on without a person (bad token, refused enrollment). */
export class FatalAgentError extends Error {}

/** Exit codes a service manager tells apart (the unit does not restart on these). */
export const EXIT_CODES = {
  /** Enrollment refused, or no identity and no enrollment token: fix the config. */
  enrollmentRefused: 3,
  /** The front refused the agent's credentials: it was deregistered (or its tokens were stolen). */
  credentialsRefused: 4,
} as const;

/** The front no longer accepts this agent's credentials; it must enroll again to come back. */
export class CredentialsRefusedError extends FatalAgentError {}

/** How long a stop waits for the connection to drain before closing it (a broker that is away). */
const DRAIN_TIMEOUT_MS = 1_500;

/**
 * The agent: enrolls once, then stays connected to NATS with its own credentials, consumes its
 * durable consumer (catching up on what arrived while it was away), beats, and refreshes its tokens.
 */
export class Agent {
  private identity?: Identity;
  private connection?: NatsConnection;
  private messages?: ConsumerMessages;
  private stopping = false;
  private readonly stopSignal = new AbortController();
  private heartbeatTimer?: NodeJS.Timeout;
  private refreshTimer?: NodeJS.Timeout;
  private readonly startedAt = Date.now();
  private running?: Promise<void>;
  private reconnectAttempt = 0;
  private refreshing = false;
  private terminate!: (error: CredentialsRefusedError) => void;
  /** Settles when the agent can no longer go on by itself (its credentials were refused). */
  readonly terminated = new Promise<CredentialsRefusedError>((resolve) => (this.terminate = resolve));

  constructor(
    private readonly config: AgentConfig,
    private readonly handlers: HandlerRegistry,
    private readonly logger: Logger,
    private readonly api = new ApiClient(config.apiUrl, {
      ...(config.sourceAddress ? { localAddress: config.sourceAddress } : {}),
    }),
    private readonly extensions: readonly AgentExtension[] = [],
  ) {}

  get agentId(): string | undefined {
    return this.identity?.agentId;
  }

  async start(): Promise<void> {
    this.identity = await this.ensureIdentity();
    this.logger.info('agent identity ready', { agentId: this.identity.agentId });
    this.scheduleRefresh();
    this.running = this.connectionLoop();
  }

  /** SIGTERM: stop taking messages, let the current one finish, drain the connection. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.stopSignal.abort();
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.refreshTimer);
    await Promise.allSettled(this.extensions.map((extension) => extension.stop()));
    this.messages?.stop();
    await this.running?.catch(() => undefined);
    const connection = this.connection;
    if (connection && !connection.isClosed()) {
      // Draining needs the broker; without it (or with a slow one) close rather than wait for a reconnect.
      const drained = connection.drain().then(
        () => true,
        () => false,
      );
      const inTime = await Promise.race([drained, this.pause(DRAIN_TIMEOUT_MS).then(() => false)]);
      if (!inTime && !connection.isClosed()) await connection.close().catch(() => undefined);
    }
    this.logger.info('agent stopped');
  }

  private unlessStopped<T>(pending: Promise<T>): Promise<T> {
    const signal = this.stopSignal.signal;
    if (signal.aborted) return Promise.reject(new Error('the agent is stopping'));
    return new Promise<T>((resolve, reject) => {
      const onStop = () => reject(new Error('the agent is stopping'));
      signal.addEventListener('abort', onStop, { once: true });
      pending.then(resolve, reject).finally(() => signal.removeEventListener('abort', onStop));
    });
  }

  /** A plain timer (sleep() ends early on stop; this one is for stopping itself). */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms).unref());
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.stopSignal.signal.addEventListener('abort', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private delay(attempt: number): number {
    return backoffDelay(attempt, this.config.reconnect.initialDelayMs, this.config.reconnect.maxDelayMs);
  }

  /** Loads the stored identity, or enrolls with the token from the config (once). */
  private async ensureIdentity(): Promise<Identity> {
    const stored = await loadIdentity(this.config.stateDir);
    if (stored) return stored;
    const token = this.config.enrollmentToken;
    if (!token)
      throw new FatalAgentError('no identity yet and no enrollmentToken in the config: add one to enroll');
    let seed = await loadPendingSeed(this.config.stateDir);
    if (!seed) {
      seed = decoder.decode(createUser().getSeed());
      await savePendingSeed(this.config.stateDir, seed);
    }
    const natsPublicKey = natsPublicKeyOf(seed);
    for (let attempt = 0; ; attempt++) {
      try {
        const answer = await this.api.enroll({
          token,
          ...(this.config.agentId ? { agentId: this.config.agentId } : {}),
          ...(this.config.publicAddress ? { publicAddress: this.config.publicAddress } : {}),
          natsPublicKey,
          labels: this.config.labels,
        });
        const identity: Identity = {
          agentId: answer.agentId,
          natsSeed: seed,
          natsPublicKey,
          natsJwt: answer.nats.jwt,
          natsUrl: answer.nats.url,
          accessToken: answer.accessToken,
          accessTokenExpiresAt: answer.accessTokenExpiresAt,
          refreshToken: answer.refreshToken,
          refreshTokenExpiresAt: answer.refreshTokenExpiresAt,
          subjects: answer.subjects,
        };
        await saveIdentity(this.config.stateDir, identity);
        await removePendingSeed(this.config.stateDir);
        this.logger.info('enrolled', { agentId: identity.agentId });
        return identity;
      } catch (error) {
        if (error instanceof ApiError && error.final) {
          throw new FatalAgentError(`enrollment refused: ${error.message}`);
        }
        if (this.stopping) throw error;
        const wait = this.delay(attempt);
        this.logger.warn('enrollment failed; retrying', { error, retryInMs: wait });
        await this.sleep(wait);
      }
    }
  }

  private scheduleRefresh(failures = 0): void {
    if (this.stopping || !this.identity) return;
    const issued = Date.parse(this.identity.accessTokenExpiresAt);
    const remaining = Math.max(0, issued - Date.now());
    // Refresh well before expiry; after failures, back off (but never wait past the expiry by much).
    const wait =
      failures === 0
        ? Math.max(1_000, remaining * this.config.refreshAt)
        : Math.min(this.delay(failures), Math.max(1_000, remaining / 2) + 60_000);
    this.refreshTimer = setTimeout(() => void this.refresh(failures), wait);
  }

  private async refresh(failures: number): Promise<void> {
    if (this.stopping || !this.identity || this.refreshing) return;
    this.refreshing = true;
    clearTimeout(this.refreshTimer);
    try {
      const answer = await this.api.refresh(this.identity.refreshToken);
      this.identity = {
        ...this.identity,
        accessToken: answer.accessToken,
        accessTokenExpiresAt: answer.accessTokenExpiresAt,
        refreshToken: answer.refreshToken,
        refreshTokenExpiresAt: answer.refreshTokenExpiresAt,
        // The next (re)connect presents the new NATS JWT.
        natsJwt: answer.nats.jwt,
      };
      await saveIdentity(this.config.stateDir, this.identity);
      this.logger.info('tokens refreshed', { accessTokenExpiresAt: answer.accessTokenExpiresAt });
      this.scheduleRefresh(0);
    } catch (error) {
      if (error instanceof ApiError && error.final) {
        // Retrying cannot help: the front ended this agent's sessions (deregistered, or its refresh
        // token was used twice). Say so once and let the process end for good.
        this.terminate(
          new CredentialsRefusedError(
            `the front refused this agent's credentials (${error.message}): it was deregistered, or its ` +
              'tokens were used elsewhere. Enroll it again with a new enrollment token to bring it back',
          ),
        );
        return;
      }
      this.logger.warn('token refresh failed', { error });
      this.scheduleRefresh(failures + 1);
    } finally {
      this.refreshing = false;
    }
  }

  private natsOptions(identity: Identity) {
    return {
      servers: (this.config.natsUrl ?? identity.natsUrl).split(',').map((server) => server.trim()),
      name: `agent-${identity.agentId}`,
      inboxPrefix: agentSubjects.inboxPrefix(identity.agentId),
      // Reads the current JWT at every (re)connect: refreshed ones replace expiring ones.
      authenticator: jwtAuthenticator(
        () => this.identity!.natsJwt,
        () => encoder.encode(this.identity!.natsSeed),
      ),
      maxReconnectAttempts: -1,
      reconnectDelayHandler: () => this.delay(this.reconnectAttempt++),
      // A refused JWT may be replaced by a refreshed one: keep trying, with backoff.
      ignoreAuthErrorAbort: true,
      timeout: 10_000,
      pingInterval: 20_000,
    };
  }

  /** Connects (retrying forever with backoff and jitter) and consumes until stopped. */
  private async connectionLoop(): Promise<void> {
    const identity = this.identity!;
    for (let attempt = 0; !this.stopping; attempt++) {
      try {
        this.connection = await this.unlessStopped(connect(this.natsOptions(identity)));
        break;
      } catch (error) {
        if (/Authentication Revoked|Authorization Violation/i.test(String(error))) void this.refresh(0);
        const wait = this.delay(attempt);
        this.logger.warn('cannot connect to NATS; retrying', { error, retryInMs: wait });
        await this.sleep(wait);
      }
    }
    if (this.stopping || !this.connection) return;
    const connection = this.connection;
    this.logger.info('connected to NATS', { server: connection.getServer() });
    void this.watchStatus(connection);
    this.startHeartbeats(connection, identity);
    const context = this.contextFor(connection, identity);
    for (const extension of this.extensions) extension.connected(context);
    await this.consumeLoop(connection, identity);
  }

  /** What handlers and extensions may do: publish and ask under the agent's own prefix. */
  private contextFor(connection: NatsConnection, identity: Identity): AgentContext {
    return {
      agentId: identity.agentId,
      api: {
        url: this.config.apiUrl,
        // The current one: refreshed tokens replace it in the identity.
        accessToken: () => this.identity!.accessToken,
        ...(this.config.sourceAddress ? { localAddress: this.config.sourceAddress } : {}),
      },
      publish: (outTopic, body) =>
        connection.publish(agentSubjects.outbound(identity.agentId, outTopic), JSON.stringify(body)),
      request: async <T>(
        command: string,
        body: unknown,
        timeoutMs = 15_000,
        options: { idempotencyKey?: string } = {},
      ): Promise<T> => {
        const headers = natsHeaders();
        // Retrying with the same key never does the thing twice (a route request, for one).
        if (options.idempotencyKey !== undefined) headers.set(IDEMPOTENCY_HEADER, options.idempotencyKey);
        // Across the account boundary a request nobody serves gets no "no responders" answer, only
        // its timeout: stopping must not wait for that, so a stop rejects what is still asked.
        const message = await this.unlessStopped(
          connection.request(agentSubjects.request(identity.agentId, command), JSON.stringify(body), {
            timeout: timeoutMs,
            headers,
          }),
        );
        const reply = message.json<CommandReply<T>>();
        if (reply.ok) return reply.result;
        throw new AgentRequestError(
          isErrorBody(reply.error) ? reply.error : { error: 'internal', message: 'malformed reply' },
        );
      },
    };
  }

  private async watchStatus(connection: NatsConnection): Promise<void> {
    for await (const status of connection.status()) {
      if (status.type === 'reconnect') {
        this.reconnectAttempt = 0;
        this.logger.info('reconnected to NATS', { server: status.server });
        this.beat(connection, this.identity!);
      } else if (status.type === 'disconnect') {
        this.logger.warn('disconnected from NATS', { server: status.server });
      } else if (status.type === 'error') {
        this.logger.warn('NATS error', { error: status.error });
        // The broker refused the JWT: a fresh one may help; a refused refresh means the agent is gone.
        if (/Authentication Revoked|Authorization Violation|expired/i.test(String(status.error)))
          void this.refresh(0);
      }
    }
  }

  private startHeartbeats(connection: NatsConnection, identity: Identity): void {
    this.beat(connection, identity);
    this.heartbeatTimer = setInterval(() => this.beat(connection, identity), this.config.heartbeatIntervalMs);
  }

  private beat(connection: NatsConnection, identity: Identity): void {
    if (connection.isClosed() || this.stopping) return;
    const heartbeat = {
      ...Object.assign({}, ...this.extensions.map((extension) => extension.heartbeat?.() ?? {})),
      sentAt: new Date().toISOString(),
      version: AGENT_VERSION,
      uptimeSeconds: Math.floor((Date.now() - this.startedAt) / 1000),
    };
    connection.publish(identity.subjects.heartbeat, JSON.stringify(heartbeat));
  }

  /** Pulls from the agent's own durable consumer; on any failure starts again after a backoff. */
  private async consumeLoop(connection: NatsConnection, identity: Identity): Promise<void> {
    const js = jetstream(connection, { apiPrefix: identity.subjects.jsApiPrefix });
    for (let attempt = 0; !this.stopping; attempt++) {
      try {
        const consumer = await js.consumers.get(identity.subjects.stream, identity.subjects.consumer);
        this.messages = await consumer.consume({ max_messages: 64 });
        attempt = 0;
        this.logger.info('consuming', { consumer: identity.subjects.consumer, topics: this.handlers.topics });
        for await (const message of this.messages) {
          await this.handle(message, connection, identity);
          if (this.stopping) break;
        }
      } catch (error) {
        if (this.stopping) break;
        this.logger.warn('consumer unavailable; retrying', { error });
      }
      if (this.stopping) break;
      await this.sleep(this.delay(attempt));
    }
  }

  private async handle(message: JsMsg, connection: NatsConnection, identity: Identity): Promise<void> {
    const prefix = `agents.${identity.agentId}.in.`;
    const topic = message.subject.startsWith(prefix) ? message.subject.slice(prefix.length) : message.subject;
    let json: unknown;
    try {
      json = JSON.parse(decoder.decode(message.data));
    } catch {
      json = undefined;
    }
    const inbound: InboundMessage = {
      topic,
      subject: message.subject,
      sequence: message.seq,
      deliveryCount: message.info.deliveryCount,
      data: message.data,
      json,
    };
    this.logger.info('message received', {
      subject: message.subject,
      topic,
      sequence: message.seq,
      deliveryCount: inbound.deliveryCount,
      bytes: message.data.length,
    });
    const handler = this.handlers.get(topic);
    if (!handler) {
      this.logger.warn('no handler for this topic; acknowledged without action', { topic });
      message.ack();
      return;
    }
    try {
      await handler(inbound, this.contextFor(connection, identity));
      message.ack();
      this.logger.info('message handled', { subject: message.subject, sequence: message.seq });
    } catch (error) {
      const wait = this.delay(inbound.deliveryCount);
      this.logger.warn('handler failed; the message will come again', { topic, error, retryInMs: wait });
      message.nak(wait);
    }
  }
}
