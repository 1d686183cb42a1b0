import {
  LOG_BATCH_MAX_LINES,
  LOG_LINE_MAX_CHARACTERS,
  redactWindows,
  stripControlCharacters,
  type LogLine,
  type Redactor,
} from '#contracts';

/** A line longer than this is cut (after redaction, so a value cannot be half-kept across the cut). */
const PENDING_MAX_CHARACTERS = 64 * 1024;

/**
 * Bytes of a process's output → its lines, redacted before they leave the agent. A partial line waits for
 * the rest; a line that grows past 64 KiB is redacted in overlapping windows and cut, so neither a long
 * line nor a value split across reads gets through.
 */
export class LineAssembler {
  private pending = '';
  private readonly decoder = new TextDecoder('utf-8', { fatal: false });

  constructor(
    private readonly redactor: Redactor,
    private readonly stream: LogLine['s'],
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** The complete lines in `chunk` (and before it). */
  push(chunk: Uint8Array): LogLine[] {
    this.pending += this.decoder.decode(chunk, { stream: true });
    const parts = this.pending.split('\n');
    this.pending = parts.pop() ?? '';
    const lines = parts.map((part) => this.line(part));
    if (this.pending.length > PENDING_MAX_CHARACTERS) {
      lines.push(this.line(this.pending));
      this.pending = '';
    }
    return lines;
  }

  /** What is left when the process ended (a last line without a newline). */
  end(): LogLine[] {
    const rest = this.pending + this.decoder.decode();
    this.pending = '';
    return rest.length > 0 ? [this.line(rest)] : [];
  }

  private line(raw: string): LogLine {
    const text = stripControlCharacters(raw.endsWith('\r') ? raw.slice(0, -1) : raw);
    const window = Math.max(4096, this.redactor.maxPatternLength * 2);
    const redacted = redactWindows(text, this.redactor, window);
    const cut =
      redacted.length > LOG_LINE_MAX_CHARACTERS
        ? `${redacted.slice(0, LOG_LINE_MAX_CHARACTERS - 12)} [truncated]`
        : redacted;
    return { t: this.now().toISOString(), s: this.stream, x: cut };
  }
}

/** Lines grouped into the relay's batches: at most 256 lines and about 60 KiB each. */
export function batches(lines: readonly LogLine[], maxBytes = 60 * 1024): LogLine[][] {
  const out: LogLine[][] = [];
  let current: LogLine[] = [];
  let bytes = 0;
  for (const line of lines) {
    const size = line.x.length * 3 + 64;
    if (current.length > 0 && (current.length >= LOG_BATCH_MAX_LINES || bytes + size > maxBytes)) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(line);
    bytes += size;
  }
  if (current.length > 0) out.push(current);
  return out;
}
