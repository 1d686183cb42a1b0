import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { agentLabels, dnsLabel, hostname, ipAddress, parseOrThrow, port, sha256Hex } from '#contracts';

/**
 * The agent's certificate: it makes its key pair here (the key never leaves the VPS), sends only a CSR,
 * installs what the CA signed atomically, runs `hook` after each install, and renews when the service asks
 * (or, with `renewBeforeSeconds`, by itself too).
 */
export const certificatesConfigSchema = z.strictObject({
  enabled: z.boolean().default(true),
  /** Where certificates live (default `<stateDir>/certificates`); the files in use are under `<dir>/live/`. */
  dir: z.string().min(1).optional(),
  keyBits: z.union([z.literal(2048), z.literal(3072), z.literal(4096)]).default(3072),
  /** Host names of this agent's routes to add to `<agentId>.mongodb.<domain>` (once the agent holds them). */
  names: z.array(hostname).max(99).default([]),
  /** Run after each install (argv, no shell), e.g. to reload the local database; failure is reported, not fatal. */
  hook: z
    .strictObject({
      command: z.array(z.string().min(1)).min(1),
      timeoutMs: z.number().int().min(100).max(600_000).default(30_000),
    })
    .optional(),
  /** Also renew without being asked when the certificate expires within this many seconds. */
  renewBeforeSeconds: z.number().int().min(1).optional(),
  /** How often the certificate is checked (names, expiry, an unconfirmed install, a failed request). */
  checkIntervalMs: z.number().int().min(100).max(86_400_000).default(60_000),
  requestTimeoutMs: z.number().int().min(100).max(120_000).default(15_000),
  /** Trust only this CA (SHA-256 of its certificate); without it the first CA seen is pinned. */
  caFingerprint: sha256Hex.optional(),
  /** A TLS endpoint that serves the installed certificate and switches to a new one without a restart. */
  probe: z.strictObject({ host: z.string().min(1).default('127.0.0.1'), port }).optional(),
});
export type AgentCertificatesConfig = z.output<typeof certificatesConfigSchema>;

/**
 * Deployments the front assigns to this agent, run by the `process` runtime (docs/deployments.md).
 * `isolation: "uid"` runs each app as its own numeric uid through setpriv and needs root; `"none"` runs
 * apps as the agent's own user, for development only (logged at every start and shown in each claim).
 */
const deploymentsFields = z.strictObject({
  enabled: z.boolean().default(true),
  /** The apps' directories: `<dir>/<app>/…` (0711 root at the top). */
  dir: z.string().min(1).default('/var/lib/cloudlunacy/apps'),
  portRange: z
    .tuple([port, port])
    .refine(([low, high]) => low <= high, 'the first port must not be above the second')
    .default([20000, 20999]),
  isolation: z.enum(['uid', 'none']).default('uid'),
  uidRange: z
    .tuple([
      z
        .number()
        .int()
        .min(1000)
        .max(2 ** 31 - 2),
      z
        .number()
        .int()
        .min(1000)
        .max(2 ** 31 - 2),
    ])
    .refine(([low, high]) => low <= high, 'the first uid must not be above the second')
    .default([62000, 62999]),
  cgroups: z.enum(['auto', 'off']).default('auto'),
  /**
   * With uid isolation: a passwd and group entry `cl-<uid>` for each app's uid (`auto`, where useradd
   * is), which tools such as ssh need; uids someone else has are skipped. `off`: numeric uids only.
   */
  systemUsers: z.enum(['auto', 'off']).default('auto'),
  maxConcurrentBuilds: z.number().int().min(1).max(16).default(1),
  /** Directories `file://` sources may come from (checked again here after realpath). */
  fileRoots: z.array(z.string().startsWith('/')).max(32).default([]),
  reconcileIntervalMs: z.number().int().min(200).max(3_600_000).default(30_000),
  /** How often a serving release is checked (and restarted with backoff when it died). */
  superviseIntervalMs: z.number().int().min(100).max(60_000).default(1_000),
  logBatchMs: z.number().int().min(20).max(10_000).default(200),
  /** Open files and processes per app (rlimits; nproc counts per uid, so per app). */
  nofile: z.number().int().min(64).max(1_048_576).default(4096),
  /** Backups kept per database on this VPS: after each new one, the oldest beyond these go. */
  backupsKept: z.number().int().min(1).max(1000).default(7),
  /**
   * The container runtime: the Docker Engine API's unix socket (Podman's serves: deploy/podman/).
   * Without it, apps with `runtime: container` fail at their build, saying so.
   */
  container: z
    .strictObject({
      socket: z.string().startsWith('/'),
      /** CPUs per release (fractions allowed); 0: no limit. */
      cpus: z.number().min(0).max(256).default(1),
      /** The databases' images per engine (default `docker.io/library/redis:7`). */
      images: z.strictObject({ redis: z.string().min(1).max(300).optional() }).default({}),
    })
    .optional(),
});
export const deploymentsConfigSchema = deploymentsFields.default(() => deploymentsFields.parse({}));
export type AgentDeploymentsConfig = z.output<typeof deploymentsConfigSchema>;

/**
 * The agent's config file (JSON). `enrollmentToken` is used once, when `stateDir` holds no identity
 * yet; afterwards it can be removed from the file.
 */
export const agentConfigSchema = z.strictObject({
  /** The front server's API, e.g. `https://front.example.com`. */
  apiUrl: z.url().refine((url) => /^https?:/.test(url), 'must be an http(s) URL'),
  enrollmentToken: z.string().min(1).max(128).optional(),
  /** The id to ask for; the server picks one when absent. */
  agentId: dnsLabel.optional(),
  /** Where the front reaches this agent; the address it enrolls from when absent. */
  publicAddress: ipAddress.optional(),
  /**
   * The local address the agent talks to the API from. The front takes the address an enrollment comes
   * from as the agent's own unless an admin approved another, so on a host with several addresses this
   * picks the one to be reached at.
   */
  sourceAddress: ipAddress.optional(),
  labels: agentLabels.default({}),
  /** Where the identity (keys, tokens) is kept, mode 0600. */
  stateDir: z.string().min(1),
  /** Overrides the NATS URL the server gives at enrollment (e.g. behind NAT). */
  natsUrl: z.string().min(1).optional(),
  heartbeatIntervalMs: z.number().int().min(100).max(600_000).default(10_000),
  reconnect: z
    .strictObject({
      initialDelayMs: z.number().int().min(10).max(60_000).default(250),
      maxDelayMs: z.number().int().min(100).max(600_000).default(30_000),
    })
    .default({ initialDelayMs: 250, maxDelayMs: 30_000 }),
  /** Refresh the access token when this fraction of its lifetime has passed. */
  refreshAt: z.number().min(0.1).max(0.95).default(0.66),
  certificates: certificatesConfigSchema.default(certificatesConfigSchema.parse({})),
  deployments: deploymentsConfigSchema,
});
export type AgentConfig = z.output<typeof agentConfigSchema>;

export async function loadAgentConfig(path: string): Promise<AgentConfig> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new Error(`cannot read the agent config ${path}: ${(error as Error).message}`);
  }
  return parseOrThrow(agentConfigSchema, raw);
}

/** Exponential backoff with full jitter: a fleet of agents does not reconnect in lockstep. */
export function backoffDelay(
  attempt: number,
  initialMs: number,
  maxMs: number,
  random = Math.random,
): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 20));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
