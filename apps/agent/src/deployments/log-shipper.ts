import { randomBytes } from 'node:crypto';
import { copyFile, open, stat, truncate } from 'node:fs/promises';
import type { LogBatch, LogLine, Redactor } from '#contracts';
import { batches, LineAssembler } from './output.js';

/** One id per agent process: the relay and readers tell a restarted agent's batches apart. */
const BOOT = randomBytes(9).toString('base64url');

/**
 * Batch numbers are unique per agent process, not per shipper: the relay drops a batch whose
 * (deployment, boot, seq) it has seen, and one deployment's output goes through several shippers
 * (the worker's, then the supervisor's after every restart).
 */
let nextSeq = 0;

/** Lines queued past this are dropped (and counted): a flood cannot grow the agent's memory. */
const MAX_QUEUED_LINES = 5_000;

/**
 * A deployment's output on its way to the front: lines are queued and published as batches on
 * `agents.<id>.out.logs.<deploymentId>` every `intervalMs` (or sooner when 64 are waiting).
 */
export class LogShipper {
  private queue: LogLine[] = [];
  private dropped = 0;
  private timer?: NodeJS.Timeout;

  constructor(
    readonly deploymentId: string,
    private readonly publish: (topic: string, body: LogBatch) => void,
    private readonly intervalMs: number,
  ) {}

  push(lines: readonly LogLine[]): void {
    for (const line of lines) {
      if (this.queue.length >= MAX_QUEUED_LINES) this.dropped++;
      else this.queue.push(line);
    }
    if (this.queue.length >= 64) this.flush();
    else if (this.queue.length > 0 && !this.timer)
      this.timer = setTimeout(() => this.flush(), this.intervalMs).unref();
  }

  /** A line of the agent's own about this deployment ("health check passed after 3 probes"). */
  sys(text: string): void {
    this.push([{ t: new Date().toISOString(), s: 'sys', x: text }]);
  }

  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.dropped > 0) {
      this.queue.push({
        t: new Date().toISOString(),
        s: 'sys',
        x: `${this.dropped} lines dropped (too many at once)`,
      });
      this.dropped = 0;
    }
    const lines = this.queue;
    this.queue = [];
    for (const batch of batches(lines)) {
      try {
        this.publish(`logs.${this.deploymentId}`, { boot: BOOT, seq: nextSeq++, lines: batch });
      } catch {
        // Disconnected: the lines are lost from the live view, the process keeps its own files.
      }
    }
  }
}

/** How far a tail may fall behind a file, and where it starts again when it did. */
const MAX_LAG_BYTES = 8 * 1024 * 1024;
const SKIP_TO_BYTES = 1024 * 1024;

/** Output files are cut at this size (copy, then truncate: the process keeps its O_APPEND descriptor). */
export const ROTATE_BYTES = 10 * 1024 * 1024;

/**
 * Follows one output file of a process: new bytes become redacted lines for a shipper. Polled (the file
 * is written by a process that may have outlived an earlier agent), from the end when adopting.
 */
export class FileTail {
  private offset = 0;
  private timer?: NodeJS.Timeout;
  private reading = false;
  private readonly assembler: LineAssembler;

  constructor(
    private readonly path: string,
    stream: LogLine['s'],
    redactor: Redactor,
    private readonly sink: (lines: LogLine[]) => void,
    private readonly pollMs = 100,
  ) {
    this.assembler = new LineAssembler(redactor, stream);
  }

  /** `fromEnd`: skip what is already there (an adopted process's old output was shipped before). */
  async start(fromEnd = false): Promise<this> {
    if (fromEnd)
      this.offset = await stat(this.path).then(
        (s) => s.size,
        () => 0,
      );
    this.timer = setInterval(() => void this.read(), this.pollMs);
    this.timer.unref();
    return this;
  }

  /** Reads what is left and stops (the process ended, or the agent stops). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    while (this.reading) await new Promise((resolve) => setTimeout(resolve, 10));
    await this.read();
    const rest = this.assembler.end();
    if (rest.length > 0) this.sink(rest);
  }

  async read(): Promise<void> {
    if (this.reading) return;
    this.reading = true;
    try {
      const size = await stat(this.path).then(
        (s) => s.size,
        () => -1,
      );
      if (size < 0) return;
      if (size < this.offset) this.offset = 0; // cut by someone: start again at the top
      if (size - this.offset > MAX_LAG_BYTES) {
        // A process writing faster than its lines can be shipped: skip ahead (and say so) rather than
        // fall behind for ever; the file keeps everything until it is rotated.
        const skipped = size - this.offset - SKIP_TO_BYTES;
        this.offset = size - SKIP_TO_BYTES;
        this.sink([
          {
            t: new Date().toISOString(),
            s: 'sys',
            x: `${skipped} bytes of output skipped (written too fast to ship)`,
          },
        ]);
      }
      if (size > this.offset) {
        const handle = await open(this.path, 'r');
        try {
          const buffer = Buffer.alloc(Math.min(size - this.offset, 1024 * 1024));
          const { bytesRead } = await handle.read(buffer, 0, buffer.length, this.offset);
          this.offset += bytesRead;
          const lines = this.assembler.push(buffer.subarray(0, bytesRead));
          if (lines.length > 0) this.sink(lines);
        } finally {
          await handle.close();
        }
      }
      // Cut once read to the end, or regardless when the file grows twice as big while being read.
      if (this.offset >= ROTATE_BYTES && (this.offset === size || size >= 2 * ROTATE_BYTES)) {
        await copyFile(this.path, `${this.path}.1`);
        await truncate(this.path, 0);
        this.offset = 0;
      }
    } catch {
      // A file that went away with its release: nothing more to read.
    } finally {
      this.reading = false;
    }
  }
}
