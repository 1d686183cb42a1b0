import type { Response } from 'express';
import { DomainError } from '#contracts';

/** What a Server-Sent Events response needs from its request. */
export interface SseRequest {
  response: Response;
  /** Checked again at every heartbeat: a revoked token ends the stream. */
  stillAuthorized: () => Promise<boolean>;
  /** When the token expires (epoch ms): the stream ends then. */
  expiresAt: number;
}

export interface SseHooks {
  /** What a heartbeat writes once the token passed its check again (null: nothing, e.g. the hook ended it). */
  heartbeat: () => string | null | Promise<string | null>;
  /** Releases what feeds the stream (its consumer), once, when the stream closes. */
  release: () => Promise<void>;
}

/**
 * One Server-Sent Events response, shared by the live updates and the deployments' logs: the headers,
 * writes that wait for a slow client, a heartbeat that checks the token again, the end at the token's
 * expiry, a last event saying why the server ends it, and one close (which releases the stream's source).
 */
export class SseChannel {
  private readonly abort = new AbortController();
  private heartbeat?: NodeJS.Timeout;
  private expiry?: NodeJS.Timeout;
  private closing?: Promise<void>;

  constructor(
    private readonly request: SseRequest,
    private readonly hooks: SseHooks,
  ) {}

  get response(): Response {
    return this.request.response;
  }

  get aborted(): boolean {
    return this.abort.signal.aborted;
  }

  /** Closes the stream when the client goes away. */
  watchClient(): void {
    this.response.on('close', () => void this.close('client left'));
  }

  /** The status and headers of an event stream, sent at once. */
  begin(): void {
    const { response } = this;
    response.status(200);
    response.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
    response.setHeader('Cache-Control', 'no-store, no-transform');
    response.setHeader('X-Accel-Buffering', 'no');
    response.socket?.setNoDelay(true);
    response.flushHeaders();
  }

  /** Heartbeats every `heartbeatMs`, and the end when the token expires. */
  startTimers(heartbeatMs: number): void {
    this.heartbeat = setInterval(() => void this.beat(), heartbeatMs);
    const untilExpiry = this.request.expiresAt - Date.now();
    this.expiry = setTimeout(
      () => void this.end('expired', { message: 'the session expired: sign in again' }),
      Math.max(0, Math.min(untilExpiry, 2 ** 31 - 1)),
    );
  }

  private async beat(): Promise<void> {
    if (this.aborted) return;
    let authorized = false;
    try {
      authorized = await this.request.stillAuthorized();
    } catch {
      authorized = false;
    }
    if (!authorized) {
      await this.end('unauthorized', { message: 'the token was revoked or expired: sign in again' });
      return;
    }
    const chunk = await this.hooks.heartbeat();
    if (chunk !== null) await this.write(chunk);
  }

  /** A last event telling the client why the stream ends, then the end. */
  async end(event: string, data: unknown): Promise<void> {
    if (this.aborted) return;
    await this.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    await this.close(event);
  }

  /** Writes, waiting for the socket when the client reads slowly (the consumer then waits too). */
  async write(chunk: string): Promise<void> {
    const { response } = this;
    if (this.aborted || response.writableEnded || response.destroyed) return;
    if (response.write(chunk)) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        response.off('drain', done);
        response.off('close', done);
        resolve();
      };
      response.on('drain', done);
      response.on('close', done);
    });
  }

  close(_reason: string): Promise<void> {
    this.closing ??= (async () => {
      this.abort.abort();
      clearInterval(this.heartbeat);
      clearTimeout(this.expiry);
      await this.hooks.release();
      if (!this.response.writableEnded) this.response.end();
    })();
    return this.closing;
  }
}

/** The open streams of one kind, at most `max` (else a 503 naming the setting), all ended at shutdown. */
export class OpenStreams<S extends { close(reason: string): Promise<void> }> {
  private readonly streams = new Set<S>();

  get size(): number {
    return this.streams.size;
  }

  /** Refuses a new stream when `max` are open. */
  admit(max: number, refusal: string): void {
    if (this.streams.size >= max) throw new DomainError('unavailable', refusal);
  }

  /** Counts `stream` as open while `run` runs. */
  async track(stream: S, run: () => Promise<void>): Promise<void> {
    this.streams.add(stream);
    try {
      await run();
    } finally {
      this.streams.delete(stream);
    }
  }

  closeAll(reason: string): Promise<unknown> {
    return Promise.allSettled([...this.streams].map((stream) => stream.close(reason)));
  }

  clear(): void {
    this.streams.clear();
  }
}
