/**
 * Redaction of secret values in log lines (docs/plans/deployments.md §6.4). Pure and free of node:
 * imports: the agent redacts before anything leaves the VPS, the relay and the service redact again
 * with the same code, and the dashboard bundles `#contracts`.
 */

/** The API refuses more; a redactor built from more would mean a bug upstream, so it refuses too. */
export const MAX_REDACTED_SECRETS = 100;

/** Shorter values (and encodings) would match ordinary text and could be guessed from the gaps. */
export const MIN_REDACTED_LENGTH = 8;

interface Pattern {
  text: string;
  name: string;
}

const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Standard base64 of the UTF-8 bytes, with padding (no btoa: it only takes Latin-1). */
function base64Utf8(value: string): string {
  const bytes = new TextEncoder().encode(value);
  let out = '';
  for (let index = 0; index < bytes.length; index += 3) {
    const a = bytes[index];
    const b = index + 1 < bytes.length ? bytes[index + 1] : 0;
    const c = index + 2 < bytes.length ? bytes[index + 2] : 0;
    const triple = (a << 16) | (b << 8) | c;
    out += BASE64[(triple >> 18) & 63] + BASE64[(triple >> 12) & 63];
    out += index + 1 < bytes.length ? BASE64[(triple >> 6) & 63] : '=';
    out += index + 2 < bytes.length ? BASE64[triple & 63] : '=';
  }
  return out;
}

/**
 * The forms in which a value commonly reaches a log. Base64 of a value at an arbitrary offset inside a
 * larger base64 blob has other characters (alignment), so it cannot be matched and is not tried.
 */
