import {
  addressRefusal,
  canonicalAddress,
  DomainError,
  type AddressPolicy,
  type DomainEvent,
  type NewEvent,
  type StoredEvent,
} from '#contracts';

/**
 * The registration domain as pure functions: the state of an agent and of an enrollment token folded
 * from their events, and the decisions taken on them. No I/O here; the service loads, decides, appends.
 */

export type AgentStatus = 'enrolled' | 'online' | 'offline' | 'deregistered';

export type AgentState =
  | { status: 'absent' }
  | {
      status: AgentStatus;
      agentId: string;
      natsPublicKey: string;
      publicAddress: string;
      labels: Record<string, string>;
      enrolledAt: string;
      lastSeenAt: string | null;
      deregisteredAt: string | null;
    };

export const initialAgentState: AgentState = { status: 'absent' };

export function evolveAgent(state: AgentState, event: DomainEvent): AgentState {
  switch (event.type) {
    case 'AgentEnrolled':
      return {
        status: 'enrolled',
        agentId: event.data.agentId,
        natsPublicKey: event.data.natsPublicKey,
        publicAddress: event.data.publicAddress,
        labels: event.data.labels,
        enrolledAt: event.occurredAt,
        lastSeenAt: null,
        deregisteredAt: null,
      };
    case 'AgentCameOnline':
      return state.status === 'absent' || state.status === 'deregistered'
        ? state
        : { ...state, status: 'online', lastSeenAt: event.data.seenAt };
    case 'AgentWentOffline':
      return state.status === 'absent' || state.status === 'deregistered'
        ? state
        : { ...state, status: 'offline', lastSeenAt: event.data.lastSeenAt };
    case 'AgentDeregistered':
      return state.status === 'absent'
        ? state
        : { ...state, status: 'deregistered', deregisteredAt: event.occurredAt };
    default:
      return state;
  }
}

export type TokenState =
  | { status: 'absent' }
  | {
      status: 'issued';
      tokenHash: string;
      expiresAt: string;
      usedBy: string | null;
      note: string | null;
      /** Addresses the admin approved for this enrollment (canonical). */
      approvedAddresses: string[];
    };

export const initialTokenState: TokenState = { status: 'absent' };

export function evolveToken(state: TokenState, event: DomainEvent): TokenState {
  switch (event.type) {
    case 'EnrollmentTokenIssued':
      return {
        status: 'issued',
        tokenHash: event.data.tokenHash,
        expiresAt: event.data.expiresAt,
        usedBy: null,
        note: event.data.note ?? null,
        approvedAddresses: (event.data.approvedAddresses ?? []).map((address) => canonicalAddress(address)!),
      };
    case 'EnrollmentTokenUsed':
      return state.status === 'issued' ? { ...state, usedBy: event.data.agentId } : state;
    case 'EnrollmentTokenReleased':
      return state.status === 'issued' && state.usedBy === event.data.agentId
        ? { ...state, usedBy: null }
        : state;
    default:
      return state;
  }
}

export function foldAgent(events: readonly StoredEvent[]): AgentState {
  return (events as DomainEvent[]).reduce(evolveAgent, initialAgentState);
}

export function foldToken(events: readonly StoredEvent[]): TokenState {
  return (events as DomainEvent[]).reduce(evolveToken, initialTokenState);
}

/** One message for every refusal of a token, so a caller cannot tell unknown from used from expired. */
export const TOKEN_REFUSED = 'the enrollment token is unknown, already used or expired';

/**
 * Issues a token. A token that exists already is a retry under the same Idempotency-Key (a random token
 * never meets another): the same request appends nothing, a different one is refused.
 */
export function decideIssueToken(
  state: TokenState,
  command: { tokenHash: string; expiresAt: string; note?: string; approvedAddresses?: string[] },
  now: Date,
  policy: AddressPolicy,
): NewEvent[] {
  const approved = command.approvedAddresses?.map((address, index) => {
    const refusal = addressRefusal(address, policy);
    if (refusal) throw new DomainError('invalid', refusal.message, `approvedAddresses.${index}`);
    return canonicalAddress(address)!;
  });
  const unique = approved ? [...new Set(approved)] : undefined;
  if (state.status !== 'absent') {
    const sameRequest =
      state.note === (command.note ?? null) && sameMembers(state.approvedAddresses, unique ?? []);
    if (sameRequest) return [];
    throw new DomainError(
      'conflict',
      'this Idempotency-Key was already used for a different enrollment token; use a new key',
      'Idempotency-Key',
    );
  }
  if (Date.parse(command.expiresAt) <= now.getTime()) {
    throw new DomainError('invalid', 'must be in the future', 'expiresAt');
  }
  return [
    {
      type: 'EnrollmentTokenIssued',
      data: {
        tokenHash: command.tokenHash,
        expiresAt: command.expiresAt,
        ...(command.note ? { note: command.note } : {}),
        ...(unique ? { approvedAddresses: unique } : {}),
      },
    },
  ];
}

function sameMembers(left: readonly string[], right: readonly string[]): boolean {
  const set = new Set(left);
  return set.size === new Set(right).size && right.every((item) => set.has(item));
}

/** Whether the token can let an agent in now; throws the 401 otherwise. */
export function checkTokenUsable(state: TokenState, now: Date): void {
  if (state.status !== 'issued' || state.usedBy !== null || Date.parse(state.expiresAt) <= now.getTime()) {
    throw new DomainError('unauthorized', TOKEN_REFUSED);
  }
}

/** The token was used by this agent id, which was never enrolled, and the token has not expired. */
export function isUnfinishedEnrollment(
  token: TokenState,
  agent: AgentState,
  agentId: string,
  now: Date,
): boolean {
  return (
    token.status === 'issued' &&
    token.usedBy === agentId &&
    agent.status === 'absent' &&
    Date.parse(token.expiresAt) > now.getTime()
  );
}

