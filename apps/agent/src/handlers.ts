import type { ErrorBody } from '#contracts';

/** What a handler gets for one message from the agent's consumer. */
export interface InboundMessage {
  topic: string;
  subject: string;
  sequence: number;
  deliveryCount: number;
  data: Uint8Array;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: unknown;
}

export interface AgentContext {
  agentId: string;
  /** The front's API and how to reach it as this agent (for downloads the broker does not carry). */
  api: { url: string; accessToken(): string; localAddress?: string };
  /** Publishes under the agent's own `agents.<id>.out.<topic>` (the only place it may publish). */
  publish(topic: string, body: unknown): void;
  /**
   * Asks a service on `agents.<id>.out.req.<command>` and waits for its CommandReply: resolves its result,
   * throws AgentRequestError for a refusal (and the transport's error when nobody answers in time).
   */
  request<T>(
    command: string,
    body: unknown,
    timeoutMs?: number,
    options?: { idempotencyKey?: string },
  ): Promise<T>;
}

/** A service refused an agent's request; `body.field` names what to fix. */
export class AgentRequestError extends Error {
  constructor(readonly body: ErrorBody) {
    super(`${body.error}: ${body.message}${body.field ? ` (${body.field})` : ''}`);
    this.name = 'AgentRequestError';
  }
}

/** Something the agent runs beside its handlers once it is connected (certificates, …). */
export interface AgentExtension {
  /** Called once, when the agent is connected and about to consume. */
  connected(context: AgentContext): void;
  /** Called on shutdown, before the connection is drained. */
  stop(): Promise<void>;
  /** What it adds to each heartbeat (the runtimes deployments can use, …). */
  heartbeat?(): Record<string, unknown>;
}

export type InboundHandler = (message: InboundMessage, context: AgentContext) => Promise<void> | void;

/**
 * Handlers per inbound topic (`agents.<id>.in.<topic>`). A message is acked after its handler
 * resolves; if the handler throws it is redelivered later. Topics without a handler are logged and
 * acked, so an older agent does not pile up messages meant for newer versions.
 */
export class HandlerRegistry {
  private readonly handlers = new Map<string, InboundHandler>();

  register(topic: string, handler: InboundHandler): this {
    if (!/^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)*$/.test(topic)) throw new Error(`bad topic ${topic}`);
    if (this.handlers.has(topic)) throw new Error(`a handler for ${topic} is registered already`);
    this.handlers.set(topic, handler);
    return this;
  }

  get(topic: string): InboundHandler | undefined {
    return this.handlers.get(topic);
  }

  get topics(): string[] {
    return [...this.handlers.keys()];
  }
}

/** Built in: `ping` answers on `out.pong` with the same body, so the server can check the path end to end. */
export function defaultHandlers(): HandlerRegistry {
  return new HandlerRegistry().register('ping', (message, context) => {
    context.publish('pong', { received: message.json ?? null, sequence: message.sequence });
  });
}
