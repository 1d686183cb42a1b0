import type { Logger } from '#platform';
import { isTerminal, type LiveDeployment } from './domain/deployment.js';
import { systemContext, type DeploymentDecisions } from './decisions.js';
import type { Leases } from './leases.js';
import type { Verifier } from './verifier.js';

/** How long a request may wait for its second append before the supervisor makes it. */
const ACCEPT_AFTER_MS = 10_000;
/** How often a waiting deployment is announced to its agent again. */
const ASSIGN_EVERY_MS = 15_000;
/** Ids touched here are looked at for this long even before the projection lists them. */
const RECENT_MS = 60_000;

/**
 * Level-triggered supervision of every deployment in flight: the same look at start, after each event
 * and on a timer. Each deployment is folded again from the log before anything is decided, so a missed
 * event, a lagging projection or a crash between two appends is repaired on the next look.
 */
export class Supervisor {
  private readonly recent = new Map<string, number>();
  private readonly verifying = new Set<string>();
  private readonly aborts = new AbortController();
  private running?: Promise<void>;
  private again = false;

  constructor(
    private readonly commands: DeploymentDecisions,
    private readonly leases: Leases,
    private readonly verifier: Verifier,
    /** Ids of the deployments not yet terminal, from the projection. */
    private readonly inFlight: () => Promise<string[]>,
    private readonly logger: Logger,
  ) {}

  /** Look at this deployment soon (an event or a command touched it). */
  poke(deploymentId?: string): void {
    if (deploymentId) this.recent.set(deploymentId, Date.now());
    void this.tick();
  }

  /** One pass; a pass asked for while one runs runs right after it. */
  tick(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.pass()
      .catch((error: unknown) => this.logger.warn('supervision pass failed; will try again', { error }))
      .finally(() => {
        this.running = undefined;
        if (this.again && !this.aborts.signal.aborted) {
          this.again = false;
          void this.tick();
        }
      });
    return this.running;
  }

  async stop(): Promise<void> {
    this.aborts.abort();
    await this.running;
  }

  private async pass(): Promise<void> {
    const now = Date.now();
    for (const [id, at] of this.recent) if (now - at > RECENT_MS) this.recent.delete(id);
    const ids = new Set([...(await this.inFlight()), ...this.recent.keys()]);
    for (const id of ids) {
      if (this.aborts.signal.aborted) return;
      try {
        await this.supervise(id, Date.now());
      } catch (error) {
        this.logger.warn('could not supervise a deployment; will try again', { deploymentId: id, error });
      }
    }
  }

  private async supervise(deploymentId: string, now: number): Promise<void> {
    const state = await this.commands.deployment(deploymentId);
    if (state.status === 'absent') return;
    const app = await this.commands.app(state.appName);
    if (app.status !== 'live') return;
    if (isTerminal(state.status)) {
      // Ended, but the app still holds it: its outcome was not recorded (a crash between two appends).
      if (app.active === deploymentId || app.queued === deploymentId) {
        await this.commands.finish(deploymentId, deploymentId);
      }
      this.recent.delete(deploymentId);
      return;
    }
    if (app.accepted[deploymentId] === undefined) {
      if (now - Date.parse(state.requestedAt) > ACCEPT_AFTER_MS) {
        await this.commands.accept(deploymentId, systemContext(deploymentId));
      }
      return;
    }
    let lease = null;
    if (state.lease !== null) {
      try {
        lease = await this.leases.read(deploymentId);
      } catch (error) {
        // No evidence either way: leave it for the next look.
        this.logger.warn('could not read a lease; skipping', { deploymentId, error });
        return;
      }
    }
    if (await this.commands.enforceDeadlines(deploymentId, now, lease)) return;
    if (state.status === 'requested' && app.active === deploymentId) {
      const window = Math.floor(now / ASSIGN_EVERY_MS);
      if (window !== Math.floor((now - 1_000) / ASSIGN_EVERY_MS)) {
        await this.commands.assignAgain(state, window);
      }
    }
    if (state.status === 'switched') this.startVerification(state);
  }

  /** The front probes the app through HAProxy; one verification per deployment in this process. */
  private startVerification(state: LiveDeployment): void {
    if (this.verifying.has(state.deploymentId)) return;
    this.verifying.add(state.deploymentId);
    const health = state.config.healthCheck;
    void this.verifier
      .verify(
        {
          kind: state.config.source.type === 'database' ? 'tls-sni' : 'http',
          hostname: state.config.hostname,
          path: health.path,
          successes: health.successes,
          timeoutMs: state.limits.verify * 1000,
        },
        this.aborts.signal,
      )
      .then((result) =>
        this.aborts.signal.aborted ? undefined : this.commands.recordVerification(state.deploymentId, result),
      )
      .catch((error: unknown) =>
        this.logger.warn('verification failed to run', { deploymentId: state.deploymentId, error }),
      )
      .finally(() => {
        this.verifying.delete(state.deploymentId);
        this.poke(state.deploymentId);
      });
  }
}
