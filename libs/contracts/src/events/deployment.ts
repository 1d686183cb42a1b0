import { z } from 'zod';
import { defineEvent } from '../registry.js';
import { dnsLabel, ipAddress, label, port, uuid } from '../fields.js';
import {
  DEPLOYMENT_KINDS,
  appConfig,
  commitId,
  currentRelease,
  keptRelease,
  releaseRef,
  uploadRef,
} from './app.js';
import { sha256Hex } from './certificate.js';

/**
 * The phases a deployment passes through, in order. A rollback skips `fetched` and `built`: it starts a
 * release that is already on the VPS.
 */
export const DEPLOYMENT_PHASES = [
  'requested',
  'claimed',
  'fetched',
  'built',
  'started',
  'healthy',
  'switched',
  'verified',
  'drained',
] as const;
export type DeploymentPhase = (typeof DEPLOYMENT_PHASES)[number];

/**
 * How long each phase may take, in seconds, snapshotted when the deployment is requested: deadlines are
 * then a function of the log alone, and a change of configuration never moves a running one's.
 */
export const phaseLimits = z.strictObject({
  claim: z.number().int().min(1),
  fetch: z.number().int().min(1),
  build: z.number().int().min(1),
  start: z.number().int().min(1),
  health: z.number().int().min(1),
  switch: z.number().int().min(1),
  verify: z.number().int().min(1),
  drain: z.number().int().min(1),
  cancel: z.number().int().min(1),
  slack: z.number().int().min(0),
});
export type PhaseLimits = z.output<typeof phaseLimits>;

const lastLines = z.array(z.string().max(500)).max(20);
const failedPhase = z.enum([...DEPLOYMENT_PHASES]);

export const DeploymentRequested = defineEvent({
  type: 'DeploymentRequested',
  aggregate: 'deployment',
  version: 1,
  schema: z.strictObject({
    deploymentId: uuid,
    appName: dnsLabel,
    agentId: dnsLabel,
    kind: z.enum(DEPLOYMENT_KINDS),
    /** deploy: what to fetch (the app's source with this ref, or an upload); rollback: null. */
    ref: label(200).nullable(),
    upload: uploadRef.nullable(),
    /** rollback: the kept release to start again. */
    targetRelease: releaseRef.nullable(),
    previous: currentRelease.nullable(),
    config: appConfig,
    routeId: uuid.nullable(),
    limits: phaseLimits,
  }),
});

export const DeploymentClaimed = defineEvent({
  type: 'DeploymentClaimed',
  aggregate: 'deployment',
  version: 1,
  schema: z.strictObject({
    deploymentId: uuid,
    leaseId: uuid,
    agentVersion: label(40),
    leaseTtlMs: z.number().int().min(1000),
  }),
});

export const DeploymentFetched = defineEvent({
  type: 'DeploymentFetched',
  aggregate: 'deployment',
  version: 1,
  schema: z.strictObject({
    deploymentId: uuid,
    commit: commitId.nullable(),
    sourceDigest: sha256Hex,
    bytes: z.number().int().min(0),
  }),
});

/** Where the build instructions came from, and what they were, so a deployment explains itself. */
export const resolvedManifest = z.strictObject({
  origin: z.enum(['cloudlunacy.json', 'node-default', 'app', 'database', 'dockerfile', 'image']),
  root: label(512),
  install: label(1000).nullable(),
  build: z.array(label(1000)).max(20),
  start: label(1000),
  portEnv: z.string().regex(/^[A-Z_][A-Z0-9_]{0,127}$/),
  healthPath: label(512),
});

export const DeploymentBuilt = defineEvent({
  type: 'DeploymentBuilt',
  aggregate: 'deployment',
  version: 1,
  schema: z.strictObject({
    deploymentId: uuid,
    release: releaseRef,
    artifactDigest: sha256Hex,
    manifest: resolvedManifest,
    durationMs: z.number().int().min(0),
  }),
});

export const DeploymentStarted = defineEvent({
  type: 'DeploymentStarted',
  aggregate: 'deployment',
  version: 1,
  schema: z.strictObject({ deploymentId: uuid, releaseId: uuid, port }),
});

