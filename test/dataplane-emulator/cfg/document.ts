/**
 * A haproxy.cfg held as lines, split into sections. Every line is kept verbatim and in order, so a file
 * that is parsed and serialised again is byte-identical; edits touch only the lines they change.
 */

/** Keywords that open a section (HAProxy 2.6 and a few newer ones, so such files still round-trip). */
const SECTION_KEYWORDS = new Set([
  'global',
  'defaults',
  'frontend',
  'backend',
  'listen',
  'userlist',
  'peers',
  'resolvers',
  'mailers',
  'program',
  'http-errors',
  'ring',
  'cache',
  'fcgi-app',
  'crt-store',
  'log-forward',
  'traces',
]);

export interface Section {
  type: string;
  /** '' for unnamed sections (global, an unnamed defaults). */
  name: string;
  /** The line that opens the section, verbatim. */
  header: string;
  /** The lines after the header up to the next section, verbatim (comments and blank lines included). */
  lines: string[];
}

export interface CfgDocument {
  /** Lines before the first section (the `# _version=N` comment lives here). */
  preamble: string[];
  sections: Section[];
  /** Whether the text ended with a newline. */
  finalNewline: boolean;
}

const VERSION_LINE = /^#\s*_version\s*=\s*(\d+)\s*$/;

/** Splits a configuration line into tokens, honouring quotes and backslash escapes (quotes kept). */
export function tokenize(line: string): string[] {
  const tokens: string[] = [];
  let current = '';
  let quote: '"' | "'" | null = null;
  let inToken = false;
  for (let index = 0; index < line.length; index++) {
    const char = line[index];
    if (quote) {
      current += char;
      if (char === '\\' && quote === '"' && index + 1 < line.length) {
        current += line[++index];
      } else if (char === quote) {
        quote = null;
      }
      continue;
    }
    if (char === '#') break;
    if (char === ' ' || char === '\t') {
      if (inToken) tokens.push(current);
      current = '';
      inToken = false;
      continue;
    }
    inToken = true;
    if (char === '\\' && index + 1 < line.length) {
      current += char + line[++index];
      continue;
    }
    if (char === '"' || char === "'") quote = char;
    current += char;
  }
  if (inToken) tokens.push(current);
  return tokens;
}

/** Removes one level of quoting and escapes from a token. */
export function unquote(token: string): string {
  let out = '';
  let quote: '"' | "'" | null = null;
  for (let index = 0; index < token.length; index++) {
    const char = token[index];
    if (quote) {
      if (char === quote) quote = null;
      else if (char === '\\' && quote === '"' && index + 1 < token.length) out += token[++index];
      else out += char;
    } else if (char === '"' || char === "'") {
      quote = char;
    } else if (char === '\\' && index + 1 < token.length) {
      out += token[++index];
    } else {
      out += char;
    }
  }
  return out;
}

/** Quotes a value when HAProxy would otherwise split or misread it. */
export function quoteIfNeeded(value: string): string {
  if (value !== '' && !/[\s"'\\#]/.test(value)) return value;
  return '"' + value.replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"';
}

export function parseConfig(text: string): CfgDocument {
  const finalNewline = text.endsWith('\n');
  const rawLines = text.split('\n');
  if (finalNewline) rawLines.pop();
  const document: CfgDocument = { preamble: [], sections: [], finalNewline };
  let current: Section | null = null;
  for (const line of rawLines) {
    const tokens = tokenize(line);
    const keyword = tokens[0];
    if (keyword !== undefined && SECTION_KEYWORDS.has(keyword) && !/^\s/.test(line)) {
      current = { type: keyword, name: tokens[1] ? unquote(tokens[1]) : '', header: line, lines: [] };
      document.sections.push(current);
    } else if (current) {
      current.lines.push(line);
    } else {
      document.preamble.push(line);
    }
  }
  return document;
}

export function serializeConfig(document: CfgDocument): string {
  const lines: string[] = [...document.preamble];
  for (const section of document.sections) lines.push(section.header, ...section.lines);
  const text = lines.join('\n');
  return document.finalNewline || lines.length === 0 ? text + '\n' : text;
}

export function cloneConfig(document: CfgDocument): CfgDocument {
  return {
    preamble: [...document.preamble],
    sections: document.sections.map((section) => ({ ...section, lines: [...section.lines] })),
    finalNewline: document.finalNewline,
  };
}

/** The `# _version=N` of the file; 1 when the line is missing (as client-native reads it). */
export function getVersion(document: CfgDocument): number {
  for (const line of document.preamble) {
    const match = VERSION_LINE.exec(line.trim());
    if (match) return Number(match[1]);
  }
  return 1;
}

export function setVersion(document: CfgDocument, version: number): void {
  const index = document.preamble.findIndex((line) => VERSION_LINE.test(line.trim()));
  if (index >= 0) document.preamble[index] = `# _version=${version}`;
  else document.preamble.unshift(`# _version=${version}`);
}

export function findSection(document: CfgDocument, type: string, name: string): Section | undefined {
  return document.sections.find((section) => section.type === type && section.name === name);
}

export function sectionsOf(document: CfgDocument, type: string): Section[] {
  return document.sections.filter((section) => section.type === type);
}

/** Appends a section, leaving one blank line between it and the one before. */
export function addSection(document: CfgDocument, type: string, name: string, body: string[]): Section {
  const last = document.sections.at(-1);
  const tail = last ? last.lines : document.preamble;
  if (tail.length > 0 && tail[tail.length - 1].trim() !== '') tail.push('');
  const section: Section = {
    type,
    name,
    header: `${type} ${name}`,
    lines: body.map((line) => `    ${line}`),
  };
  document.sections.push(section);
  document.finalNewline = true;
  return section;
}

export function removeSection(document: CfgDocument, section: Section): void {
  const index = document.sections.indexOf(section);
  if (index >= 0) document.sections.splice(index, 1);
}

/** The indentation used by the section's existing lines (four spaces when it has none). */
export function indentOf(section: Section): string {
  for (const line of section.lines) {
    if (line.trim() !== '') return /^\s*/.exec(line)?.[0] || '    ';
  }
  return '    ';
}
