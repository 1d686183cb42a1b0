import { z } from 'zod';
import { DATABASE_ENGINES, DATABASE_ZONES, IMAGE_REFERENCE, type DatabaseEngine } from './events/app.js';
import { dnsLabel, hasControlCharacter, hostname, ipAddress, uuid } from './fields.js';

/**
 * What users may ask of the deployments service: apps, their sources, env, build and run settings, and
 * deployment requests (docs/plans/deployments.md §2). The events store what these produce
 * (`events/app.ts`); the rules live here so the API, the service, the agent and the dashboard apply the
 * same ones. Messages never repeat the value: env values and URLs can carry secrets.
 */

// ---------------------------------------------------------------------------------------------------
// Small helpers

type Issue = { message: string; path?: PropertyKey[] };

/** `is required` for a missing field, the type's own message otherwise. */
const typed = (message: string) => (issue: { input?: unknown }) =>
  issue.input === undefined ? 'is required' : message;

const text = (message = 'must be a string') => z.string({ error: typed(message) });

const integer = (min: number, max: number) => {
  const range = `must be a whole number from ${min} to ${max}`;
  return z
    .number({ error: typed(range) })
    .int(range)
    .min(min, range)
    .max(max, range);
};

/** A strict object: an unknown key is named, so the caller knows what to remove. */
const strict = <Shape extends z.ZodRawShape>(shape: Shape, known = Object.keys(shape)) =>
  z.strictObject(shape, {
    error: (issue) =>
      issue.code === 'unrecognized_keys'
        ? `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')}: ` +
          `remove ${issue.keys.length > 1 ? 'them' : 'it'} (known fields: ${known.join(', ')})`
        : typed('must be an object')(issue),
  });

const hasWhitespace = (value: string) => /\s/.test(value);

/** UTF-8 length without TextEncoder or Buffer: the limits are about bytes on the wire and on disk. */
function utf8Length(value: string): number {
  let bytes = 0;
  for (const char of value) {
    const code = char.codePointAt(0)!;
    bytes += code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
  }
  return bytes;
}

const KIB = 1024;

/**
 * POSIX lexical normalisation of slash-separated segments: drops empty and `.` segments and, when
 * `resolveParents`, applies `..` (returning null when it climbs above the start).
 */
function segmentsOf(path: string, resolveParents: boolean): string[] | null {
  const out: string[] = [];
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..' && resolveParents) {
      if (out.length === 0) return null;
      out.pop();
      continue;
    }
    out.push(segment);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Git sources

export interface GitUrlPolicy {
  /** Hosts `git://` may name (CL_DEPLOY_PLAIN_GIT_HOSTS): unauthenticated plaintext, for local daemons. */
  plainGitHosts: readonly string[];
  /** Absolute directories `file://` URLs must be in (CL_DEPLOY_FILE_ROOTS); the agent checks again. */
  fileRoots: readonly string[];
}

const GIT_URL_MAX = 2048;
const CREDENTIALS_IN_URL = 'credentials go in a secret: source.credentials';

/** An ssh user name: letters, digits, `_`, `.`, `-`, never starting with `-` (ssh would read an option). */
const SSH_USER = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

/** `[v6]`, an IPv4 literal or a lower-case host name, in canonical form; null if it is none of them. */
function canonicalHost(raw: string): string | null {
  if (raw.startsWith('[') && raw.endsWith(']')) {
    const inner = raw.slice(1, -1);
    if (!ipAddress.safeParse(inner).success || !inner.includes(':')) return null;
    // The URL parser writes IPv6 in its shortest form, so `[0:0::1]` and `[::1]` compare equal.
    return new URL(`http://${raw}/`).hostname;
  }
  const lower = raw.toLowerCase();
  return hostname.safeParse(lower).success || ipAddress.safeParse(lower).success ? lower : null;
}

/** A policy's host as it would appear in a URL (IPv6 bracketed), for comparison. */
function policyHost(host: string): string | null {
  const trimmed = host.trim();
  return canonicalHost(trimmed.includes(':') && !trimmed.startsWith('[') ? `[${trimmed}]` : trimmed);
}

