/**
 * The check of an uploaded tarball before it is extracted (docs/plans/deployments.md §7.4), over what
 * GNU tar lists of it: `LC_ALL=C tar -tvzf <file> --quoting-style=escape --numeric-owner --absolute-names`.
 *
 * Why these options: `escape` prints a newline in a name as `\n` (and a backslash as `\\`, anything not
 * printable ASCII as `\ooo`), so one entry is one line; spaces stay as they are, which is why a line is
 * read from its fixed columns and the name is the rest of it. `--numeric-owner` keeps spaces out of the
 * owner column, `--absolute-names` shows the names as stored (tar would otherwise strip a leading `/`
 * on some versions, and the check would not see it). `LC_ALL=C` makes the escapes independent of the
 * agent's locale.
 *
 * Pure, so every refusal is specified on text; the caller runs tar.
 */

export const TAR_MAX_ENTRIES = 100_000;
export const TAR_MAX_UNPACKED_BYTES = 1024 ** 3;

export interface TarListingLimits {
  maxEntries: number;
  maxUnpackedBytes: number;
}

export interface TarEntry {
  type: 'file' | 'dir' | 'symlink' | 'hardlink';
  /** Normalized: relative, `/`-separated, no `.` components; `.` is the root. */
  name: string;
  size: number;
  /** For links: the target as stored. */
  target?: string;
}

export interface TarListing {
  entries: TarEntry[];
  unpackedBytes: number;
}

/** A tarball that must not be extracted; the message says which entry and why. */
export class TarRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TarRefused';
  }
}

// mode, owner/group, size (or major,minor), date, time, then the name (which may hold spaces).
const LINE = /^(\S{10}\S*) (\S+) +(\S+) (\S+) (\S+) (.*)$/;
const DATE = /^-?\d{1,}-\d{2}-\d{2}$/;
const TIME = /^\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/;
const SIMPLE_ESCAPES: Record<string, number> = {
  '\\': 0x5c,
  n: 0x0a,
  t: 0x09,
  r: 0x0d,
  a: 0x07,
  b: 0x08,
  f: 0x0c,
  v: 0x0b,
  '?': 0x3f,
  ' ': 0x20,
  '"': 0x22,
  "'": 0x27,
};

