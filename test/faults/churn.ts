/**
 * Route churn as real clients make it: each agent creates, changes and removes its own routes through the
 * API with its own token, one command at a time, each with a fresh Idempotency-Key. A command that was not
 * answered with a 2xx (the API or a service was killed, the broker was away, a timeout) is sent again with
 * the same key until it is; the ledger keeps every command and its attempts, for the checks against the
 * log afterwards.
 */
import { randomUUID } from 'node:crypto';
import { requestReply } from '../harness/http.js';
import { random } from '../routes/helpers.js';
import { sleep } from '../harness/processes.js';

export type CommandKind = 'create' | 'update' | 'remove';

export interface Command {
  seq: number;
  agentId: string;
  kind: CommandKind;
  key: string;
  routeId?: string;
  hostname?: string;
  /** Index of the agent's app the route points to after the command (create, update). */
  app?: number;
  port?: number;
  issuedAt: number;
  ackedAt?: number;
  /** HTTP statuses (or error messages) of every attempt, in order. */
  attempts: (number | string)[];
  /** Each attempt: when it was sent (ms since the epoch), how long it took, its status or error. */
  timeline: { at: number; ms: number; result: number | string }[];
  /** A 4xx other than 401: the command was refused (a retry must never be refused). */
  rejected?: { status: number; body: unknown };
}

export interface ChurnAgent {
  agentId: string;
  address: string;
  token(): Promise<string>;
  /** Ports of the agent's apps (real HTTP servers on its address). */
  apps: number[];
}

export interface ApiClient {
  baseUrl: string;
}

interface LiveRoute {
  routeId: string;
  hostname: string;
  app: number;
}

/** One API request with a bounded wait; network errors become a status string. */
async function call(
  baseUrl: string,
  method: string,
  path: string,
  token: string,
  key: string,
  body: unknown,
  timeoutMs: number,
): Promise<{ status: number; body: Record<string, unknown> } | { error: string }> {
  const url = new URL(`${baseUrl}/api/v1/${path}`);
  const text = body === undefined ? undefined : JSON.stringify(body);
  try {
    const reply = await requestReply(
      {
        method,
        host: url.hostname,
        port: url.port,
        path: `${url.pathname}${url.search}`,
        headers: {
          authorization: `Bearer ${token}`,
          'idempotency-key': key,
          ...(text === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: text,
      },
      timeoutMs,
    );
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(reply.body) as Record<string, unknown>;
    } catch {
      parsed = { raw: reply.body };
    }
    return { status: reply.status, body: parsed };
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) };
  }
}

export class Churn {
  readonly ledger: Command[] = [];
  private paused = false;
  private stopped = false;
  private abandoned = false;
  private resume: (() => void)[] = [];
  private workers: Promise<void>[] = [];
  private seq = 0;
  private readonly live = new Map<string, LiveRoute[]>();
  private inFlight = 0;

  constructor(
    private readonly baseUrl: string,
    private readonly agents: ChurnAgent[],
    private readonly domain: string,
    private readonly seed: number,
    private readonly options: { maxRoutesPerAgent: number; thinkMs: [number, number] } = {
      maxRoutesPerAgent: 8,
      thinkMs: [20, 150],
    },
  ) {}

  start(): void {
    this.workers = this.agents.map((agent, index) => this.work(agent, random(this.seed * 31 + index + 1)));
  }

  /** No new commands; commands already sent keep being retried until acknowledged. */
  pause(): void {
    this.paused = true;
  }

  unpause(): void {
    this.paused = false;
    for (const wake of this.resume.splice(0)) wake();
  }

  /** Commands sent and not acknowledged yet. */
  pending(): number {
    return this.inFlight;
  }

  /** Stops retrying: what is still unacknowledged stays so (for a run that did not recover). */
  abandon(): void {
    this.abandoned = true;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unpause();
    await Promise.all(this.workers);
  }

  /** The live routes as the acknowledged commands left them. */
  expected(): Map<string, { agentId: string; hostname: string; app: number }> {
    const out = new Map<string, { agentId: string; hostname: string; app: number }>();
    for (const [agentId, routes] of this.live)
      for (const route of routes)
        out.set(route.routeId, { agentId, hostname: route.hostname, app: route.app });
    return out;
  }