interface Authority {
  user?: string;
  host: string;
  port?: number;
}

/** `[user@]host[:port]`, checked piece by piece; returns the message of the first problem. */
function parseAuthority(raw: string, transport: string): Authority | string {
  const at = raw.lastIndexOf('@');
  const userInfo = at >= 0 ? raw.slice(0, at) : undefined;
  const hostPort = at >= 0 ? raw.slice(at + 1) : raw;
  const match = /^(\[[^\]]*\]|[^:[\]]*)(?::([^:]*))?$/.exec(hostPort);
  const host = match ? canonicalHost(match[1]!) : null;
  if (!match || host === null) {
    return `the ${transport} host must be a host name or an IP address (never starting with '-')`;
  }
  let port: number | undefined;
  if (match[2] !== undefined) {
    port = /^\d{1,5}$/.test(match[2]) ? Number(match[2]) : 0;
    if (port < 1 || port > 65535) return `the ${transport} port must be a number from 1 to 65535`;
  }
  if (userInfo !== undefined) {
    if (userInfo.includes(':')) return CREDENTIALS_IN_URL;
    if (!SSH_USER.test(userInfo)) {
      return `the ${transport} user must be letters, digits, '_', '.' or '-' (never starting with '-')`;
    }
  }
  return { user: userInfo, host, port };
}

const formatAuthority = ({ user, host, port }: Authority, defaultPort: number) =>
  `${user === undefined ? '' : `${user}@`}${host}${port === undefined || port === defaultPort ? '' : `:${port}`}`;

function allowedTransports(policy: GitUrlPolicy): string {
  const transports = ['https://host/path', 'ssh://user@host/path (or user@host:path)'];
  if (policy.plainGitHosts.length > 0) transports.push(`git:// (only ${policy.plainGitHosts.join(', ')})`);
  if (policy.fileRoots.length > 0) transports.push(`file:///path (under ${policy.fileRoots.join(', ')})`);
  return `must be a git URL over ${transports.join(', ')}`;
}

