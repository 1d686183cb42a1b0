import { z } from 'zod';
import { commandSubject } from './commands.js';
import { dnsLabel, ipAddress, label, port, uuid } from './fields.js';
import { commitId, releaseRef } from './events/app.js';
import { sha256Hex } from './events/certificate.js';
import { DEPLOYMENT_PHASES, resolvedManifest } from './events/deployment.js';
import { sealedBox } from './sealed.js';
import { agentSubjects } from './subjects.js';

/**
 * The deployments service's commands (from the API), the requests agents make on their own prefix while
 * they run a deployment, what the service sends them, and the relayed log stream.
 */
export const DEPLOYMENTS_SERVICE = 'deployments';
export const deploymentCommands = {
  createApp: commandSubject(DEPLOYMENTS_SERVICE, 'create-app'),
  configureApp: commandSubject(DEPLOYMENTS_SERVICE, 'configure-app'),
  setSecret: commandSubject(DEPLOYMENTS_SERVICE, 'set-secret'),
  removeSecret: commandSubject(DEPLOYMENTS_SERVICE, 'remove-secret'),
  request: commandSubject(DEPLOYMENTS_SERVICE, 'request-deployment'),
  rollback: commandSubject(DEPLOYMENTS_SERVICE, 'rollback'),
  cancel: commandSubject(DEPLOYMENTS_SERVICE, 'cancel-deployment'),
  getApp: commandSubject(DEPLOYMENTS_SERVICE, 'get-app'),
  getDeployment: commandSubject(DEPLOYMENTS_SERVICE, 'get-deployment'),
  /** The upload a deployment deploys, for its agent's download (`GET /deployments/{id}/source`). */
  getSource: commandSubject(DEPLOYMENTS_SERVICE, 'get-deployment-source'),
  /** A database's operation on its agent: credentials (and rotation), backups, restore. */
  database: commandSubject(DEPLOYMENTS_SERVICE, 'database'),
} as const;

/** The header of `GET /api/v1/deployments/{id}/source` that carries the upload's SHA-256 (hex). */
export const UPLOAD_SHA256_HEADER = 'X-Content-SHA256';

/**
 * The SHA-256 (hex) of an object store digest (`SHA-256=<base64url>`, the object store's own hash of
 * what it holds), or null when it is another kind.
 */
export function objectDigestHex(digest: string): string | null {
  const prefix = 'SHA-256=';
  if (!digest.startsWith(prefix)) return null;
  let bytes: string;
  try {
    // atob rather than Buffer: contracts also run in the dashboard.
    bytes = atob(digest.slice(prefix.length).replace(/-/g, '+').replace(/_/g, '/'));
  } catch {
    return null;
  }
  if (bytes.length !== 32) return null;
  return [...bytes].map((char) => char.charCodeAt(0).toString(16).padStart(2, '0')).join('');
}

/** What an agent may ask on `agents.<id>.out.req.deployments.<command>`. */
export const AGENT_DEPLOYMENT_COMMANDS = [
  'assigned',
  'claim',
  'renew',
  'report',
  'secrets',
  'streams',
] as const;
export type AgentDeploymentCommand = (typeof AGENT_DEPLOYMENT_COMMANDS)[number];

export function agentDeploymentSubject(agentId: string, command: AgentDeploymentCommand): string {
  return agentSubjects.request(agentId, `deployments.${command}`);
}
export const allAgentDeploymentRequests = agentSubjects.allOutbound('req.deployments.*');

/** What the service sends an agent (AGENTS stream): pokes; the agent asks for the details. */
export const DEPLOYMENT_TOPICS = {
  assigned: 'deployments.assigned',
  changed: 'deployments.changed',
  /** An admin's request about a database; the agent answers on `out.deployments.database`. */
  database: 'deployments.database',
} as const;

/**
 * Databases' own operations run on their agent, live (docs/deployments.md, "Databases"): an admin's
 * request goes through the deployments service into the AGENTS stream (no secret in it), the agent
 * answers on `out.deployments.database`. Credentials are made on the agent and never stored on the front:
 * the API makes a key for one request, the agent seals the answer to it (bound to the request id), the
 * service and the broker pass it on unread, and only the API opens it.
 */
export const agentDatabaseSubject = (agentId: string) =>
  agentSubjects.outbound(agentId, DEPLOYMENT_TOPICS.database);
export const allAgentDatabaseAnswers = agentSubjects.allOutbound(DEPLOYMENT_TOPICS.database);
export const credentialsBoxInfo = (requestId: string) => `cloudlunacy-database-credentials-v1:${requestId}`;
/** How long an agent may take to answer (it ignores a request older than this: it was given up). */
export const DATABASE_ANSWER_MS = 10_000;
/** A restore answers when the database serves the restored data again. */
export const DATABASE_RESTORE_MS = 120_000;

