import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type JetStreamManager,
  type StreamConfig,
  type StreamInfo,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';

export interface AppendOnlyStreamOptions {
  name: string;
  subjects: string[];
  /** 1 on a single node, 3 in a cluster. */
  replicas: number;
  /** How long a command id (Nats-Msg-Id) is remembered for deduplication. */
  duplicateWindowMs: number;
  description?: string;
}

/** Raised when an existing stream could lose or rewrite history; the service refuses to start on it. */
export class UnsafeStreamError extends Error {
  constructor(
    readonly stream: string,
    readonly problems: string[],
  ) {
    super(
      `stream ${stream} is not safe for an append-only event log: ${problems.join('; ')}. ` +
        'Fix the stream configuration (nats stream edit, or recreate it from a backup) and start again; ' +
        'the service will not write to it as it is.',
    );
    this.name = 'UnsafeStreamError';
  }
}

export function appendOnlyStreamConfig(
  options: AppendOnlyStreamOptions,
): Partial<StreamConfig> & { name: string } {
  return {
    name: options.name,
    description: options.description,
    subjects: options.subjects,
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.New,
    max_msgs: -1,
    max_bytes: -1,
    max_age: 0,
    max_msgs_per_subject: -1,
    num_replicas: options.replicas,
    duplicate_window: nanos(options.duplicateWindowMs),
    deny_delete: true,
    deny_purge: true,
    allow_rollup_hdrs: false,
  };
}

/** Everything that would let history be lost or rewritten. Pure, so it is unit-tested directly. */
export function unsafeStreamSettings(config: StreamConfig, requiredSubjects: string[]): string[] {
  const problems: string[] = [];
  if (config.storage !== StorageType.File) problems.push(`storage is ${config.storage}, must be file`);
  if (!config.deny_delete) problems.push('deny_delete is off, must be on');
  if (!config.deny_purge) problems.push('deny_purge is off, must be on');
  if (config.allow_rollup_hdrs)
    problems.push('allow_rollup_hdrs is on (a rollup purges messages), must be off');
  if (config.retention !== RetentionPolicy.Limits)
    problems.push(`retention is ${config.retention}, must be limits`);
  if (config.max_age && config.max_age > 0) problems.push('max_age is set, events would expire');
  if (config.max_msgs !== undefined && config.max_msgs > 0)
    problems.push('max_msgs is set, old events would be dropped');
  if (config.max_bytes !== undefined && config.max_bytes > 0 && config.discard !== DiscardPolicy.New) {
    problems.push('max_bytes with discard old would drop events');
  }
  if (config.max_msgs_per_subject !== undefined && config.max_msgs_per_subject > 0) {
    problems.push('max_msgs_per_subject is set, aggregate history would be truncated');
  }
  if (config.sealed) problems.push('the stream is sealed');
  for (const subject of requiredSubjects) {
    if (!config.subjects?.includes(subject)) problems.push(`subjects do not include ${subject}`);
  }
  return problems;
}

/**
 * Creates the stream if it is missing; otherwise checks that it is safe, and updates only settings that
 * cannot lose history (duplicate window, description). Idempotent: every service calls it at start.
 */
export async function provisionAppendOnlyStream(
  jsm: JetStreamManager,
  options: AppendOnlyStreamOptions,
): Promise<{ created: boolean; info: StreamInfo; notUpdated?: string }> {
  const desired = appendOnlyStreamConfig(options);
  let existing: StreamInfo | undefined;
  try {
    existing = await jsm.streams.info(options.name);
  } catch (error) {
    if (!(error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound)) throw error;
  }
  if (!existing) {
    try {
      return { created: true, info: await jsm.streams.add(desired) };
    } catch (error) {
      // Another service created it at the same moment: fall through to the checks below.
      existing = await jsm.streams.info(options.name).catch(() => {
        throw error;
      });
    }
  }
  const problems = unsafeStreamSettings(existing.config, options.subjects);
  if (problems.length > 0) throw new UnsafeStreamError(options.name, problems);
  if (existing.config.duplicate_window !== desired.duplicate_window) {
    try {
      const info = await jsm.streams.update(options.name, {
        ...existing.config,
        duplicate_window: desired.duplicate_window,
      });
      return { created: false, info };
    } catch (error) {
      // Services may not edit streams (only the installation admin may): run with what is there.
      if (!isPermissionRefusal(error)) throw error;
      return {
        created: false,
        info: existing,
        notUpdated:
          `the ${options.name} stream's duplicate window is ${existing.config.duplicate_window} ns, this ` +
          `release asks for ${desired.duplicate_window} ns; update it as the installation admin ` +
          '(nats/installation-admin.creds)',
      };
    }
  }
  return { created: false, info: existing };
}

export interface DurableConsumerOptions {
  stream: string;
  durable: string;
  filterSubject: string;
  ackWaitMs: number;
  maxAckPending: number;
  /** Where a consumer created for the first time starts: the whole log, or only new events. */
  deliverFrom: 'all' | 'new';
}

/**
 * Creates or updates a durable pull consumer. The server's own max_deliver stays unlimited: the transport
 * counts deliveries and dead-letters on its own, so a crash on the last attempt never drops an event silently.
 */
export async function provisionDurableConsumer(
  jsm: JetStreamManager,
  options: DurableConsumerOptions,
): Promise<void> {
  const editable = {
    ack_wait: nanos(options.ackWaitMs),
    max_ack_pending: options.maxAckPending,
    max_deliver: -1,
  };
  try {
    const existing = await jsm.consumers.info(options.stream, options.durable);
    if (existing.config.filter_subject !== options.filterSubject) {
      throw new Error(
        `consumer ${options.durable} on ${options.stream} filters ${existing.config.filter_subject}, expected ` +
          `${options.filterSubject}; delete it (nats consumer rm ${options.stream} ${options.durable}) to recreate it`,
      );
    }
    const current = existing.config;
    if (
      current.ack_wait !== editable.ack_wait ||
      current.max_ack_pending !== editable.max_ack_pending ||
      current.max_deliver !== editable.max_deliver
    ) {
      await jsm.consumers.update(options.stream, options.durable, editable);
    }
    return;
  } catch (error) {
    if (!(error instanceof JetStreamApiError && error.code === JetStreamApiCodes.ConsumerNotFound))
      throw error;
  }
  await jsm.consumers.add(options.stream, {
    durable_name: options.durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: options.deliverFrom === 'all' ? DeliverPolicy.All : DeliverPolicy.New,
    filter_subject: options.filterSubject,
    ...editable,
  });
}

/** The broker refused a JetStream API call to this user (nats-server's permissions violation). */
export function isPermissionRefusal(error: unknown): boolean {
  const message = error instanceof Error ? error.message : String(error);
  return /permissions violation/i.test(message);
}