export function decideUseToken(state: TokenState, agentId: string, now: Date): NewEvent[] {
  checkTokenUsable(state, now);
  return [{ type: 'EnrollmentTokenUsed', data: { agentId } }];
}

export function decideReleaseToken(state: TokenState, agentId: string, reason: string): NewEvent[] {
  if (state.status !== 'issued' || state.usedBy !== agentId) return [];
  return [{ type: 'EnrollmentTokenReleased', data: { agentId, reason } }];
}

/**
 * The address an agent enrolls with, canonical. It must pass the address policy, and be the address the
 * enrollment came from — an agent shows it holds an address by connecting from it — unless the admin
 * approved it with the token (an agent behind NAT, or a proxy in between).
 */
export function checkEnrollmentAddress(
  policy: AddressPolicy,
  request: { publicAddress: string; sourceAddress: string },
  token: TokenState,
): string {
  const address = canonicalAddress(request.publicAddress);
  if (address === undefined)
    throw new DomainError('invalid', 'must be an IPv4 or IPv6 address', 'publicAddress');
  const refusal = addressRefusal(address, policy);
  if (refusal) throw new DomainError('invalid', refusal.message, 'publicAddress');
  if (!tokenApproves(token, address) && address !== canonicalAddress(request.sourceAddress)) {
    throw new DomainError(
      'forbidden',
      `${address} is not the address this enrollment came from (${request.sourceAddress}); enroll from it, ` +
        'or have an admin approve it with the enrollment token (approvedAddresses)',
      'publicAddress',
    );
  }
  return address;
}

/** Whether the admin approved this (canonical) address with the enrollment token. */
export function tokenApproves(token: TokenState, address: string): boolean {
  return token.status === 'issued' && token.approvedAddresses.includes(address);
}

export interface AddressHolder {
  agentId: string;
  shared: boolean;
}

/** Every binding of an address, in order. */
export const initialAddressHolders: readonly AddressHolder[] = [];

export function evolveAddressHolders(
  holders: readonly AddressHolder[],
  event: DomainEvent,
): readonly AddressHolder[] {
  return event.type === 'AddressBound'
    ? [...holders, { agentId: event.data.agentId, shared: event.data.shared }]
    : holders;
}

export function foldAddressHolders(events: readonly StoredEvent[]): readonly AddressHolder[] {
  return (events as DomainEvent[]).reduce(evolveAddressHolders, initialAddressHolders);
}

/**
 * Binding an address to an enrolling agent. `liveHolders` are the agents of earlier bindings that are
 * still enrolled with this address (the caller checks each one's own record: a binding whose enrollment
 * never finished, or whose agent left, holds nothing). Another live holder refuses it with 409, unless the
 * admin approved this address for this enrollment.
 */
export function decideBindAddress(
  address: string,
  agentId: string,
  liveHolders: readonly string[],
  approvedByAdmin: boolean,
): NewEvent[] {
  const others = liveHolders.filter((holder) => holder !== agentId);
  if (others.length > 0 && !approvedByAdmin) {
    throw new DomainError(
      'conflict',
      `${address} is the address of agent ${others.join(', ')}; two agents share an address only when an ` +
        'admin approves it with the enrollment token (approvedAddresses)',
      'publicAddress',
    );
  }
  return [{ type: 'AddressBound', data: { address, agentId, shared: others.length > 0 } }];
}

/** Agent ids are never reused, not even after deregistration: old events and subjects name them. */
export function checkAgentIdFree(state: AgentState, agentId: string): void {
  if (state.status !== 'absent') throw new DomainError('conflict', `agent id ${agentId} is taken`, 'agentId');
}

export function decideEnroll(
  state: AgentState,
  command: {
    agentId: string;
    publicAddress: string;
    natsPublicKey: string;
    labels: Record<string, string>;
    enrollmentTokenId: string;
  },
): NewEvent[] {
  checkAgentIdFree(state, command.agentId);
  return [{ type: 'AgentEnrolled', data: { ...command } }];
}

/** Deregistering twice is not an error; the second time decides nothing. */
export function decideDeregister(state: AgentState, agentId: string, reason: string): NewEvent[] {
  if (state.status === 'absent') throw new DomainError('not_found', `no agent ${agentId}`);
  if (state.status === 'deregistered') return [];
  return [{ type: 'AgentDeregistered', data: { agentId, reason } }];
}

/** An agent that can hold credentials: enrolled and not deregistered. */
export function checkActive(
  state: AgentState,
  agentId: string,
): asserts state is Extract<AgentState, { agentId: string }> {
  if (state.status === 'absent' || state.status === 'deregistered') {
    throw new DomainError('unauthorized', `agent ${agentId} is not enrolled`);
  }
}

/** A heartbeat: an agent not known as online comes online. */
export function decideHeartbeat(state: AgentState, seenAt: Date): NewEvent[] {
  if (state.status === 'enrolled' || state.status === 'offline') {
    return [{ type: 'AgentCameOnline', data: { agentId: state.agentId, seenAt: seenAt.toISOString() } }];
  }
  return [];
}

/** No heartbeat for longer than the timeout: an online agent goes offline. */
export function decideLivenessTimeout(
  state: AgentState,
  lastSeenAt: Date,
  now: Date,
  timeoutMs: number,
): NewEvent[] {
  if (state.status !== 'online') return [];
  if (now.getTime() - lastSeenAt.getTime() <= timeoutMs) return [];
  return [
    { type: 'AgentWentOffline', data: { agentId: state.agentId, lastSeenAt: lastSeenAt.toISOString() } },
  ];
}
