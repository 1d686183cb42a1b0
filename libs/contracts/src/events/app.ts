import { z } from 'zod';
import { defineEvent } from '../registry.js';
import { sha256Hex } from './certificate.js';
import { dnsLabel, hostname, isoTimestamp, label, port, uuid } from '../fields.js';

/**
 * Shapes shared by the app and deployment events. They bound what is stored; the rules of what a user may
 * ask for (transports, refs, reserved names…) are checked at the edge by `deployment-inputs.ts`.
 */

const hex = (lengths: readonly number[]) =>
  z
    .string()
    .regex(/^[0-9a-f]+$/, 'must be lower-case hexadecimal')
    .refine((value) => lengths.includes(value.length), {
      message: `must be ${lengths.join(' or ')} hexadecimal characters`,
    });
export const commitId = hex([40, 64]);

/**
 * The database engines an agent can run, each with the zone its SNI names live in
 * (`<db>.<agentId>.<zone>.<domain>`). MongoDB comes with the container runtime.
 */
export const DATABASE_ENGINES = ['redis'] as const;
export type DatabaseEngine = (typeof DATABASE_ENGINES)[number];
export const DATABASE_ZONES: Record<DatabaseEngine, string> = { redis: 'redis' };

/**
 * An image reference as registries name them: `[host[:port]/]path[:tag][@sha256:digest]`, lower-case
 * path components, never starting with `-` (an engine or a CLI would read an option).
 */
export const IMAGE_REFERENCE =
  /^(?:[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?(?::\d{1,5})?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$/;
export const imageReference = z
  .string()
  .max(255)
  .regex(IMAGE_REFERENCE, 'must be an image reference such as registry.example.com/team/app:1.2');

const command = label(1000);
const envVariableName = z.string().regex(/^[A-Z_][A-Z0-9_]{0,127}$/, 'must be an environment variable name');

export const storedSource = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('git'),
    url: label(2048),
    ref: label(200).nullable(),
    credentials: z
      .strictObject({
        secret: envVariableName,
        kind: z.enum(['https-token', 'ssh-key']),
        knownHosts: z.string().max(4096).nullable(),
      })
      .nullable(),
  }),
  z.strictObject({ type: z.literal('upload') }),
  /** An image from a registry (the container runtime pulls it at each deployment). */
  z.strictObject({ type: z.literal('image'), image: imageReference }),
  /** A managed database: the agent runs the engine it has, with TLS, auth and data of its own. */
  z.strictObject({ type: z.literal('database'), engine: z.enum(DATABASE_ENGINES) }),
]);

/** An upload made for one deployment: the bytes live in the object store, named by the id. */
export const uploadRef = z.strictObject({
  uploadId: uuid,
  sha256: sha256Hex,
  bytes: z.number().int().min(1),
});
/** An uploaded source as a deployment names it: the object's id, its SHA-256 (hex) and size. */
export type UploadRef = z.output<typeof uploadRef>;

export const storedHealthCheck = z.strictObject({
  path: label(512),
  timeoutSeconds: z.number().int().min(1).max(600),
  graceSeconds: z.number().int().min(0).max(300),
  successes: z.number().int().min(1).max(10),
});

export const storedBuild = z.strictObject({
  root: label(512).nullable(),
  install: command.nullable().optional(),
  build: z.array(command).max(20).nullable(),
  start: command.nullable(),
  portEnv: envVariableName.nullable(),
  timeoutSeconds: z.number().int().min(1).max(3600).nullable(),
});

export const storedDrain = z.strictObject({
  delaySeconds: z.number().int().min(0).max(300),
  stopTimeoutSeconds: z.number().int().min(1).max(300),
});

export const storedLimits = z.strictObject({
  memoryMb: z.number().int().min(16).max(65536),
  processes: z.number().int().min(8).max(4096),
});

/** A secret as the log knows it: a name and a version. The value lives in the secret store only. */
export const secretRef = z.strictObject({ name: envVariableName, version: z.number().int().min(1) });

