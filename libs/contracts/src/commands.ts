import { z } from 'zod';
import { actorSchema, type Actor } from './envelope.js';
import type { ErrorBody } from './errors.js';

/**
 * Commands travel over NATS request/reply from the API (or an agent) to the service that owns the
 * aggregate: `cmd.<service>.<command>`. The envelope says who asks and under which id, so a retried
 * command appends nothing new.
 */
export const commandEnvelopeSchema = z.strictObject({
  commandId: z.string().min(1).max(128),
  actor: actorSchema,
  correlationId: z.string().min(1).max(128),
  payload: z.unknown(),
});
export type CommandEnvelope<TPayload = unknown> = {
  commandId: string;
  actor: Actor;
  correlationId: string;
  payload: TPayload;
};

export type CommandReply<TResult = unknown> = { ok: true; result: TResult } | { ok: false; error: ErrorBody };

export function commandSubject(service: string, command: string): string {
  return `cmd.${service}.${command}`;
}
