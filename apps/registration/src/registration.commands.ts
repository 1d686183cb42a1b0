import { createHash } from 'node:crypto';
import {
  agentSubjectSet,
  canonicalAddress,
  DomainError,
  type AgentCredentialsResult,
  type CommandEnvelope,
  type DeregisterPayload,
  type DeregisterResult,
  type EnrollResult,
  type EventContext,
  type IssueEnrollmentTokenPayload,
  type IssueEnrollmentTokenResult,
  type AddressPolicy,
} from '#contracts';
import { commandHandler, ConcurrencyError, contextOf, type EventStore } from '#eventstore';
import type { Logger } from '#platform';
import type { AgentBroker } from './agent-broker.js';
import {
  checkActive,
  checkAgentIdFree,
  checkEnrollmentAddress,
  checkTokenUsable,
  decideBindAddress,
  decideDeregister,
  decideEnroll,
  decideIssueToken,
  decideReleaseToken,
  decideUseToken,
  evolveAddressHolders,
  evolveAgent,
  evolveToken,
  foldAgent,
  foldToken,
  initialAddressHolders,
  initialAgentState,
  initialTokenState,
  isUnfinishedEnrollment,
  tokenApproves,
  type AgentState,
} from './domain/decider.js';

export interface EnrollCommand {
  tokenHash: string;
  agentId?: string;
  publicAddress: string;
  sourceAddress: string;
  natsPublicKey: string;
  labels: Record<string, string>;
}

/**
 * The id of an agent that enrolls without naming one (`agent-` and 10 base-32 characters): derived from
 * its token's hash, so a retry of the same enrollment (after a crash between its appends) names the same
 * agent and can complete it.
 */
export function generatedAgentId(tokenHash: string): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  const digest = createHash('sha256').update(`agent-id\0${tokenHash}`).digest();
  return 'agent-' + [...digest.subarray(0, 10)].map((byte) => alphabet[byte % 32]).join('');
}

const tokenHandler = commandHandler({ evolve: evolveToken, initialState: initialTokenState });
export const agentHandler = commandHandler({ evolve: evolveAgent, initialState: initialAgentState });
const addressHandler = commandHandler({ evolve: evolveAddressHolders, initialState: initialAddressHolders });

export interface RegistrationHooks {
  /** Told about agents this replica enrolled or deregistered (liveness tracking). */
  enrolled(agentId: string): void;
  deregistered(agentId: string): void;
}

/** The command side of registration: enrollment tokens, enrollment, deregistration, credentials. */
export class RegistrationCommands {
  constructor(
    private readonly store: EventStore,
    private readonly broker: AgentBroker,
    private readonly logger: Logger,
    private readonly hooks: RegistrationHooks,
    /** Which addresses agents may have (the policy routing applies to targets). */
    private readonly addresses: AddressPolicy,
  ) {}

  async issueEnrollmentToken(
    command: CommandEnvelope<IssueEnrollmentTokenPayload>,
  ): Promise<IssueEnrollmentTokenResult> {
    const now = new Date();
    const { state, events } = await tokenHandler.handle(
      this.store,
      { type: 'enrollment-token', id: command.payload.tokenHash },
      (state) => decideIssueToken(state, command.payload, now, this.addresses),
      { context: contextOf(command), commandId: command.commandId },
    );
    // A retry answers what the first attempt issued.
    const expiresAt =
      events.length === 0 && state.status === 'issued' ? state.expiresAt : command.payload.expiresAt;
    return { expiresAt };
  }