/** The canonical URL (`{ url }`), or the message saying what is wrong with it. */
function canonicalGitUrl(
  raw: string,
  policy: GitUrlPolicy,
  roots: string[][],
  plainHosts: Set<string>,
): { url: string } | string {
  if (raw.length > GIT_URL_MAX) return `must be at most ${GIT_URL_MAX} characters`;
  // git would run a helper program (`ext::sh -c …`) or read a descriptor (`fd::`).
  if (/^[A-Za-z0-9+.-]+::/.test(raw))
    return `${allowedTransports(policy)}; <transport>:: helpers are refused`;
  if (hasControlCharacter(raw)) return 'must not contain control characters';
  if (hasWhitespace(raw)) return 'must not contain spaces: percent-encode them (%20)';
  if (raw.includes('\\')) return "must not contain backslashes: use '/'";
  if (raw.startsWith('-')) return `must not start with '-'; ${allowedTransports(policy)}`;

  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(raw)?.[1]?.toLowerCase();
  const rest = scheme === undefined ? '' : raw.slice(raw.indexOf('://') + 3);

  if (scheme === 'https') {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      return 'must be a valid https URL: https://host/path';
    }
    if (url.password !== '') return CREDENTIALS_IN_URL;
    if (url.search !== '' || url.hash !== '' || raw.includes('?') || raw.includes('#')) {
      return 'must not have a query (?) or a fragment (#)';
    }
    if (canonicalHost(url.hostname) === null) return 'the https host must be a host name or an IP address';
    if (url.pathname === '/' || url.pathname === '') return 'must name a repository: https://host/path';
    return { url: url.href };
  }

  if (scheme === 'ssh') {
    const slash = rest.indexOf('/');
    if (slash < 0 || rest.length === slash + 1) return 'must name a repository: ssh://user@host/path';
    const authority = parseAuthority(rest.slice(0, slash), 'ssh');
    if (typeof authority === 'string') return authority;
    if (authority.user === undefined) return 'must name the ssh user: ssh://user@host/path';
    return { url: `ssh://${formatAuthority(authority, 22)}${rest.slice(slash)}` };
  }

  if (scheme === 'git') {
    const slash = rest.indexOf('/');
    if (slash < 0 || rest.length === slash + 1) return 'must name a repository: git://host/path';
    const authority = parseAuthority(rest.slice(0, slash), 'git://');
    if (typeof authority === 'string') return authority;
    if (authority.user !== undefined) return 'git:// takes no user: it is unauthenticated';
    if (!plainHosts.has(authority.host)) {
      return policy.plainGitHosts.length === 0
        ? 'git:// is not allowed here (unauthenticated plaintext): use https:// or ssh://'
        : `git:// is unauthenticated plaintext, allowed only for ${policy.plainGitHosts.join(', ')}: ` +
            'use https:// or ssh://';
    }
    return { url: `git://${formatAuthority(authority, 9418)}${rest.slice(slash)}` };
  }

  if (scheme === 'file') {
    if (!rest.startsWith('/')) return 'must be file:///absolute/path (no host)';
    // git may decode %2e%2e into `..`: refuse encodings rather than guess which layer decodes them.
    if (rest.includes('%')) return 'file:// paths must not be percent-encoded: write the path as it is';
    const segments = segmentsOf(rest, true);
    if (segments === null) return "must not climb above '/' with '..'";
    const inside = roots.some(
      (root) => root.length <= segments.length && root.every((segment, index) => segments[index] === segment),
    );
    if (!inside) {
      return policy.fileRoots.length === 0
        ? 'file:// is not allowed here: use https:// or ssh://'
        : `file:// paths must be under ${policy.fileRoots.join(', ')}`;
    }
    return { url: `file:///${segments.join('/')}` };
  }

  if (scheme === 'http') return `http:// is plaintext: use https://; ${allowedTransports(policy)}`;
  if (scheme !== undefined) return allowedTransports(policy);

  // scp-like `user@host:path` (git's rule: a ':' before any '/'); anything else is a local path.
  const scp = /^([^@/]+)@(\[[^\]/]*\]|[^:/[\]]*):(.*)$/.exec(raw);
  if (!scp) return `${allowedTransports(policy)}; plain local paths are refused`;
  const authority = parseAuthority(`${scp[1]}@${scp[2]}`, 'ssh');
  if (typeof authority === 'string') return authority;
  const path = scp[3]!;
  if (path === '' || path === '/') return 'must name a repository: user@host:path';
  if (path.startsWith('-')) return "the repository path must not start with '-'";
  return { url: `ssh://${formatAuthority(authority, 22)}${path.startsWith('/') ? '' : '/'}${path}` };
}

/**
 * A git source URL, transformed to its canonical form (`user@host:path` becomes `ssh://user@host/path`,
 * hosts lower case, default ports dropped, file paths normalised).
 */
export function gitUrl(policy: GitUrlPolicy) {
  const roots = policy.fileRoots.map((root) => {
    const segments = root.startsWith('/') ? segmentsOf(root, true) : null;
    if (segments === null) throw new Error(`file roots must be absolute paths (got ${JSON.stringify(root)})`);
    return segments;
  });
  const plainHosts = new Set(
    policy.plainGitHosts.map((host) => {
      const canonical = policyHost(host);
      if (canonical === null) throw new Error(`plain git hosts must be host names or IP addresses: ${host}`);
      return canonical;
    }),
  );
  return text().transform((raw, context) => {
    const result = canonicalGitUrl(raw, policy, roots, plainHosts);
    if (typeof result === 'string') {
      context.addIssue({ code: 'custom', message: result });
      return z.NEVER;
    }
    // The scp rewrite and the URL parser's encoding can lengthen it; the stored URL is bounded too.
    if (result.url.length > GIT_URL_MAX) {
      context.addIssue({
        code: 'custom',
        message: `must be at most ${GIT_URL_MAX} characters in canonical form`,
      });
      return z.NEVER;
    }
    return result.url;
  });
}

const COMMIT = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