/** `<UTC time>-<8 hex>`: made by the agent, sortable, safe as a file name. */
export const backupId = z
  .string({ error: 'must be a backup id' })
  .regex(/^\d{8}T\d{6}Z-[0-9a-f]{8}$/, 'must be a backup id such as 20261208T012345Z-1a2b3c4d');
export const databaseOperation = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('credentials'),
    publicKey: z.string().min(40).max(200),
    rotate: z.boolean(),
  }),
  z.strictObject({ kind: z.literal('backup') }),
  z.strictObject({ kind: z.literal('backups') }),
  z.strictObject({ kind: z.literal('restore'), backupId }),
]);
export type DatabaseOperation = z.output<typeof databaseOperation>;
export const databaseCommandPayload = z.strictObject({ appName: dnsLabel, operation: databaseOperation });
export const databaseRequestMessage = z.strictObject({
  requestId: uuid,
  appName: dnsLabel,
  expiresAt: z.string().max(40),
  operation: databaseOperation,
});
export type DatabaseRequestMessage = z.output<typeof databaseRequestMessage>;

/** A backup on the VPS (it stays there): running until the file is complete and digested. */
export const backupView = z.strictObject({
  backupId,
  status: z.enum(['running', 'done', 'failed']),
  startedAt: z.string().max(40),
  finishedAt: z.string().max(40).nullable(),
  bytes: z.number().int().min(0),
  sha256: sha256Hex.nullable(),
  error: label(300).nullable(),
});
export type BackupView = z.output<typeof backupView>;
export const databaseAnswer = z.union([
  z.strictObject({ requestId: uuid, sealed: sealedBox }),
  z.strictObject({ requestId: uuid, backup: backupView }),
  z.strictObject({ requestId: uuid, backups: z.array(backupView).max(1000) }),
  z.strictObject({ requestId: uuid, error: label(300) }),
]);
export type DatabaseAnswer = z.output<typeof databaseAnswer>;
/** What a credentials answer's sealed box holds (checked when opened: the agent wrote it). */
export const databaseSecret = z.strictObject({
  user: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
  password: z.string().regex(/^[A-Za-z0-9_-]{16,200}$/),
  rotatedAt: z.string().max(40),
});
export type DatabaseSecret = z.output<typeof databaseSecret>;
/** `GET /api/v1/apps/{name}/credentials`: where to connect and how, with the password (never stored). */
export interface DatabaseCredentialsView {
  appName: string;
  engine: string;
  hostname: string;
  port: number;
  user: string;
  password: string;
  connectionString: string;
  rotatedAt: string;
}

/** The deployments service's answer to `database`: the agent's answer and where the database is. */
export interface DatabaseCommandReply {
  requestId: string;
  agentId: string;
  engine: string;
  hostname: string;
  answer: DatabaseAnswer;
}

/** An agent publishes its deployments' output here; the relay checks, redacts and stores it in LOGS. */
export const agentLogSubject = (agentId: string, deploymentId: string) =>
  agentSubjects.outbound(agentId, `logs.${deploymentId}`);
export const allAgentLogs = agentSubjects.allOutbound('logs.*');
export const LOGS_STREAM = 'LOGS';
export const logsSubject = (deploymentId: string) => `logs.${deploymentId}`;

/** Request bodies are bounded by the broker and again here. */
export const AGENT_DEPLOYMENT_REQUEST_MAX_BYTES = 64 * 1024;

export const claimRequest = z.strictObject({ deploymentId: uuid, leaseId: uuid, agentVersion: label(40) });
export type ClaimRequest = z.output<typeof claimRequest>;

export const renewRequest = z.strictObject({ deploymentId: uuid, leaseId: uuid });
export type RenewRequest = z.output<typeof renewRequest>;

/** During its drain, the agent asks how many requests the fronts still have in flight to the old release. */
export const streamsRequest = renewRequest;
export interface DrainStreams {
  /** Streams in flight to the old release's target on every front; null when a front did not answer. */
  streams: number | null;
  /** The fronts asked (every proxy node that synced lately). */
  fronts: number;
  /** Why `streams` is null. */
  reason: string | null;
}

/**
 * Every proxy-sync answers on this subject (no queue group): how many streams its HAProxy has in flight
 * to one target, from the `st_targets` stick table. Only services can publish it (agents cannot).
 */
