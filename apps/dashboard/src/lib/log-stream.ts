import type { LogLine } from '#contracts';
import { API_BASE } from './api';
import { backoffDelay, SseParser } from './live';

/**
 * A deployment's output as Server-Sent Events from `GET /api/v1/deployments/{id}/logs`, read with fetch
 * for the same reason as the live stream (the token goes in the Authorization header, never the URL).
 * `event: lines` carries one stored batch (`id:` its stream sequence); after a drop the stream resumes
 * after the last batch seen (`Last-Event-ID`), so no line comes twice; `event: end` means the output is
 * over (the deployment finished), and nothing reconnects.
 */

export type LogStreamStatus = 'connecting' | 'streaming' | 'reconnecting' | 'ended' | 'refused';

export interface LogStreamState {
  status: LogStreamStatus;
  /** Why the stream is not streaming (the API's words when it gave any). */
  message: string | null;
}

export interface LogStreamHandlers {
  token(): string | null;
  onLines(lines: LogLine[]): void;
  onState(state: LogStreamState): void;
}

/** A message's JSON data; an unreadable one as empty (the API writes JSON, a proxy might not). */
function parsed<T extends object>(data: string): Partial<T> {
  try {
    return JSON.parse(data) as Partial<T>;
  } catch {
    return {};
  }
}

export class DeploymentLogStream {
  private abort?: AbortController;
  private retryTimer?: ReturnType<typeof setTimeout>;
  private lastId: string | null = null;
  private attempt = 0;
  private stopped = false;

  constructor(
    private readonly deploymentId: string,
    /** Lines to start with (the API's tail), when not resuming. */
    private readonly tail: number,
    private readonly handlers: LogStreamHandlers,
  ) {}

  start(): void {
    this.stopped = false;
    void this.connect();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.abort?.abort();
  }

  private async connect(): Promise<void> {
    const token = this.handlers.token();
    if (this.stopped || !token) return;
    const abort = new AbortController();
    this.abort = abort;
    this.handlers.onState({
      status: this.lastId === null && this.attempt === 0 ? 'connecting' : 'reconnecting',
      message: null,
    });
    const headers: Record<string, string> = { Authorization: `Bearer ${token}`, Accept: 'text/event-stream' };
    if (this.lastId !== null) headers['Last-Event-ID'] = this.lastId;
    let reason = 'the log stream ended';
    try {
      const response = await fetch(
        `${API_BASE}/deployments/${encodeURIComponent(this.deploymentId)}/logs?tail=${this.tail}`,
        { headers, signal: abort.signal, cache: 'no-store', credentials: 'omit' },
      );
      if (!response.ok || !response.body) {
        const body = (await response.json().catch(() => ({}))) as { message?: string };
        reason = body.message ?? `the API answered ${response.status}`;
        // Refused for good (no such deployment, not allowed, signed out): trying again changes nothing.
        if ([400, 401, 403, 404].includes(response.status)) {
          this.handlers.onState({ status: 'refused', message: reason });
          return;
        }
      } else {
        this.attempt = 0;
        this.handlers.onState({ status: 'streaming', message: null });
        const ended = await this.read(response.body);
        // Close the response the server may still hold open (after an error, or a stop mid-read).
        abort.abort();
        if (ended !== null) {
          this.handlers.onState({ status: 'ended', message: ended });
          return;
        }
      }
    } catch {
      if (this.stopped) return;
      reason = 'the connection to the API failed';
    }
    if (this.stopped) return;
    this.attempt += 1;
    this.handlers.onState({ status: 'reconnecting', message: reason });
    this.retryTimer = setTimeout(() => void this.connect(), backoffDelay(this.attempt));
  }

  /** Reads until the stream closes: the reason it ended for good, or null when it should reconnect. */
  private async read(body: ReadableStream<Uint8Array>): Promise<string | null> {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    const parser = new SseParser();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return null;
      for (const message of parser.push(decoder.decode(value, { stream: true }))) {
        if (message.event === 'lines') {
          if (message.id !== undefined) this.lastId = message.id;
          this.handlers.onLines(parsed<{ lines?: LogLine[] }>(message.data).lines ?? []);
        } else if (message.event === 'end') {
          return 'the deployment finished: its output is complete';
        } else if (message.event === 'expired' || message.event === 'unauthorized') {
          // The session is over; the live connection signs out.
          return parsed<{ message?: string }>(message.data).message ?? 'the session ended';
        } else if (message.event === 'error') {
          return null;
        }
      }
    }
  }
}