/** The name as stored, from tar's `escape` quoting (`\n`, `\\`, `\ooo` …); an unknown escape is refused. */
export function unescapeTarName(text: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const char = text[i]!;
    if (char !== '\\') {
      bytes.push(...Buffer.from(char, 'utf8'));
      continue;
    }
    const next = text[i + 1];
    const octal = /^[0-7]{3}/.exec(text.slice(i + 1, i + 4));
    if (octal) {
      bytes.push(parseInt(octal[0], 8) & 0xff);
      i += 3;
    } else if (next !== undefined && next in SIMPLE_ESCAPES) {
      bytes.push(SIMPLE_ESCAPES[next]!);
      i += 1;
    } else {
      throw new TarRefused(`cannot read the name ${JSON.stringify(text.slice(0, 200))} (escape at ${i})`);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

const shown = (name: string) => JSON.stringify(name.length > 200 ? `${name.slice(0, 200)}…` : name);

/** A member name as a relative path inside the tree, or the reason it is not one. */
function normalizedName(raw: string): string {
  if (raw === '') throw new TarRefused('an entry has an empty name');
  if (raw.includes('\0')) throw new TarRefused(`${shown(raw)}: a name with a NUL character`);
  if (raw.startsWith('/')) throw new TarRefused(`${shown(raw)}: an absolute name`);
  const parts = raw.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.includes('..')) throw new TarRefused(`${shown(raw)}: a name with a '..' component`);
  return parts.length === 0 ? '.' : parts.join('/');
}

/**
 * Where a link's target lands, resolved as text from the directory that holds the link (symlinks) or
 * the extraction root (hardlinks), with the paths it passes on the way; null when it leaves the tree.
 */
function resolvedInside(from: string, target: string): { lands: string; through: string[] } | null {
  const parts = from === '.' ? [] : from.split('/');
  const through: string[] = [];
  for (const part of target.split('/')) {
    if (part === '' || part === '.') continue;
    if (parts.length > 0) through.push(parts.join('/'));
    if (part === '..') {
      if (parts.length === 0) return null;
      parts.pop();
    } else parts.push(part);
  }
  return { lands: parts.length === 0 ? '.' : parts.join('/'), through };
}

const parentOf = (name: string) => (name.includes('/') ? name.slice(0, name.lastIndexOf('/')) : '.');

/** The name and target of a link line: refused when the separator occurs more than once (ambiguous). */
function splitLink(rest: string, separator: string, kind: string): [string, string] {
  const first = rest.indexOf(separator);
  if (first < 0) throw new TarRefused(`${shown(rest)}: a ${kind} without a target`);
  if (rest.indexOf(separator, first + 1) >= 0) {
    throw new TarRefused(
      `${shown(rest)}: a ${kind} whose name or target holds ${JSON.stringify(separator.trim())} (ambiguous)`,
    );
  }
  return [rest.slice(0, first), rest.slice(first + separator.length)];
}

/**
 * Reads the listing and refuses, each with a message naming the entry: absolute names, `..`
 * components, symlinks and hardlinks whose target is absolute or leaves the tree, devices, fifos,
 * sockets and any other special entry, an entry below a symlink of the archive (tar would write through
 * it), more than `maxEntries` entries, more than `maxUnpackedBytes` from the listed sizes, and lines
 * it cannot read. Returns the entries when the tarball may be extracted.
 */
export function checkTarListing(
  text: string,
  limits: TarListingLimits = { maxEntries: TAR_MAX_ENTRIES, maxUnpackedBytes: TAR_MAX_UNPACKED_BYTES },
): TarListing {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  if (lines.length > limits.maxEntries) {
    throw new TarRefused(`the tarball has ${lines.length} entries; at most ${limits.maxEntries} are allowed`);
  }
  const entries: TarEntry[] = [];
  const links: { name: string; kind: string; target: string; lands: string; through: string[] }[] = [];
  let unpackedBytes = 0;
  for (const [index, line] of lines.entries()) {
    const match = LINE.exec(line);
    if (!match || !DATE.test(match[4]!) || !TIME.test(match[5]!)) {
      throw new TarRefused(`cannot read line ${index + 1} of the listing: ${shown(line)}`);
    }
    const [, mode, , sizeText, , , rest] = match as unknown as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    const typeChar = mode[0]!;
    if (typeChar === 'c' || typeChar === 'b') {
      throw new TarRefused(`${shown(rest)}: a device file`);
    }
    if (typeChar === 'p') throw new TarRefused(`${shown(rest)}: a fifo`);
    if (typeChar === 's') throw new TarRefused(`${shown(rest)}: a socket`);
    if (!['-', 'd', 'l', 'h'].includes(typeChar)) {
      throw new TarRefused(
        `${shown(rest)}: an entry of type '${typeChar}' (only files, directories and links)`,
      );
    }
    if (!/^\d+$/.test(sizeText))
      throw new TarRefused(`${shown(rest)}: cannot read its size ${shown(sizeText)}`);
    const size = Number(sizeText);
    if (typeChar === 'l' || typeChar === 'h') {
      const [rawName, rawTarget] =
        typeChar === 'l' ? splitLink(rest, ' -> ', 'symlink') : splitLink(rest, ' link to ', 'hardlink');
      const name = normalizedName(unescapeTarName(rawName));
      const target = unescapeTarName(rawTarget);
      const kind = typeChar === 'l' ? 'symlink' : 'hardlink';
      if (target.startsWith('/')) throw new TarRefused(`${shown(name)}: a ${kind} to an absolute path`);
      const resolved = resolvedInside(typeChar === 'l' ? parentOf(name) : '.', target);
      if (resolved === null) throw new TarRefused(`${shown(name)}: a ${kind} that leaves the tree`);
      links.push({ name, kind, target, ...resolved });
      entries.push({ type: kind, name, size, target });
    } else {
      entries.push({
        type: typeChar === 'd' ? 'dir' : 'file',
        name: normalizedName(unescapeTarName(rest)),
        size,
      });
    }
    unpackedBytes += size;
    if (unpackedBytes > limits.maxUnpackedBytes) {
      throw new TarRefused(
        `the tarball unpacks to more than ${limits.maxUnpackedBytes} bytes (from the listed sizes)`,
      );
    }
  }
  // Tar follows a symlink it made when a later member's path goes through it, and a target read through
  // a symlink of the archive is no longer where its text says: nothing may go through one.
  const symlinks = new Set(entries.filter((entry) => entry.type === 'symlink').map((entry) => entry.name));
  if (symlinks.size === 0) return { entries, unpackedBytes };
  for (const entry of entries) {
    const parts = entry.name.split('/');
    for (let depth = 1; depth < parts.length; depth++) {
      const prefix = parts.slice(0, depth).join('/');
      if (symlinks.has(prefix)) {
        throw new TarRefused(`${shown(entry.name)}: is below the symlink ${shown(prefix)} of the tarball`);
      }
    }
  }
  for (const link of links) {
    const via = link.through.find((path) => symlinks.has(path));
    if (via !== undefined) {
      throw new TarRefused(`${shown(link.name)}: a ${link.kind} through the symlink ${shown(via)}`);
    }
    // A hardlink to a symlink is that symlink again, elsewhere: its relative target would mean another place.
    if (link.kind === 'hardlink' && symlinks.has(link.lands)) {
      throw new TarRefused(`${shown(link.name)}: a hardlink to the symlink ${shown(link.target)}`);
    }
  }
  return { entries, unpackedBytes };
}