  /**
   * Order of appends, so one token can never let two agents in: first the token's use is appended with
   * the token's last sequence (optimistic concurrency: of two racing enrollments exactly one appends it,
   * the other reloads, sees the token used and gets 401); only then the agent's enrollment, with expected
   * sequence 0 on the agent's subject. If that second append loses a race for the agent id, the use is
   * released again (EnrollmentTokenReleased) and the caller gets 409. A crash between the two appends
   * leaves a used token and no agent: a retry of the same enrollment (the same token and agent id; a
   * generated id is derived from the token) completes it; anything else is refused as before.
   * Checks that refuse (bad token, taken id) run before anything is appended.
   */
  async enroll(command: CommandEnvelope<EnrollCommand>): Promise<EnrollResult> {
    const now = new Date();
    const { tokenHash, natsPublicKey, labels } = command.payload;
    const agentId = command.payload.agentId ?? generatedAgentId(tokenHash);
    const tokenAggregate = { type: 'enrollment-token' as const, id: tokenHash };
    const agentAggregate = { type: 'agent' as const, id: agentId };
    const context: EventContext = {
      actor: { kind: 'agent', id: agentId },
      correlationId: command.correlationId,
      causationId: command.commandId,
    };

    // Refusals first, before anything is appended.
    const tokenHistory = await this.store.readAggregate('enrollment-token', tokenHash);
    const token = foldToken(tokenHistory.events);
    const agentHistory = await this.store.readAggregate('agent', agentId);
    // An enrollment that stopped after using its token and before enrolling the agent is completed by
    // its retry (same token, same agent id); any other use of a used token is refused.
    const resuming = isUnfinishedEnrollment(token, foldAgent(agentHistory.events), agentId, now);
    if (!resuming) checkTokenUsable(token, now);
    const publicAddress = checkEnrollmentAddress(this.addresses, command.payload, token);
    checkAgentIdFree(foldAgent(agentHistory.events), agentId);
    await this.bindAddress(publicAddress, agentId, tokenApproves(token, publicAddress), context);

    if (!resuming) {
      await tokenHandler.handle(this.store, tokenAggregate, (state) => decideUseToken(state, agentId, now), {
        context,
        history: tokenHistory,
      });
    }
    let enrolledAt: string;
    try {
      // A lost race for the agent id is decided again, and then refused as taken (409).
      const { stored } = await agentHandler.handle(
        this.store,
        agentAggregate,
        (state) =>
          decideEnroll(state, {
            agentId,
            publicAddress,
            natsPublicKey,
            labels,
            enrollmentTokenId: tokenHash,
          }),
        { context, history: agentHistory },
      );
      enrolledAt = stored[0]!.occurredAt;
    } catch (error) {
      if (error instanceof ConcurrencyError || (error instanceof DomainError && error.code === 'conflict')) {
        // The use is released unless the agent id was enrolled with this very token (by a concurrent
        // retry of this enrollment): then the token did its one job, and stays used.
        const enrolled = (await this.store.readAggregate('agent', agentId)).events.find(
          (event) => event.type === 'AgentEnrolled',
        );
        const byThisToken =
          (enrolled?.data as { enrollmentTokenId?: string } | undefined)?.enrollmentTokenId === tokenHash;
        if (byThisToken) throw new DomainError('conflict', `agent id ${agentId} is taken`, 'agentId');
        await tokenHandler.handle(
          this.store,
          tokenAggregate,
          (state) => decideReleaseToken(state, agentId, 'the agent id was taken by another enrollment'),
          { context },
        );
        throw new DomainError('conflict', `agent id ${agentId} is taken`, 'agentId');
      }
      throw error;
    }
    this.hooks.enrolled(agentId);
    await this.broker.ensureAccount(agentId, { isNew: true });
    await this.broker.ensureConsumer(agentId);
    const natsJwt = await this.broker.userJwt(agentId, natsPublicKey);
    this.logger.info('agent enrolled', { agentId, publicAddress });
    return { agentId, enrolledAt, natsJwt, subjects: agentSubjectSet(agentId) };
  }

  /**
   * Binds the address to the enrolling agent before its enrollment is appended (the address's own
   * sequence orders racing enrollments). Earlier bindings count only while their agent is enrolled with
   * this address: one whose enrollment never finished, or whose agent was deregistered, holds nothing.
   */
  private async bindAddress(
    address: string,
    agentId: string,
    approved: boolean,
    context: EventContext,
  ): Promise<void> {
    await addressHandler.handle(
      this.store,
      { type: 'address', id: address },
      async (holders) => {
        const ids = [...new Set(holders.map((holder) => holder.agentId))];
        const states = await Promise.all(
          ids.map(async (holder) => foldAgent((await this.store.readAggregate('agent', holder)).events)),
        );
        const live = ids.filter((_, index) => {
          const state = states[index]!;
          return (
            state.status !== 'absent' &&
            state.status !== 'deregistered' &&
            canonicalAddress(state.publicAddress) === address
          );
        });
        return decideBindAddress(address, agentId, live, approved);
      },
      { context, guarded: !approved },
    );
  }

  /**
   * Appends AgentDeregistered, then revokes the agent's own account on the broker (its connections are
   * dropped and it cannot connect again) and deletes its consumer. Repeating it repeats only the broker
   * steps, so a failure after the append is repaired by retrying (and at every start).
   */
  async deregister(command: CommandEnvelope<DeregisterPayload>): Promise<DeregisterResult> {
    const { agentId, reason } = command.payload;
    const outcome = await agentHandler.handle(
      this.store,
      { type: 'agent', id: agentId },
      (state) => decideDeregister(state, agentId, reason),
      { context: contextOf(command), commandId: command.commandId },
    );
    const state = outcome.state as Extract<AgentState, { agentId: string }>;
    const deregisteredAt =
      outcome.events.length > 0 ? new Date() : new Date(state.deregisteredAt ?? Date.now());
    await this.broker.ensureAccount(agentId, { deregisteredAt });
    await this.broker.deleteConsumer(agentId);
    this.hooks.deregistered(agentId);
    this.logger.info('agent deregistered', { agentId, by: command.actor });
    return { agentId, deregisteredAt: deregisteredAt.toISOString(), changed: outcome.events.length > 0 };
  }

  /** A fresh NATS user JWT for an agent that is still enrolled (asked by the API on token refresh). */
  async agentCredentials(command: CommandEnvelope<{ agentId: string }>): Promise<AgentCredentialsResult> {
    const { agentId } = command.payload;
    const state = foldAgent((await this.store.readAggregate('agent', agentId)).events);
    checkActive(state, agentId);
    await this.broker.ensureAccount(agentId);
    await this.broker.ensureConsumer(agentId);
    return { natsJwt: await this.broker.userJwt(agentId, state.natsPublicKey) };
  }
}
