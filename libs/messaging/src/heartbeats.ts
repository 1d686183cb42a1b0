import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { AGENT_HEARTBEATS_BUCKET } from '#auth';
import type { Logger } from '#platform';

/** One agent's last heartbeat, as registration saw it. */
interface HeartbeatRecord {
  at: string;
  /** The runtimes the agent reported (absent: an agent that does not report them). */
  runtimes?: string[];
}

/** A deregistered agent's record goes away on its own after a week without heartbeats. */
const RECORD_MAX_AGE_MS = 7 * 24 * 3600 * 1000;

export function openHeartbeatsBucket(connection: NatsConnection): Promise<KV> {
  return new Kvm(connection).create(AGENT_HEARTBEATS_BUCKET, { history: 1, ttl: RECORD_MAX_AGE_MS });
}

/**
 * Writes agents' last heartbeats to a KV bucket: samples, not events (the log keeps only transitions).
 * At most one write per agent per `intervalMs`, so a fleet beating often costs the broker little.
 */
export class HeartbeatRecorder {
  private readonly written = new Map<string, number>();

  constructor(
    private readonly kv: KV,
    private readonly logger: Logger,
    private readonly intervalMs = 5_000,
  ) {}

  private readonly runtimes = new Map<string, string>();

  record(agentId: string, at: number, runtimes?: readonly string[]): void {
    const reported = runtimes ? [...runtimes].sort().join(',') : '';
    // What the agent can run changed (an engine came or went): written at once, whatever the interval.
    const changed = (this.runtimes.get(agentId) ?? '') !== reported;
    if (!changed && at - (this.written.get(agentId) ?? 0) < this.intervalMs) return;
    this.written.set(agentId, at);
    this.runtimes.set(agentId, reported);
    const record: HeartbeatRecord = {
      at: new Date(at).toISOString(),
      ...(runtimes ? { runtimes: [...runtimes] } : {}),
    };
    this.kv.put(agentId, JSON.stringify(record)).catch((error: unknown) => {
      // The next heartbeat writes again; the last-seen time is late by one interval meanwhile.
      this.written.delete(agentId);
      this.runtimes.delete(agentId);
      this.logger.warn('could not record a heartbeat', { agentId, error });
    });
  }
}

/**
 * Follows a KV bucket: its current values first, then every write and delete. Until the bucket exists
 * (the service that writes it creates it), opening is retried in the background.
 */
export class BucketWatch {
  private stopped = false;
  private watcher?: { stop(): void };

  constructor(
    private readonly connection: NatsConnection,
    private readonly bucket: string,
    private readonly onChange: (key: string, value: string | undefined) => void,
    private readonly logger: Logger,
    private readonly retryMs = 2_000,
  ) {}

  start(): void {
    void this.watch();
  }

  stop(): void {
    this.stopped = true;
    this.watcher?.stop();
  }

  private async watch(): Promise<void> {
    while (!this.stopped) {
      try {
        const kv = await new Kvm(this.connection).open(this.bucket);
        const entries = await kv.watch({ key: '>' });
        this.watcher = entries;
        for await (const entry of entries) {
          this.onChange(entry.key, entry.operation === 'PUT' ? entry.string() : undefined);
        }
      } catch (error) {
        if (this.stopped) return;
        this.logger.debug('waiting for a bucket', { bucket: this.bucket, error });
      }
      if (!this.stopped) await new Promise((resolve) => setTimeout(resolve, this.retryMs));
    }
  }
}

/** The agents' last heartbeats, kept current by watching the bucket registration writes. */
export class LastHeartbeats {
  private readonly last = new Map<string, HeartbeatRecord>();
  private readonly watch: BucketWatch;

  constructor(connection: NatsConnection, logger: Logger, retryMs = 2_000) {
    this.watch = new BucketWatch(
      connection,
      AGENT_HEARTBEATS_BUCKET,
      (key, value) => {
        const record = value === undefined ? undefined : parseRecord(value);
        if (record) this.last.set(key, record);
        else this.last.delete(key);
      },
      logger,
      retryMs,
    );
  }

  start(): void {
    this.watch.start();
  }

  stop(): void {
    this.watch.stop();
  }

  /** Nest calls this on shutdown, before the connection closes. */
  onApplicationShutdown(): void {
    this.stop();
  }

  /** The last heartbeat of an agent, if one was recorded. */
  of(agentId: string): string | undefined {
    return this.last.get(agentId)?.at;
  }

  /** The runtimes an agent reported last, or undefined when it reported none (an older agent). */
  runtimesOf(agentId: string): string[] | undefined {
    return this.last.get(agentId)?.runtimes;
  }
}

function parseRecord(text: string): HeartbeatRecord | undefined {
  try {
    const value = JSON.parse(text) as Partial<HeartbeatRecord>;
    if (typeof value.at !== 'string' || Number.isNaN(Date.parse(value.at))) return undefined;
    const runtimes =
      Array.isArray(value.runtimes) && value.runtimes.every((runtime) => typeof runtime === 'string')
        ? value.runtimes
        : undefined;
    return runtimes ? { at: value.at, runtimes } : { at: value.at };
  } catch {
    return undefined;
  }
}

/** The later of two optional ISO times. */
export function laterOf(a: string | null | undefined, b: string | null | undefined): string | null {
  if (!a) return b ?? null;
  if (!b) return a;
  return Date.parse(a) >= Date.parse(b) ? a : b;
}
