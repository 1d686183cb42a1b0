import { randomUUID } from 'node:crypto';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import {
  allAgentCertificateRequests,
  confirmCertificateBody,
  DomainError,
  dnsLabel,
  parseOrThrow,
  requestCertificateBody,
  toErrorBody,
  ValidationError,
  type CommandReply,
} from '#contracts';
import type { Logger } from '#platform';
import type { CertificateCommands } from './certificates.service.js';

/** Largest request body an agent may send (a CSR is at most 16 KiB). */
const MAX_BODY_BYTES = 32 * 1024;
/** Requests of one agent handled at once; more are refused (`unavailable`): signing costs CPU. */
export const MAX_IN_FLIGHT_PER_AGENT = 4;

/**
 * Certificate requests agents publish on their own prefix, `agents.<id>.out.req.certificates.<command>`:
 * `request` (`{ csr, replaces? }`), `confirm` (`{ serial, hook }`), `names` (`{}`). The broker lets an agent
 * publish only under its own prefix, so the subject names the sender. The reply is a CommandReply on the
 * agent's inbox.
 */
export class AgentCertificateRequests {
  private subscription?: Subscription;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly perAgent = new Map<string, number>();

  constructor(
    private readonly connection: NatsConnection,
    private readonly commands: CertificateCommands,
    private readonly logger: Logger,
  ) {}

  start(): void {
    this.subscription = this.connection.subscribe(allAgentCertificateRequests, {
      queue: 'certificates',
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

  async handle(message: Pick<Msg, 'subject' | 'data' | 'reply' | 'respond'>): Promise<void> {
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
                message: `more than ${MAX_IN_FLIGHT_PER_AGENT} certificate requests at once; wait for answers and retry`,
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

  async answer(message: Pick<Msg, 'subject' | 'data'>): Promise<CommandReply> {
    try {
      const tokens = message.subject.split('.');
      const agentId = tokens[1] ?? '';
      if (tokens.length !== 6 || !dnsLabel.safeParse(agentId).success) {
        throw new DomainError('invalid', 'not an agent request subject', '(subject)');
      }
      const actor = { kind: 'agent' as const, id: agentId };
      const body = this.body(message.data);
      const correlationId = randomUUID();
      switch (tokens[5]) {
        case 'request': {
          const parsed = parseOrThrow(requestCertificateBody, body);
          return {
            ok: true,
            result: await this.commands.issue({
              commandId: randomUUID(),
              actor,
              correlationId,
              payload: { agentId, ...parsed },
            }),
          };
        }
        case 'confirm':
          return {
            ok: true,
            result: await this.commands.confirm(agentId, parseOrThrow(confirmCertificateBody, body), {
              actor,
              correlationId,
            }),
          };
        case 'names':
          return { ok: true, result: await this.commands.names(agentId) };
        default:
          throw new DomainError(
            'not_found',
            `unknown certificate command ${JSON.stringify(tokens[5]?.slice(0, 40))}; use request, confirm or names`,
            '(subject)',
          );
      }
    } catch (error) {
      const body = toErrorBody(error);
      if (body.error === 'internal') this.logger.error('agent certificate request failed', { error });
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
