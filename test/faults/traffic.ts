/**
 * Requests to the routes the churn never touches, through each front's HTTPS listener, all along the run:
 * each must answer 200 with the body of the route's app. Every request is kept with its start and end, so
 * failures can be told apart afterwards by whether they overlapped a kill of that front's HAProxy.
 */
import { requestReply } from '../harness/http.js';
import { sleep } from '../harness/processes.js';

export interface Probe {
  front: number;
  hostname: string;
  start: number;
  end: number;
  ok: boolean;
  detail?: string;
}

export interface UntouchedRoute {
  hostname: string;
  /** The body the route's app answers with (see httpAgent). */
  body: string;
}

export interface FrontTarget {
  /** HTTPS port of the front's HAProxy. */
  port: number;
}

export class Traffic {
  readonly failures: Probe[] = [];
  requests = 0;
  private stopped = false;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly fronts: FrontTarget[],
    private readonly routes: UntouchedRoute[],
    private readonly ca: string,
    private readonly intervalMs = 40,
  ) {}

  start(): void {
    // One sequential loop per front, each going round the untouched routes.
    this.loops = this.fronts.map((_, front) => this.loop(front));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }

  private async loop(front: number): Promise<void> {
    let index = front;
    while (!this.stopped) {
      const route = this.routes[index++ % this.routes.length]!;
      const probe = await once(this.fronts[front]!.port, route, this.ca);
      this.requests++;
      if (!probe.ok) this.failures.push({ ...probe, front });
      await sleep(this.intervalMs);
    }
  }
}

/** One HTTPS request through a front (SNI and Host set to the route's name, verified against `ca`). */
export async function once(
  port: number,
  route: UntouchedRoute,
  ca: string,
  timeoutMs = 5_000,
): Promise<Omit<Probe, 'front'>> {
  const start = Date.now();
  try {
    const reply = await requestReply(
      {
        https: true,
        port,
        path: '/',
        servername: route.hostname,
        headers: { host: route.hostname },
        ca,
      },
      timeoutMs,
    );
    const ok = reply.status === 200 && reply.body === route.body;
    return {
      hostname: route.hostname,
      start,
      end: Date.now(),
      ok,
      ...(ok ? {} : { detail: `${reply.status} ${reply.body.slice(0, 80)}` }),
    };
  } catch (error) {
    return {
      hostname: route.hostname,
      start,
      end: Date.now(),
      ok: false,
      detail: error instanceof Error ? error.message : String(error),
    };
  }
}