  private async work(agent: ChurnAgent, rng: () => number): Promise<void> {
    const routes: LiveRoute[] = [];
    this.live.set(agent.agentId, routes);
    let created = 0;
    while (!this.stopped) {
      if (this.paused) {
        await new Promise<void>((resolve) => this.resume.push(resolve));
        continue;
      }
      const roll = rng();
      let kind: CommandKind;
      if (routes.length === 0) kind = 'create';
      else if (routes.length >= this.options.maxRoutesPerAgent) kind = roll < 0.6 ? 'update' : 'remove';
      else kind = roll < 0.4 ? 'create' : roll < 0.75 ? 'update' : 'remove';
      const command: Command = {
        seq: ++this.seq,
        agentId: agent.agentId,
        kind,
        key: `faults-${this.seed}-${randomUUID()}`,
        issuedAt: Date.now(),
        attempts: [],
        timeline: [],
      };
      this.ledger.push(command);
      if (kind === 'create') {
        command.hostname = `c${this.seed % 10_000}-${agent.agentId}-${++created}.apps.${this.domain}`;
        command.app = Math.floor(rng() * agent.apps.length);
        command.port = agent.apps[command.app];
        const wait = rng() < 0.5 ? '?wait=active&timeout=2000' : '';
        const subdomain = command.hostname.slice(0, command.hostname.indexOf('.apps.'));
        const answer = await this.send(agent, command, 'POST', `routes${wait}`, {
          kind: 'http',
          subdomain,
          target: { host: agent.address, port: command.port },
        });
        if (answer) {
          command.routeId = answer.routeId as string;
          if (answer.hostname !== command.hostname)
            command.rejected = { status: 0, body: { unexpectedHostname: answer.hostname } };
          else routes.push({ routeId: command.routeId, hostname: command.hostname, app: command.app });
        }
      } else {
        const index = Math.floor(rng() * routes.length);
        const route = routes[index]!;
        command.routeId = route.routeId;
        command.hostname = route.hostname;
        if (kind === 'update') {
          const step = 1 + Math.floor(rng() * (agent.apps.length - 1));
          command.app = (route.app + step) % agent.apps.length;
          command.port = agent.apps[command.app];
          const answer = await this.send(agent, command, 'PATCH', `routes/${route.routeId}`, {
            target: { host: agent.address, port: command.port },
          });
          if (answer) route.app = command.app;
        } else {
          const answer = await this.send(agent, command, 'DELETE', `routes/${route.routeId}`, {
            reason: 'fault suite churn',
          });
          if (answer) routes.splice(index, 1);
        }
      }
      const [low, high] = this.options.thinkMs;
      await sleep(low + rng() * (high - low));
    }
  }

  /** Sends until a 2xx (returns its body) or a refusal (returns undefined, recorded in `rejected`). */
  private async send(
    agent: ChurnAgent,
    command: Command,
    method: string,
    path: string,
    body: unknown,
  ): Promise<Record<string, unknown> | undefined> {
    this.inFlight++;
    try {
      for (let attempt = 0; ; attempt++) {
        if (this.abandoned) return undefined;
        const token = await agent.token().catch(() => '');
        const sentAt = Date.now();
        const answer = await call(this.baseUrl, method, path, token, command.key, body, 12_000);
        command.timeline.push({
          at: sentAt,
          ms: Date.now() - sentAt,
          result: 'error' in answer ? answer.error : answer.status,
        });
        if ('error' in answer) {
          command.attempts.push(answer.error);
        } else {
          command.attempts.push(answer.status);
          if (answer.status >= 200 && answer.status < 300) {
            command.ackedAt = Date.now();
            return answer.body;
          }
          // 401: the agent may be refreshing its token; 408/429/5xx: a part is away or busy.
          const retryable = answer.status === 401 || answer.status === 408 || answer.status === 429;
          if (answer.status < 500 && !retryable) {
            command.rejected = { status: answer.status, body: answer.body };
            return undefined;
          }
        }
        await sleep(Math.min(1_000, 100 * 2 ** Math.min(attempt, 3)) * (0.5 + Math.random() / 2));
      }
    } finally {
      this.inFlight--;
    }
  }
}