function encodings(value: string): string[] {
  const base64 = base64Utf8(value);
  const unpadded = base64.replace(/=+$/, '');
  const urlSafe = base64.replace(/\+/g, '-').replace(/\//g, '_');
  const forms = [
    value,
    base64,
    unpadded,
    urlSafe,
    urlSafe.replace(/=+$/, ''),
    JSON.stringify(value).slice(1, -1),
  ];
  try {
    forms.push(encodeURIComponent(value));
  } catch {
    // A lone surrogate has no URI encoding; nothing can print it that way either.
  }
  if (/[\r\n]/.test(value)) forms.push(...value.split(/\r?\n|\r/));
  return forms;
}

/**
 * Which characters of one text are secret: `owners[i]` is the occurrence that covers character i (-1 for
 * none), `names[id]` its secret's name. The array is made on the first match, so clean lines cost no
 * allocation.
 */
class Coverage {
  owners: Int32Array | null = null;
  readonly names: string[] = [];

  constructor(readonly length: number) {}

  /**
   * Marks [start, end) for `name`. Characters already covered keep their (longer, earlier) owner and
   * only the rest is claimed, so partly overlapping values leave no fragment in clear. An occurrence
   * that touches one of the same secret joins it: a value repeated back to back becomes one marker.
   */
  claim(start: number, end: number, name: string): void {
    if (this.owners === null) this.owners = new Int32Array(this.length).fill(-1);
    const owners = this.owners;
    let id = -1;
    let free = false;
    for (let index = start; index < end; index++) {
      const owner = owners[index];
      if (owner === -1) free = true;
      else if (id === -1 && this.names[owner] === name) id = owner;
    }
    if (!free) return;
    if (id === -1) id = this.names.push(name) - 1;
    for (let index = start; index < end; index++) if (owners[index] === -1) owners[index] = id;
  }

  /** The text with each covered stretch of one occurrence replaced by `[secret:NAME]`. */
  render(text: string): string {
    const owners = this.owners;
    if (owners === null) return text;
    let out = '';
    let index = 0;
    while (index < text.length) {
      const owner = owners[index];
      const from = index;
      while (index < text.length && owners[index] === owner) index++;
      out += owner === -1 ? text.slice(from, index) : `[secret:${this.names[owner]}]`;
    }
    return out;
  }
}

/** Each redactor's patterns, longest first; kept out of the instance so that they never print with it. */
const patternsOf = new WeakMap<Redactor, readonly Pattern[]>();

/** Claims every occurrence in `text`, which starts at `offset` in the text `coverage` describes. */
function cover(patterns: readonly Pattern[], text: string, offset: number, coverage: Coverage): void {
  for (const { text: pattern, name } of patterns) {
    // Step by one, not by the pattern's length: a self-overlapping occurrence must be covered too.
    for (let at = text.indexOf(pattern); at !== -1; at = text.indexOf(pattern, at + 1))
      coverage.claim(offset + at, offset + at + pattern.length, name);
  }
}

export class Redactor {
  /** The longest pattern: windows over a long text must overlap by this much less one (0: nothing to redact). */
  readonly maxPatternLength: number;

  /** `secrets`: NAME → value. Values shorter than {@link MIN_REDACTED_LENGTH} are ignored. */
  constructor(secrets: Readonly<Record<string, string>>) {
    const entries = Object.entries(secrets);
    if (entries.length > MAX_REDACTED_SECRETS)
      throw new RangeError(`a redactor takes at most ${MAX_REDACTED_SECRETS} secrets, not ${entries.length}`);
    // Sorted by name so that a pattern shared by two secrets always gets the same name.
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const byText = new Map<string, string>();
    for (const [name, value] of entries) {
      if (value.length < MIN_REDACTED_LENGTH) continue;
      for (const form of encodings(value))
        if (form.length >= MIN_REDACTED_LENGTH && !byText.has(form)) byText.set(form, name);
    }
    // Longest first: a value that contains another is claimed whole under its own name.
    const patterns = [...byText]
      .map(([text, name]) => ({ text, name }))
      .sort((a, b) => b.text.length - a.text.length || (a.text < b.text ? -1 : 1));
    patternsOf.set(this, patterns);
    this.maxPatternLength = patterns.length > 0 ? patterns[0].text.length : 0;
  }

  /** The line with every known encoding of every value replaced by `[secret:NAME]`. */
  redact(line: string): string {
    const coverage = new Coverage(line.length);
    cover(patternsOf.get(this) ?? [], line, 0, coverage);
    return coverage.render(line);
  }
}

/**
 * Redacts a long text one window at a time (each `indexOf` pass reads at most `windowSize` characters).
 * Windows overlap by `maxPatternLength - 1`, so every occurrence lies whole inside at least one of them
 * and a value cannot hide across a cut; what any window covers stays covered.
 */
export function redactWindows(text: string, redactor: Redactor, windowSize: number): string {
  const overlap = Math.max(redactor.maxPatternLength - 1, 0);
  if (!Number.isInteger(windowSize) || windowSize <= overlap)
    throw new RangeError(`the window must be longer than the longest pattern less one (${overlap})`);
  const patterns = patternsOf.get(redactor) ?? [];
  if (patterns.length === 0) return text;
  const coverage = new Coverage(text.length);
  for (let start = 0; ; start += windowSize - overlap) {
    const end = Math.min(start + windowSize, text.length);
    cover(patterns, text.slice(start, end), start, coverage);
    if (end === text.length) break;
  }
  return coverage.render(text);
}

/**
 * Removes C0 controls but tab, DEL and C1 controls (0x80–0x9f): an app's output must not drive the
 * terminal of whoever reads its logs (escape sequences, CSI). Newlines are gone too, as each input is
 * one line. Strip before redacting, so that the characters removed cannot split a value.
 */
export function stripControlCharacters(line: string): string {
  let out = '';
  let from = 0;
  for (let index = 0; index < line.length; index++) {
    const code = line.charCodeAt(index);
    if ((code < 0x20 && code !== 0x09) || (code >= 0x7f && code <= 0x9f)) {
      out += line.slice(from, index);
      from = index + 1;
    }
  }
  return from === 0 ? line : out + line.slice(from);
}