/** git check-ref-format's rules, each with its own message (the value is not repeated). */
function refProblem(ref: string): string | null {
  if (ref.length === 0) return 'must not be empty';
  if (ref.length > 200) return 'must be at most 200 characters';
  // git would read `--upload-pack=…` as an option.
  if (ref.startsWith('-')) return "must not start with '-'";
  if (COMMIT.test(ref)) return null;
  if (hasControlCharacter(ref)) return 'must not contain control characters';
  if (hasWhitespace(ref)) return 'must not contain spaces';
  if (/[~^:?*[\\]/.test(ref)) return 'must not contain any of ~ ^ : ? * [ \\';
  if (ref.includes('..')) return "must not contain '..'";
  if (ref.includes('@{')) return "must not contain '@{'";
  if (ref === '@') return "must not be '@'";
  if (ref.startsWith('/') || ref.endsWith('/') || ref.includes('//')) {
    return "must not start or end with '/' or contain '//'";
  }
  if (ref.endsWith('.')) return "must not end with '.'";
  for (const component of ref.split('/')) {
    if (component.startsWith('.')) return "no part between '/' may start with '.'";
    if (component.endsWith('.lock')) return "no part between '/' may end with '.lock'";
  }
  return null;
}

/** A branch, tag or full ref name (git check-ref-format), or a commit: 40 or 64 lower-case hex. */
export const gitRef = text().superRefine((ref, context) => {
  const problem = refProblem(ref);
  if (problem !== null) context.addIssue({ code: 'custom', message: `${problem} (a branch, tag or commit)` });
});

// ---------------------------------------------------------------------------------------------------
// Environment

/** Names the platform sets or that the process runtime depends on. */
export const RESERVED_ENV_NAMES = ['HOST', 'HOME', 'TMPDIR', 'USER', 'PATH'] as const;
const RESERVED_PREFIX = 'CLOUDLUNACY_';

export const envName = text().superRefine((name, context) => {
  if (!/^[A-Z_][A-Z0-9_]{0,127}$/.test(name)) {
    context.addIssue({
      code: 'custom',
      message: 'must be 1 to 128 of A-Z, 0-9 and _, not starting with a digit (an environment variable name)',
    });
  } else if ((RESERVED_ENV_NAMES as readonly string[]).includes(name)) {
    context.addIssue({
      code: 'custom',
      message: `is reserved (${RESERVED_ENV_NAMES.join(', ')} are set by the platform): choose another name`,
    });
  } else if (name.startsWith(RESERVED_PREFIX)) {
    context.addIssue({
      code: 'custom',
      message: `${RESERVED_PREFIX}* names are reserved: choose another name`,
    });
  }
});

export const sourceCredentials = strict({
  /** The name of an app secret holding the token or key, never the value. */
  secret: envName,
  kind: z.enum(['https-token', 'ssh-key'], { error: typed('must be https-token or ssh-key') }),
  knownHosts: text()
    .max(4 * KIB, 'must be at most 4096 characters')
    .refine((value) => !value.includes('\0'), { message: 'must not contain NUL characters' })
    .optional(),
});

export function sourceInput(policy: GitUrlPolicy) {
  const git = strict({
    type: z.literal('git'),
    url: gitUrl(policy),
    ref: gitRef.optional(),
    credentials: sourceCredentials.optional(),
  }).superRefine((source, context) => {
    const credentials = source.credentials;
    if (credentials === undefined || typeof source.url !== 'string') return;
    const transport = source.url.slice(0, source.url.indexOf(':'));
    const wanted = transport === 'https' ? 'https-token' : transport === 'ssh' ? 'ssh-key' : null;
    if (wanted === null) {
      context.addIssue({
        code: 'custom',
        path: ['credentials'],
        message: `${transport}:// URLs take no credentials: remove them or use https:// or ssh://`,
      });
    } else if (credentials.kind !== wanted) {
      context.addIssue({
        code: 'custom',
        path: ['credentials', 'kind'],
        message: `must be ${wanted} for a ${transport}:// URL`,
      });
    } else if (credentials.knownHosts !== undefined && wanted !== 'ssh-key') {
      context.addIssue({
        code: 'custom',
        path: ['credentials', 'knownHosts'],
        message: 'is for ssh-key credentials only: remove it',
      });
    }
  });
  // Uploads are made per deployment (POST /apps/{name}/sources): the request names the upload.
  const upload = strict({ type: z.literal('upload') });
  const image = strict({
    type: z.literal('image'),
    image: text()
      .max(255, 'must be at most 255 characters')
      .regex(
        IMAGE_REFERENCE,
        'must be an image reference such as registry.example.com/team/app:1.2 (lower case, no leading -)',
      ),
  });
  const database = strict({
    type: z.literal('database'),
    engine: z.enum(DATABASE_ENGINES, { error: typed(`must be one of ${DATABASE_ENGINES.join(', ')}`) }),
  });
  return z.discriminatedUnion('type', [git, upload, image, database], {
    error: typed('type must be git, upload, image or database'),
  });
}

const ENV_VALUE_MAX = 32 * KIB;
const PLAIN_ENV_TOTAL_MAX = 48 * KIB;
const SECRET_VALUE_MIN = 8;

const envEntry = strict({
  name: envName,
  value: text()
    .refine((value) => utf8Length(value) <= ENV_VALUE_MAX, { message: 'must be at most 32 KiB (UTF-8)' })
    .refine((value) => !value.includes('\0'), {
      message: 'must not contain NUL characters (a process environment cannot hold them)',
    }),
  /** A secret's value goes to the secret store, never to the log; it is redacted from logs. */
  secret: z.boolean({ error: 'must be true or false' }).optional(),
});
type EnvEntryValue = z.output<typeof envEntry>;

/** The rules across entries: unique names, the port variable, secret minimum, plain total. */
function checkEnv(entries: readonly unknown[], portEnv: string | null, addIssue: (issue: Issue) => void) {
  const seen = new Map<string, number>();
  let plainBytes = 0;
  let overflowed = false;
  entries.forEach((raw, index) => {
    const entry = raw as Partial<EnvEntryValue> | null;
    if (entry === null || typeof entry !== 'object') return;
    if (typeof entry.name === 'string') {
      const first = seen.get(entry.name);
      if (first !== undefined) {
        addIssue({
          path: [index, 'name'],
          message: `is already given by entry ${first}: give each name once`,
        });
      } else {
        seen.set(entry.name, index);
      }
      if (portEnv !== null && entry.name === portEnv) {
        addIssue({
          path: [index, 'name'],
          message: `is the app's port variable (${portEnv}): the platform sets it to the port it chose`,
        });
      }
    }
    if (typeof entry.value !== 'string') return;
    if (entry.secret === true) {
      if (entry.value.length < SECRET_VALUE_MIN) {
        addIssue({
          path: [index, 'value'],
          message: 'secret values must be at least 8 characters so that they can be removed from logs',
        });
      }
      return;
    }
    plainBytes += utf8Length(entry.value);
    if (plainBytes > PLAIN_ENV_TOTAL_MAX && !overflowed) {
      overflowed = true;
      addIssue({
        path: [index, 'value'],
        message: 'plain values together must be at most 48 KiB: shorten them or make large ones secrets',
      });
    }
  });
}

const envList = z.array(envEntry, { error: typed('must be a list of { name, value, secret? }') }).max(100, {
  message: 'must have at most 100 entries',
});

/** An app's env: `portEnv` is the variable the platform sets to the chosen port (refused as an entry). */
export function envEntries(portEnv = 'PORT') {
  return envList.superRefine((entries, context) =>
    checkEnv(entries, portEnv, (issue) => context.addIssue({ code: 'custom', ...issue })),
  );
}

// ---------------------------------------------------------------------------------------------------
// Health, build, drain, limits

const healthPath = text()
  .min(1, "must start with '/'")
  .max(512, 'must be at most 512 characters')
  .superRefine((path, context) => {
    const problem = !path.startsWith('/')
      ? "must start with '/'"
      : hasControlCharacter(path)
        ? 'must not contain control characters'
        : hasWhitespace(path)
          ? 'must not contain spaces: percent-encode them (%20)'
          : // `//host` or `/\host` would make a probe URL name another host.
            path.startsWith('//') || path.includes('\\')
            ? "must be a path on the app: not starting with '//', without backslashes"
            : null;
    if (problem !== null) context.addIssue({ code: 'custom', message: problem });
  });

export const healthCheckInput = strict({
  path: healthPath.default('/'),
  /** The whole gate: from the start until enough successes. */
  timeoutSeconds: integer(1, 600).default(60),
  /** Wait after the start before the first probe. */
  graceSeconds: integer(0, 300).default(0),
  /** Successes in a row. */
  successes: integer(1, 10).default(2),
});

/** A path inside the source, normalised (`./a//b/` → `a/b`; `.` is the source root). */
export const relativeRoot = text()
  .max(512, 'must be at most 512 characters')
  .transform((raw, context) => {
    const fail = (message: string) => {
      context.addIssue({ code: 'custom', message });
      return z.NEVER;
    };
    if (hasControlCharacter(raw)) return fail('must not contain control characters');
    if (raw.startsWith('/')) return fail("must be relative to the source root (not starting with '/')");
    const segments = segmentsOf(raw, false)!;
    if (segments.includes('..')) return fail("must stay inside the source: no '..'");
    if (segments.length === 0) {
      return /^[./]+$/.test(raw)
        ? '.'
        : fail("must not be empty: give a directory, or '.' for the source root");
    }
    return segments.join('/');
  });

/**
 * A shell command line. Control characters are refused (not only NUL and newlines): the stored events
 * and logs keep commands as one line of text.
 */
const command = text()
  .min(1, 'must not be empty')
  .max(1000, 'must be at most 1000 characters')
  .superRefine((value, context) => {
    if (value.includes('\0') || value.includes('\n') || value.includes('\r')) {
      context.addIssue({
        code: 'custom',
        message: 'must be one line (no NUL or newline): join steps with && or list them as build commands',
      });
    } else if (hasControlCharacter(value)) {
      context.addIssue({ code: 'custom', message: 'must not contain control characters (tabs included)' });
    } else if (value.length > 0 && value.trim() === '') {
      context.addIssue({ code: 'custom', message: 'must not be blank' });
    }
  });

const buildCommands = z
  .array(command, { error: typed('must be a list of commands') })
  .max(20, 'must have at most 20 commands');

/** App-level build settings: each one given wins over `cloudlunacy.json`. `install: null` skips install. */
export const buildOverrides = strict({
  root: relativeRoot.optional(),
  install: command.nullable().optional(),
  build: buildCommands.optional(),
  start: command.optional(),
  portEnv: envName.optional(),
  timeoutSeconds: integer(1, 3600).optional(),
});

/** `cloudlunacy.json` at the source root (read on the agent). */
export const buildManifest = strict({
  root: relativeRoot.optional(),
  install: command.nullable().optional(),
  build: buildCommands.optional(),
  start: command.optional(),
  portEnv: envName.optional(),
  healthCheck: strict({ path: healthPath }).optional(),
});

export const drainInput = strict({
  /** Between moving traffic away and stopping the old process: lets connections in flight finish. */
  delaySeconds: integer(0, 300).default(1),
  /** From SIGTERM to SIGKILL. */
  stopTimeoutSeconds: integer(1, 300).default(10),
});

export const limitsInput = strict({
  memoryMb: integer(16, 65536).default(512),
  processes: integer(8, 4096).default(256),
});

/** The current release and the ones kept for rollback. */
export const releasesKept = integer(1, 10).default(3);

// ---------------------------------------------------------------------------------------------------
// Apps

export const appName = dnsLabel;

const APPS_ZONE = 'apps';

/**
 * `<one label>.apps.<domain>`: the front's wildcard certificate `*.apps.<domain>` covers one label. The same
 * rule as http routes (apps/routing/src/domain/names.ts), which cannot be imported from here.
 */
export function appHostname(domain: string) {
  if (!hostname.safeParse(domain).success) throw new Error(`the domain must be a host name: ${domain}`);
  const suffix = `.${APPS_ZONE}.${domain}`;
  return text().superRefine((name, context) => {
    const sub = name.endsWith(suffix) ? name.slice(0, -suffix.length) : null;
    if (sub === null || !dnsLabel.safeParse(sub).success || !hostname.safeParse(name).success) {
      context.addIssue({
        code: 'custom',
        message: `must be <name>${suffix}: one DNS label (the wildcard certificate covers one) at most 253 characters in all`,
      });
    }
  });
}

/**
 * A database's SNI name: `<db>.<agentId>.<zone>.<domain>` by default, or any name in the agent's own
 * namespace of the engine's zone (routing checks the namespace again, and the CA signs only it).
 */
export function databaseHostname(
  name: string,
  agentId: string,
  engine: DatabaseEngine,
  domain: string,
): string {
  return `${name}.${agentId}.${DATABASE_ZONES[engine]}.${domain}`;
}

function checkDatabaseHostname(
  name: string,
  agentId: string | undefined,
  engine: DatabaseEngine,
  domain: string,
): string | null {
  const suffix = `.${DATABASE_ZONES[engine]}.${domain}`;
  const labels = name.endsWith(suffix) ? name.slice(0, -suffix.length).split('.') : [];
  const shape = `<agentId>${suffix} or <name>.<agentId>${suffix}`;
  if (labels.length < 1 || labels.length > 2 || !labels.every((label) => dnsLabel.safeParse(label).success))
    return `a ${engine} database's host name must be ${shape}`;
  if (!hostname.safeParse(name).success) return 'must be a host name of at most 253 characters';
  if (agentId !== undefined && labels[labels.length - 1] !== agentId)
    return `must be in the agent's own namespace: ${agentId}${suffix} or <name>.${agentId}${suffix}`;
  return null;
}

/** The settings an app has besides its identity, shared by create and configure. */
function settingsFields(policy: GitUrlPolicy) {
  return {
    source: sourceInput(policy),
    env: envList,
    healthCheck: healthCheckInput,
    build: buildOverrides,
    drain: drainInput,
    limits: limitsInput,
    releasesKept,
  };
}

type Settings = { env?: unknown[]; build?: { portEnv?: unknown } };

/** Env against the port variable of the build settings given (PORT when none is). */
function checkSettingsEnv(value: Settings, context: z.RefinementCtx) {
  if (!Array.isArray(value.env)) return;
  const portEnv = typeof value.build?.portEnv === 'string' ? value.build.portEnv : 'PORT';
  checkEnv(value.env, portEnv, (issue) =>
    context.addIssue({ code: 'custom', ...issue, path: ['env', ...(issue.path ?? [])] }),
  );
}

/** `POST /api/v1/apps`: the identity and the settings, with defaults applied (hostname included). */
export function createAppInput(policy: GitUrlPolicy & { domain: string }) {
  const settings = settingsFields(policy);
  const appHost = appHostname(policy.domain);
  return strict({
    name: appName,
    agentId: dnsLabel.optional(),
    // Checked below: an app's is <name>.apps.<domain>, a database's an SNI name of its engine's zone.
    hostname: text().optional(),
    source: settings.source,
    env: settings.env.default([]),
    healthCheck: settings.healthCheck.prefault({}),
    build: settings.build.optional(),
    drain: settings.drain.prefault({}),
    limits: settings.limits.prefault({}),
    releasesKept: settings.releasesKept,
    /** `container`: the agent builds the Dockerfile at the source root and runs the image. */
    runtime: z
      .enum(['process', 'container'], { error: typed('must be process or container') })
      .default('process'),
  })
    .superRefine((app, context) => {
      if (app.source?.type === 'image' && app.runtime !== 'container')
        context.addIssue({
          code: 'custom',
          path: ['runtime'],
          message: 'an image runs on the container runtime: give "runtime": "container"',
        });
      if (app.source?.type === 'database') {
        const engine = app.source.engine;
        for (const field of ['build', 'env'] as const) {
          const given = field === 'env' ? app.env.length > 0 : app.build !== undefined;
          if (given)
            context.addIssue({
              code: 'custom',
              path: [field],
              message: `a ${engine} database takes no ${field}: the agent configures the engine itself`,
            });
        }
        if (app.hostname !== undefined) {
          const problem = checkDatabaseHostname(app.hostname, app.agentId, engine, policy.domain);
          if (problem) context.addIssue({ code: 'custom', path: ['hostname'], message: problem });
        } else if (dnsLabel.safeParse(app.name).success && app.agentId !== undefined) {
          if (!hostname.safeParse(databaseHostname(app.name, app.agentId, engine, policy.domain)).success)
            context.addIssue({
              code: 'custom',
              path: ['name'],
              message:
                'makes a database host name over 253 characters: choose a shorter name or give hostname',
            });
        }
        return;
      }
      if (app.hostname !== undefined) {
        const checked = appHost.safeParse(app.hostname);
        if (!checked.success)
          for (const issue of checked.error.issues)
            context.addIssue({ code: 'custom', path: ['hostname'], message: issue.message });
      }
      checkSettingsEnv(app, context);
      // Only a valid name can make a host name too long; an invalid one has its own issue already.
      if (app.hostname === undefined && dnsLabel.safeParse(app.name).success) {
        if (!appHost.safeParse(`${app.name}.${APPS_ZONE}.${policy.domain}`).success) {
          context.addIssue({
            code: 'custom',
            path: ['name'],
            message: `makes a host name over 253 characters with .${APPS_ZONE}.${policy.domain}: choose a shorter name or give hostname`,
          });
        }
      }
    })
    .transform((app) => ({
      ...app,
      // A database's default name needs its agent, which the service knows when the body does not say.
      hostname:
        app.hostname ?? (app.source.type === 'database' ? null : `${app.name}.${APPS_ZONE}.${policy.domain}`),
    }));
}

const fixed = z.never({ error: 'cannot be changed after creation' }).optional();

/**
 * `PATCH /api/v1/apps/{name}`: the settings to replace. A field given replaces the whole field (its own
 * defaults apply inside it); fields left out keep their value. Env is checked against the port variable
 * of the build given here: the service checks the merged settings again with `envEntries(portEnv)`.
 */
export function configureAppInput(policy: GitUrlPolicy) {
  const settings = settingsFields(policy);
  return strict({
    name: fixed,
    agentId: fixed,
    hostname: fixed,
    source: settings.source.optional(),
    env: settings.env.optional(),
    healthCheck: settings.healthCheck.optional(),
    build: settings.build.optional(),
    drain: settings.drain.optional(),
    limits: settings.limits.optional(),
    releasesKept: integer(1, 10).optional(),
  })
    .superRefine((patch, context) => {
      if (patch.env !== undefined && patch.build !== undefined) checkSettingsEnv(patch, context);
      const given = Object.entries(patch).filter(([, value]) => value !== undefined);
      if (given.length === 0) {
        context.addIssue({ code: 'custom', message: 'give at least one setting to change' });
      }
    })
    .transform(({ name: _name, agentId: _agentId, hostname: _hostname, ...settings }) => settings);
}

// ---------------------------------------------------------------------------------------------------
// Deployments

/** `POST /api/v1/apps/{name}/deployments`: a ref of the git source, or an upload made for it. */
export const deploymentRequestInput = strict({
  ref: gitRef.optional(),
  uploadId: uuid.optional(),
}).refine((request) => request.ref === undefined || request.uploadId === undefined, {
  message: 'give ref (git source) or uploadId (upload source), not both',
  path: ['uploadId'],
});

const RELEASE = 'must be a release number (1 or more) or a release id (UUID)';

/** `POST /api/v1/apps/{name}/rollback`: a kept release by number or id; the previous one when left out. */
export const rollbackInput = strict({
  release: z
    .union([z.number({ error: RELEASE }).int(RELEASE).min(1, RELEASE), z.uuid(RELEASE)], { error: RELEASE })
    .optional(),
});

export type SourceInput = z.output<ReturnType<typeof sourceInput>>;
export type EnvEntry = z.output<typeof envEntry>;
export type HealthCheckInput = z.output<typeof healthCheckInput>;
export type BuildOverrides = z.output<typeof buildOverrides>;
export type BuildManifest = z.output<typeof buildManifest>;
export type CreateAppInput = z.output<ReturnType<typeof createAppInput>>;
export type ConfigureAppInput = z.output<ReturnType<typeof configureAppInput>>;
export type DeploymentRequestInput = z.output<typeof deploymentRequestInput>;
export type RollbackInput = z.output<typeof rollbackInput>;
