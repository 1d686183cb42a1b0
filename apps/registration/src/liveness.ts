import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import {
  agentHeartbeat,
  agentSubjects,
  type AgentHeartbeat,
  type EventContext,
  type NewEvent,
} from '#contracts';
import type { EventStore } from '#eventstore';
import type { HeartbeatRecorder } from '#messaging';
import type { Logger } from '#platform';
import {
  decideHeartbeat,
  decideLivenessTimeout,
  type AgentState,
  type AgentStatus,
} from './domain/decider.js';
import { agentHandler } from './registration.commands.js';

interface Tracked {
  status: AgentStatus;
  /** Last heartbeat (ms since epoch) seen by this process. */
  lastSeen: number;
}

/** A transition's cause is the heartbeat that came, or the timeout that passed without one. */
const SYSTEM_CONTEXT = (correlationId: string, causationId: string): EventContext => ({
  actor: { kind: 'system', id: 'registration-liveness' },
  correlationId,
  causationId,
});

/**
 * Liveness is not history: heartbeats only update a last-seen time in memory. Events are appended on
 * transitions only — AgentCameOnline on the first heartbeat of an agent not known as online,
 * AgentWentOffline when an online agent has not beaten for `timeoutMs`. Every transition is decided
 * against the agent's aggregate with optimistic concurrency, so two replicas deciding the same
 * transition append it once.
 */
export class Liveness {
  private readonly agents = new Map<string, Tracked>();
  private readonly busy = new Set<string>();
  private subscription?: Subscription;
  private timer?: NodeJS.Timeout;
  private startedAt = Date.now();
  private invalidHeartbeats = 0;

  constructor(
    private readonly store: EventStore,
    private readonly connection: NatsConnection,
    private readonly options: { timeoutMs: number; checkMs: number },
    private readonly logger: Logger,
    /** Keeps each agent's last heartbeat where the API shows it (the log keeps only transitions). */
    private readonly recorder?: HeartbeatRecorder,
  ) {}

  /** Starts from the agents' states folded from the log; online agents get one timeout of grace. */
  start(initial: ReadonlyMap<string, AgentState>): void {
    this.startedAt = Date.now();
    for (const [agentId, state] of initial) {
      if (state.status !== 'absent')
        this.agents.set(agentId, { status: state.status, lastSeen: this.startedAt });
    }
    this.subscription = this.connection.subscribe(agentSubjects.allOutbound('heartbeat'), {
      callback: (error, message) => {
        if (error) {
          this.logger.warn('heartbeat subscription error', { error });
          return;
        }
        this.onHeartbeat(message.subject, message.data);
      },
    });
    this.timer = setInterval(() => void this.sweep(), this.options.checkMs);
  }

  enrolled(agentId: string): void {
    if (!this.agents.has(agentId)) this.agents.set(agentId, { status: 'enrolled', lastSeen: 0 });
  }

  deregistered(agentId: string): void {
    this.agents.set(agentId, { status: 'deregistered', lastSeen: 0 });
  }

  /** Last heartbeat of an agent seen by this process, if any. */
  lastSeen(agentId: string): Date | undefined {
    const tracked = this.agents.get(agentId);
    return tracked && tracked.lastSeen > 0 ? new Date(tracked.lastSeen) : undefined;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.subscription?.unsubscribe();
    while (this.busy.size > 0) await new Promise((resolve) => setTimeout(resolve, 20));
  }

  private onHeartbeat(subject: string, data: Uint8Array): void {
    // The broker lets an agent publish only under its own prefix, so the subject names the sender.
    const agentId = subject.split('.')[1] ?? '';
    let heartbeat: AgentHeartbeat | undefined;
    try {
      const parsed = agentHeartbeat.safeParse(JSON.parse(new TextDecoder().decode(data)));
      heartbeat = parsed.success ? parsed.data : undefined;
    } catch {
      heartbeat = undefined;
    }
    if (!heartbeat) {
      if (this.invalidHeartbeats++ % 100 === 0)
        this.logger.warn('ignoring malformed heartbeats', { agentId, subject });
      return;
    }
    const now = Date.now();
    const tracked = this.agents.get(agentId);
    if (tracked?.status === 'deregistered') return;
    if (tracked) tracked.lastSeen = now;
    else this.agents.set(agentId, { status: 'enrolled', lastSeen: now });
    this.recorder?.record(agentId, now, heartbeat.runtimes);
    if (!tracked || tracked.status !== 'online') {
      void this.transition(agentId, `heartbeat-${agentId}-${now}`, (state) =>
        decideHeartbeat(state, new Date(now)),
      );
    }
  }

  /** Marks online agents without a heartbeat for longer than the timeout as offline. */
  async sweep(now = Date.now()): Promise<void> {
    for (const [agentId, tracked] of this.agents) {
      if (tracked.status !== 'online' || now - tracked.lastSeen <= this.options.timeoutMs) continue;
      const lastSeen = new Date(tracked.lastSeen);
      await this.transition(agentId, `liveness-timeout-${agentId}-${tracked.lastSeen}`, (state) =>
        decideLivenessTimeout(state, lastSeen, new Date(now), this.options.timeoutMs),
      );
    }
  }

  private async transition(
    agentId: string,
    cause: string,
    decide: (state: AgentState) => NewEvent[],
  ): Promise<void> {
    if (this.busy.has(agentId)) return;
    this.busy.add(agentId);
    try {
      const outcome = await agentHandler.handle(this.store, { type: 'agent', id: agentId }, decide, {
        context: SYSTEM_CONTEXT(`liveness-${agentId}-${Date.now()}`, cause),
      });
      const tracked = this.agents.get(agentId);
      const state = outcome.newState;
      if (state.status === 'absent') this.agents.delete(agentId);
      else if (tracked) tracked.status = state.status;
      for (const event of outcome.events)
        this.logger.info(event.type === 'AgentCameOnline' ? 'agent online' : 'agent offline', { agentId });
    } catch (error) {
      this.logger.warn('liveness transition failed; will retry on the next heartbeat or sweep', {
        agentId,
        error,
      });
    } finally {
      this.busy.delete(agentId);
    }
  }
}