export const PROXY_STREAMS_SUBJECT = 'proxy.streams';
export const targetStreamsRequest = z.strictObject({ address: ipAddress, port });
export type TargetStreamsRequest = z.output<typeof targetStreamsRequest>;
export interface TargetStreams {
  node: string;
  streams: number;
}

const exitCode = z.number().int().min(-1).max(255).nullable();
const reportLastLines = z.array(z.string().max(500)).max(20);

/** The phases an agent reports, each with what it proves. */
export const phaseReport = z.discriminatedUnion('phase', [
  z.strictObject({
    phase: z.literal('fetched'),
    commit: commitId.nullable(),
    sourceDigest: sha256Hex,
    bytes: z.number().int().min(0).max(1e12),
  }),
  z.strictObject({
    phase: z.literal('built'),
    release: releaseRef,
    artifactDigest: sha256Hex,
    manifest: resolvedManifest,
    durationMs: z.number().int().min(0),
  }),
  z.strictObject({ phase: z.literal('started'), releaseId: uuid, port }),
  z.strictObject({
    phase: z.literal('healthy'),
    releaseId: uuid,
    probes: z.number().int().min(1).max(100_000),
    durationMs: z.number().int().min(0),
  }),
  z.strictObject({
    phase: z.literal('switched'),
    routeId: uuid,
    routeRevision: z.number().int().min(1),
    target: z.strictObject({ host: ipAddress, port }),
  }),
  /** After a failed verification or a cancel after the switch: the traffic is back on the previous release. */
  z.strictObject({ phase: z.literal('reverted') }),
  z.strictObject({
    phase: z.literal('drained'),
    previousReleaseId: uuid.nullable(),
    stoppedBy: z.enum(['exit', 'kill', 'none']),
  }),
  z.strictObject({
    phase: z.literal('failed'),
    failedPhase: z.enum([...DEPLOYMENT_PHASES]),
    reason: label(500),
    exitCode,
    signal: label(16).nullable(),
    lastLines: reportLastLines,
    reverted: z.boolean(),
  }),
  z.strictObject({ phase: z.literal('cancelled'), reverted: z.boolean() }),
  /** The agent restarted and gave up what it had claimed. */
  z.strictObject({ phase: z.literal('released') }),
]);
export type PhaseReport = z.output<typeof phaseReport>;

export const reportRequest = z.strictObject({ deploymentId: uuid, leaseId: uuid, report: phaseReport });
export type ReportRequest = z.output<typeof reportRequest>;

/** The agent's key for one delivery of secret values (SPKI DER, base64, X25519). */
export const secretsRequest = z.union([
  z.strictObject({ deploymentId: uuid, leaseId: uuid, publicKey: z.string().min(40).max(200) }),
  z.strictObject({ appName: dnsLabel, releaseId: uuid, publicKey: z.string().min(40).max(200) }),
]);
export type SecretsRequest = z.output<typeof secretsRequest>;

export const assignedRequest = z.strictObject({});

/** Where a claimed deployment stands, as the agent sees it in answers to renew and report. */
export interface DeploymentProgress {
  deploymentId: string;
  status: string;
  cancelRequested: boolean;
  verification: 'pending' | 'passed' | 'failed' | null;
  leaseExpiresAt: string | null;
}

export const deploymentChangedMessage = z.strictObject({
  deploymentId: uuid,
  status: label(40),
  cancelRequested: z.boolean(),
  verification: z.enum(['pending', 'passed', 'failed']).nullable(),
});
export const deploymentAssignedMessage = z.strictObject({ deploymentId: uuid, appName: dnsLabel });

/** One batch of output lines from an agent (`out.logs.<deploymentId>`). */
export const LOG_LINE_MAX_CHARACTERS = 4096;
export const LOG_BATCH_MAX_LINES = 256;
export const logBatch = z.strictObject({
  boot: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/),
  seq: z.number().int().min(0),
  lines: z
    .array(
      z.strictObject({
        t: z.string().max(40),
        s: z.enum(['build', 'out', 'err', 'sys']),
        x: z.string().max(LOG_LINE_MAX_CHARACTERS),
      }),
    )
    .min(1)
    .max(LOG_BATCH_MAX_LINES),
});
export type LogBatch = z.output<typeof logBatch>;
export type LogLine = LogBatch['lines'][number];

/** A secret's value as `PUT /apps/{name}/secrets/{NAME}` takes it; the message never repeats it. */
export const secretValueInput = z
  .string({ error: 'must be a string' })
  .min(8, 'secret values must be at least 8 characters so that they can be removed from logs')
  .max(32_768, 'must be at most 32768 characters');
