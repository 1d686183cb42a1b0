import { randomUUID } from 'node:crypto';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import {
  allAgentRouteRequests,
  createRouteBody,
  DomainError,
  dnsLabel,
  getRoutePayload,
  IDEMPOTENCY_HEADER,
  idempotencyKey,
  listRoutesQuery,
  parseOrThrow,
  removeRoutePayload,
  toErrorBody,
  updateRoutePayload,
  ValidationError,
  type Actor,
  type CommandEnvelope,
  type CommandReply,
} from '#contracts';
import type { Logger } from '#platform';
import type { RoutingCommands } from './routing.service.js';

/** Largest request body an agent may send, as over HTTP. */
const MAX_BODY_BYTES = 64 * 1024;
/** Requests of one agent handled at once; more are refused (`unavailable`) instead of queued. */
export const MAX_IN_FLIGHT_PER_AGENT = 16;

/**
 * Route requests agents publish on their own prefix, `agents.<id>.out.req.routes.<command>`. The broker
 * lets an agent publish only under its own prefix, so the subject names the sender; the same rules as over
 * HTTP apply. The reply is a CommandReply (`{ ok, result | error }`) on the agent's inbox.
 */
export class AgentRouteRequests {
  private subscription?: Subscription;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly perAgent = new Map<string, number>();

  constructor(
    private readonly connection: NatsConnection,
    private readonly commands: RoutingCommands,
    private readonly logger: Logger,
  ) {}

  start(): void {
    this.subscription = this.connection.subscribe(allAgentRouteRequests, {
      queue: 'routing',
      callback: (error, message) => {
        if (error) {
          this.logger.warn('agent request subscription error', { error });
          return;
        }
        const work = this.handle(message).finally(() => this.inFlight.delete(work));
        this.inFlight.add(work);
      },
    });
  }

  async stop(): Promise<void> {
    this.subscription?.unsubscribe();
    await Promise.allSettled([...this.inFlight]);
  }

  /** Answers one request (public for the unit test of the per-agent bound). */
  async handle(message: Pick<Msg, 'subject' | 'data' | 'headers' | 'reply' | 'respond'>): Promise<void> {
    const agentId = message.subject.split('.')[1] ?? '';
    const busy = this.perAgent.get(agentId) ?? 0;
    this.perAgent.set(agentId, busy + 1);
    let reply: CommandReply;
    try {
      reply =
        busy >= MAX_IN_FLIGHT_PER_AGENT
          ? {
              ok: false,
              error: {
                error: 'unavailable',
                message: `more than ${MAX_IN_FLIGHT_PER_AGENT} route requests at once; wait for answers and retry`,
              },
            }
          : await this.answer(message);
    } finally {
      const left = (this.perAgent.get(agentId) ?? 1) - 1;
      if (left > 0) this.perAgent.set(agentId, left);
      else this.perAgent.delete(agentId);
    }
    if (!message.reply) return;
    try {
      message.respond(JSON.stringify(reply));
    } catch (error) {
      this.logger.warn('could not answer an agent request', { subject: message.subject, error });
    }
  }

  /** `agents.<id>.out.req.routes.<command>` → the command's reply. */
  async answer(message: Pick<Msg, 'subject' | 'data' | 'headers'>): Promise<CommandReply> {
    try {
      const tokens = message.subject.split('.');
      const agentId = tokens[1] ?? '';
      if (tokens.length !== 6 || !dnsLabel.safeParse(agentId).success) {
        throw new DomainError('invalid', 'not an agent request subject', '(subject)');
      }
      const actor: Actor = { kind: 'agent', id: agentId };
      const body = this.body(message.data);
      const header = message.headers?.get(IDEMPOTENCY_HEADER) || undefined;
      const commandId =
        header === undefined ? randomUUID() : parseOrThrow(idempotencyKey, header, IDEMPOTENCY_HEADER);
      const envelope = <T>(payload: T): CommandEnvelope<T> => ({
        commandId,
        actor,
        correlationId: randomUUID(),
        payload,
      });
      switch (tokens[5]) {
        case 'request': {
          const parsed = parseOrThrow(createRouteBody, body);
          return {
            ok: true,
            result: await this.commands.request(envelope({ ...parsed, agentId: parsed.agentId ?? agentId })),
          };
        }
        case 'update':
          return {
            ok: true,
            result: await this.commands.update(envelope(parseOrThrow(updateRoutePayload, body))),
          };
        case 'remove':
          return {
            ok: true,
            result: await this.commands.remove(envelope(parseOrThrow(removeRoutePayload, body))),
          };
        case 'get': {
          const { routeId } = parseOrThrow(getRoutePayload, body);
          return { ok: true, result: await this.commands.get(actor, routeId) };
        }
        case 'list':
          return { ok: true, result: await this.commands.list(actor, parseOrThrow(listRoutesQuery, body)) };
        default:
          throw new DomainError(
            'not_found',
            `unknown route command ${JSON.stringify(tokens[5]?.slice(0, 40))}; use request, update, remove, get or list`,
            '(subject)',
          );
      }
    } catch (error) {
      const body = toErrorBody(error);
      if (body.error === 'internal') this.logger.error('agent route request failed', { error });
      return { ok: false, error: body };
    }
  }

  private body(data: Uint8Array): unknown {
    if (data.length > MAX_BODY_BYTES) {
      throw new ValidationError([{ field: '(body)', message: `must be at most ${MAX_BODY_BYTES} bytes` }]);
    }
    if (data.length === 0) return {};
    try {
      return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(data));
    } catch {
      throw new ValidationError([{ field: '(body)', message: 'must be a JSON object' }]);
    }
  }
}