export const DeploymentHealthy = defineEvent({
  type: 'DeploymentHealthy',
  aggregate: 'deployment',
  version: 1,
  schema: z.strictObject({
    deploymentId: uuid,
    releaseId: uuid,
    probes: z.number().int().min(1),
    durationMs: z.number().int().min(0),
  }),
});

export const DeploymentSwitched = defineEvent({
  type: 'DeploymentSwitched',
  aggregate: 'deployment',
  version: 1,
  schema: z.strictObject({
    deploymentId: uuid,
    routeId: uuid,
    routeRevision: z.number().int().min(1),
    target: z.strictObject({ host: ipAddress, port }),
  }),
});

const frontProbe = z.strictObject({
  url: label(300),
  status: z.number().int().min(0).max(999).nullable(),
  error: label(300).nullable(),
  attempts: z.number().int().min(0),
});

/** The front reached the new release through HAProxy with the app's real host name. */
export const DeploymentVerified = defineEvent({
  type: 'DeploymentVerified',
  aggregate: 'deployment',
  version: 1,
  schema: z.strictObject({
    deploymentId: uuid,
    fronts: z.array(frontProbe).max(32),
    /** Why nothing was probed, when nothing was: never silent. */
    skipped: label(200).nullable(),
  }),
});

/** Not terminal: the agent puts the traffic back on the previous release, then reports. */
export const DeploymentVerificationFailed = defineEvent({
  type: 'DeploymentVerificationFailed',
  aggregate: 'deployment',
  version: 1,
  schema: z.strictObject({ deploymentId: uuid, reason: label(500), fronts: z.array(frontProbe).max(32) }),
});

export const DeploymentCancelRequested = defineEvent({
  type: 'DeploymentCancelRequested',
  aggregate: 'deployment',
  version: 1,
  schema: z.strictObject({ deploymentId: uuid, reason: label(200) }),
});

export const DeploymentDrained = defineEvent({
  type: 'DeploymentDrained',
  aggregate: 'deployment',
  version: 1,
  schema: z.strictObject({
    deploymentId: uuid,
    previousReleaseId: uuid.nullable(),
    stoppedBy: z.enum(['exit', 'kill', 'none']),
  }),
});

export const DeploymentSucceeded = defineEvent({
  type: 'DeploymentSucceeded',
  aggregate: 'deployment',
  version: 1,
  schema: z.strictObject({
    deploymentId: uuid,
    release: currentRelease,
    /** false: the drain did not confirm in time; the agent stops the old release when it reconciles. */
    drained: z.boolean(),
    keptReleases: z.array(keptRelease).max(10),
  }),
});

export const DeploymentFailed = defineEvent({
  type: 'DeploymentFailed',
  aggregate: 'deployment',
  version: 1,
  schema: z.strictObject({
    deploymentId: uuid,
    phase: failedPhase,
    reason: label(500),
    exitCode: z.number().int().min(-1).max(255).nullable(),
    signal: label(16).nullable(),
    lastLines,
    /** The traffic was put back on the previous release after the switch. */
    reverted: z.boolean(),
  }),
});

export const DeploymentCancelled = defineEvent({
  type: 'DeploymentCancelled',
  aggregate: 'deployment',
  version: 1,
  schema: z.strictObject({
    deploymentId: uuid,
    phase: failedPhase,
    reason: z.enum(['requested', 'superseded']),
    supersededBy: uuid.nullable(),
    reverted: z.boolean(),
  }),
});

export const DeploymentAbandoned = defineEvent({
  type: 'DeploymentAbandoned',
  aggregate: 'deployment',
  version: 1,
  schema: z.strictObject({
    deploymentId: uuid,
    phase: failedPhase,
    reason: z.enum(['lease-expired', 'agent-restarted', 'agent-deregistered']),
    lastRenewalAt: z.string().max(40).nullable(),
  }),
});

export const deploymentEvents = [
  DeploymentRequested,
  DeploymentClaimed,
  DeploymentFetched,
  DeploymentBuilt,
  DeploymentStarted,
  DeploymentHealthy,
  DeploymentSwitched,
  DeploymentVerified,
  DeploymentVerificationFailed,
  DeploymentCancelRequested,
  DeploymentDrained,
  DeploymentSucceeded,
  DeploymentFailed,
  DeploymentCancelled,
  DeploymentAbandoned,
] as const;
