import { API_BASE } from './api';

/**
 * The live connection: Server-Sent Events from `GET /api/v1/live`, read with fetch (EventSource cannot
 * send the Authorization header, and a token in the URL would end up in logs). It reconnects with
 * exponential backoff and jitter, resumes after the last event it saw (`Last-Event-ID`), and treats a
 * silence longer than two heartbeats as a dropped connection.
 */

export interface LiveChange {
  sequence: number;
  type: string;
  aggregate: { type: string; id: string };
  actor: { kind: string; id: string } | null;
  occurredAt: string | null;
  projected: boolean;
}

export interface LiveHello {
  logEnd: number;
  resumedFrom: number | null;
  reset: boolean;
  heartbeatMs: number;
}

export type LiveStatus = 'connecting' | 'live' | 'reconnecting' | 'stopped';

export interface LiveState {
  status: LiveStatus;
  /** Failed attempts in a row (0 while live). */
  attempt: number;
  /** When the next attempt starts (epoch ms), while reconnecting. */
  retryAt: number | null;
  lastSequence: number | null;
  /** Why the last connection ended, for the indicator's tooltip. */
  lastError: string | null;
  /** How many times the connection came back after a drop. */
  reconnects: number;
}

export interface LiveHandlers {
  token(): string | null;
  onChange(change: LiveChange): void;
  /** The stream (re)started without an exact resume: everything may have changed. */
  onResync(): void;
  onState(state: LiveState): void;
  /** The server refused the token or ended the session. */
  onUnauthorized(message: string): void;
}

export interface SseMessage {
  event: string;
  data: string;
  id?: string;
}

/** Incremental parser of the text/event-stream format (https://html.spec.whatwg.org/#event-stream-interpretation). */
export class SseParser {
  private buffer = '';
  private event = '';
  private data: string[] = [];
  private id?: string;

