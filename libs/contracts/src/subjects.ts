/**
 * NATS subject scheme. Events live on `events.<aggregate>.<id>`; what an agent must receive lives on
 * `agents.<agentId>.…`. Ids become subject tokens, so they must never contain `.`, `*`, `>` or spaces.
 */

export const EVENTS_STREAM = 'EVENTS';
export const EVENTS_SUBJECT_PREFIX = 'events';
export const AGENTS_STREAM = 'AGENTS';
export const AGENTS_SUBJECT_PREFIX = 'agents';

export const AGGREGATE_TYPES = [
  'agent',
  'route',
  'hostname',
  'certificate',
  'ca',
  'proxy-node',
  'admin',
  'enrollment-token',
  'quarantine',
  'address',
  /** What admins decided about the dead letters of one message (id: its stream sequence). */
  'dead-letter',
  /** An app deployed on an agent (id: its name). */
  'app',
  /** One deployment of an app (id: a UUID). */
  'deployment',
] as const;
export type AggregateType = (typeof AGGREGATE_TYPES)[number];

const TOKEN_SAFE = /^[A-Za-z0-9_-]+$/;

/**
 * Host names are `[a-z0-9-.]`; `.` separates subject tokens, so it becomes `_` (never part of a valid host
 * name, so the mapping is reversible).
 */
export function hostnameToken(hostname: string): string {
  return hostname.replace(/\./g, '_');
}

export function tokenToHostname(token: string): string {
  return token.replace(/_/g, '.');
}

/** The subject token for an aggregate id; host names are mapped, anything else must already be token-safe. */
export function aggregateToken(type: AggregateType, id: string): string {
  // Addresses are canonical IP literals: `.` becomes `_` and `:` becomes `-` (neither occurs otherwise).
  const token =
    type === 'hostname'
      ? hostnameToken(id)
      : type === 'address'
        ? id.replace(/\./g, '_').replace(/:/g, '-')
        : id;
  if (!TOKEN_SAFE.test(token))
    throw new Error(`aggregate id ${JSON.stringify(id)} cannot be a subject token`);
  return token;
}

export function aggregateSubject(type: AggregateType, id: string, prefix = EVENTS_SUBJECT_PREFIX): string {
  return `${prefix}.${type}.${aggregateToken(type, id)}`;
}

export function aggregateTypeSubjects(type: AggregateType, prefix = EVENTS_SUBJECT_PREFIX): string {
  return `${prefix}.${type}.*`;
}

/**
 * Per-agent subjects. `agents.<id>.in.<topic>` is what the agent must receive: stored in the AGENTS stream
 * and read through the agent's own durable consumer, so an agent that was offline catches up.
 * `agents.<id>.out.<topic>` is what the agent publishes (heartbeats, reports, requests as
 * `agents.<id>.out.req.<command>`); it is not stored. Replies reach the agent on its own inbox prefix.
 * Each agent is a user of an account of its own, which imports exactly these subjects from the services'
 * account (libs/auth nats-claims), so the broker enforces all of this.
 */
export const agentSubjects = {
  inbound: (agentId: string, topic = '>') =>
    `${AGENTS_SUBJECT_PREFIX}.${aggregateToken('agent', agentId)}.in.${topic}`,
  outbound: (agentId: string, topic = '>') =>
    `${AGENTS_SUBJECT_PREFIX}.${aggregateToken('agent', agentId)}.out.${topic}`,
  request: (agentId: string, command: string) =>
    `${AGENTS_SUBJECT_PREFIX}.${aggregateToken('agent', agentId)}.out.req.${command}`,
  inboxPrefix: (agentId: string) => `_INBOX_${aggregateToken('agent', agentId)}`,
  /** The durable consumer on the AGENTS stream that only this agent may read. */
  consumer: (agentId: string) => `agent-${aggregateToken('agent', agentId)}`,
  /** What the AGENTS stream stores: every agent's inbound subjects. */
  streamSubjects: [`${AGENTS_SUBJECT_PREFIX}.*.in.>`],
  /** What services subscribe to for everything agents publish. */
  allOutbound: (topic = '>') => `${AGENTS_SUBJECT_PREFIX}.*.out.${topic}`,
  /**
   * The JetStream API prefix inside an agent's own account: its consumer's info and pull subjects are
   * imported from the services' account under it (an account's own `$JS.API` is the server's).
   */
  jsApiPrefix: '$CL.JS.API',
  /**
   * A request's reply subject as a service sees it when the request came from an agent's account: the
   * server's one-off response subject, which leads back to the requester's account only.
   */
  crossAccountReplyPrefix: '_R_.',
};