/** An app's settings. Plain env values only: secret values never enter the log. */
export const appConfig = z.strictObject({
  hostname,
  source: storedSource,
  build: storedBuild,
  healthCheck: storedHealthCheck,
  env: z.record(envVariableName, z.string().max(32_768)),
  secrets: z.array(secretRef).max(100),
  drain: storedDrain,
  limits: storedLimits,
  releasesKept: z.number().int().min(1).max(10),
  /** How the agent runs its releases: supervised processes, or containers (a Dockerfile in the source). */
  runtime: z.enum(['process', 'container']),
});
export type AppConfig = z.output<typeof appConfig>;

export const releaseRef = z.strictObject({ releaseId: uuid, number: z.number().int().min(1) });

export const keptRelease = z.strictObject({
  releaseId: uuid,
  number: z.number().int().min(1),
  commit: commitId.nullable(),
  builtAt: isoTimestamp,
});

export const currentRelease = z.strictObject({
  releaseId: uuid,
  number: z.number().int().min(1),
  port,
  commit: commitId.nullable(),
});

export const DEPLOYMENT_KINDS = ['deploy', 'rollback'] as const;
export type DeploymentKind = (typeof DEPLOYMENT_KINDS)[number];

export const DEPLOYMENT_OUTCOMES = ['succeeded', 'failed', 'cancelled', 'abandoned'] as const;
export type DeploymentOutcome = (typeof DEPLOYMENT_OUTCOMES)[number];

export const AppCreated = defineEvent({
  type: 'AppCreated',
  aggregate: 'app',
  version: 1,
  schema: z.strictObject({ appName: dnsLabel, agentId: dnsLabel, config: appConfig }),
});

/** The whole configuration after a change: folding needs no merge rules. */
export const AppConfigured = defineEvent({
  type: 'AppConfigured',
  aggregate: 'app',
  version: 1,
  schema: z.strictObject({ appName: dnsLabel, config: appConfig }),
});

export const AppSecretSet = defineEvent({
  type: 'AppSecretSet',
  aggregate: 'app',
  version: 1,
  schema: z.strictObject({ appName: dnsLabel, name: envVariableName, version: z.number().int().min(1) }),
});

export const AppSecretRemoved = defineEvent({
  type: 'AppSecretRemoved',
  aggregate: 'app',
  version: 1,
  schema: z.strictObject({ appName: dnsLabel, name: envVariableName }),
});

/** The app took a deployment: it runs now (`queued: false`) or after the active one, replacing `supersedes`. */
export const DeploymentAccepted = defineEvent({
  type: 'DeploymentAccepted',
  aggregate: 'app',
  version: 1,
  schema: z.strictObject({
    appName: dnsLabel,
    deploymentId: uuid,
    number: z.number().int().min(1),
    kind: z.enum(DEPLOYMENT_KINDS),
    queued: z.boolean(),
    supersedes: uuid.nullable(),
  }),
});

export const DeploymentActivated = defineEvent({
  type: 'DeploymentActivated',
  aggregate: 'app',
  version: 1,
  schema: z.strictObject({ appName: dnsLabel, deploymentId: uuid }),
});

/**
 * The active deployment ended. `current` is the release that must serve from now on: the new one after a
 * success, the previous one otherwise; the agent converges to it.
 */
export const DeploymentFinished = defineEvent({
  type: 'DeploymentFinished',
  aggregate: 'app',
  version: 1,
  schema: z.strictObject({
    appName: dnsLabel,
    deploymentId: uuid,
    outcome: z.enum(DEPLOYMENT_OUTCOMES),
    current: currentRelease.nullable(),
    routeId: uuid.nullable(),
    keptReleases: z.array(keptRelease).max(10),
  }),
});

export const appEvents = [
  AppCreated,
  AppConfigured,
  AppSecretSet,
  AppSecretRemoved,
  DeploymentAccepted,
  DeploymentActivated,
  DeploymentFinished,
] as const;