  push(text: string): SseMessage[] {
    this.buffer += text;
    const messages: SseMessage[] = [];
    let newline: number;
    while ((newline = this.buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = this.buffer.slice(0, newline);
      const length = this.buffer.startsWith('\r\n', newline) ? 2 : 1;
      this.buffer = this.buffer.slice(newline + length);
      if (line === '') {
        if (this.data.length > 0 || this.event) {
          messages.push({ event: this.event || 'message', data: this.data.join('\n'), id: this.id });
        }
        this.event = '';
        this.data = [];
        this.id = undefined;
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') this.event = value;
      else if (field === 'data') this.data.push(value);
      else if (field === 'id' && !value.includes('\0')) this.id = value;
    }
    return messages;
  }
}

const INITIAL_DELAY_MS = 1_000;
const MAX_DELAY_MS = 30_000;

/** Exponential backoff with jitter: 1 s, 2 s, 4 s … 30 s, each between half and all of it. */
export function backoffDelay(attempt: number, random = Math.random): number {
  const ceiling = Math.min(MAX_DELAY_MS, INITIAL_DELAY_MS * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

export class LiveConnection {
  private state: LiveState = {
    status: 'connecting',
    attempt: 0,
    retryAt: null,
    lastSequence: null,
    lastError: null,
    reconnects: 0,
  };
  private abort?: AbortController;
  private retryTimer?: ReturnType<typeof setTimeout>;
  private watchdog?: ReturnType<typeof setTimeout>;
  private silenceMs = 45_000;
  private silent = false;
  private stopped = false;
  private hadConnection = false;
  private readonly online = () => this.retryNow();

  constructor(private readonly handlers: LiveHandlers) {}

  start(): void {
    this.stopped = false;
    window.addEventListener('online', this.online);
    void this.connect();
  }

  stop(): void {
    this.stopped = true;
    window.removeEventListener('online', this.online);
    clearTimeout(this.retryTimer);
    clearTimeout(this.watchdog);
    this.abort?.abort();
    this.update({ status: 'stopped', retryAt: null });
  }

  /** Skips the wait before the next attempt (the "Retry now" button, the browser going online). */
  retryNow(): void {
    if (this.stopped || this.state.status !== 'reconnecting' || this.state.retryAt === null) return;
    clearTimeout(this.retryTimer);
    void this.connect();
  }

  private update(patch: Partial<LiveState>): void {
    this.state = { ...this.state, ...patch };
    this.handlers.onState(this.state);
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const token = this.handlers.token();
    if (!token) return;
    this.abort?.abort();
    const abort = new AbortController();
    this.abort = abort;
    this.update({ status: this.hadConnection ? 'reconnecting' : 'connecting', retryAt: null });
    const headers: Record<string, string> = {
      Authorization: `Bearer ${token}`,
      Accept: 'text/event-stream',
    };
    if (this.state.lastSequence !== null) headers['Last-Event-ID'] = String(this.state.lastSequence);
    let reason = 'the live stream ended';
    try {
      const response = await fetch(`${API_BASE}/live`, {
        headers,
        signal: abort.signal,
        cache: 'no-store',
        credentials: 'omit',
      });
      if (response.status === 401) {
        const body = (await response.json().catch(() => ({}))) as { message?: string };
        this.handlers.onUnauthorized(body.message ?? 'the token was refused');
        this.stop();
        return;
      }
      if (!response.ok || !response.body) {
        const body = (await response.json().catch(() => ({}))) as { message?: string };
        reason = body.message ?? `the API answered ${response.status}`;
      } else {
        reason = await this.read(response.body, abort);
      }
    } catch {
      if (abort.signal.aborted && this.stopped) return;
      reason = this.silent
        ? `no heartbeat from the API for ${Math.round(this.silenceMs / 1000)} s`
        : 'the connection to the API failed';
    } finally {
      clearTimeout(this.watchdog);
    }
    if (this.stopped) return;
    this.scheduleRetry(reason);
  }

  private scheduleRetry(reason: string): void {
    const attempt = this.state.attempt + 1;
    const delay = backoffDelay(attempt);
    this.update({ status: 'reconnecting', attempt, retryAt: Date.now() + delay, lastError: reason });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => void this.connect(), delay);
  }

  /** Reads the stream until it ends; returns why it ended. */
  private async read(body: ReadableStream<Uint8Array>, abort: AbortController): Promise<string> {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    const parser = new SseParser();
    this.armWatchdog(abort);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return 'the API closed the live stream';
      this.armWatchdog(abort);
      for (const message of parser.push(decoder.decode(value, { stream: true }))) {
        const ended = this.dispatch(message);
        if (ended) {
          abort.abort();
          return ended;
        }
      }
    }
  }

  private armWatchdog(abort: AbortController): void {
    clearTimeout(this.watchdog);
    this.silent = false;
    this.watchdog = setTimeout(() => {
      this.silent = true;
      abort.abort();
    }, this.silenceMs);
  }

  /** Handles one message; returns a reason when the stream must end. */
  private dispatch(message: SseMessage): string | null {
    let data: unknown;
    try {
      data = message.data ? JSON.parse(message.data) : {};
    } catch {
      return null;
    }
    switch (message.event) {
      case 'hello': {
        const hello = data as LiveHello;
        this.silenceMs = Math.max(5_000, hello.heartbeatMs * 2 + 5_000);
        const reconnected = this.hadConnection;
        this.hadConnection = true;
        this.update({
          status: 'live',
          attempt: 0,
          retryAt: null,
          lastError: null,
          reconnects: this.state.reconnects + (reconnected ? 1 : 0),
          lastSequence: hello.resumedFrom ?? hello.logEnd,
        });
        if (hello.resumedFrom === null) this.handlers.onResync();
        return null;
      }
      case 'change': {
        const change = data as LiveChange;
        this.update({ lastSequence: change.sequence });
        this.handlers.onChange(change);
        return null;
      }
      case 'heartbeat':
        return null;
      case 'expired':
      case 'unauthorized': {
        this.handlers.onUnauthorized((data as { message?: string }).message ?? 'the session ended');
        this.stop();
        return 'the session ended';
      }
      case 'error':
        return (data as { message?: string }).message ?? 'the live stream failed';
      default:
        return null;
    }
  }
}
