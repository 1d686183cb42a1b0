import { readFileSync } from 'node:fs';
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type JetStreamManager,
} from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import { agentUserJwt, BrokerAccounts, readNatsKeys, secretsLayout, type NatsKeys } from '#auth';
import { AGENTS_STREAM, agentSubjects } from '#contracts';
import { isPermissionRefusal } from '#eventstore';
import type { Logger } from '#platform';
import type { RegistrationConfig } from './config.js';

/**
 * Everything registration does on the broker for agents: the AGENTS stream, each agent's own account
 * (imports of its own subjects only) and durable consumer (both made here, never by the agent), its
 * user JWT, and revocation through its account JWT.
 */
export class AgentBroker {
  private constructor(
    private readonly jsm: JetStreamManager,
    private readonly keys: NatsKeys,
    private readonly accounts: BrokerAccounts,
    private readonly config: RegistrationConfig,
    private readonly logger: Logger,
  ) {}

  static async open(
    jsm: JetStreamManager,
    system: NatsConnection,
    config: RegistrationConfig,
    logger: Logger,
  ): Promise<AgentBroker> {
    const keys = await readNatsKeys(secretsLayout(config.CL_SECRETS_DIR));
    const broker = new AgentBroker(jsm, keys, new BrokerAccounts(system, keys), config, logger);
    await broker.provisionStream();
    return broker;
  }

  static systemCredentials(config: RegistrationConfig): Uint8Array {
    return readFileSync(config.CL_NATS_SYSTEM_CREDS ?? secretsLayout(config.CL_SECRETS_DIR).systemCreds);
  }

  /** The AGENTS stream: what each agent must receive, kept while it is offline (bounded by max age). */
  async provisionStream(): Promise<void> {
    const desired = {
      name: AGENTS_STREAM,
      description: 'CloudLunacy: messages to agents, read through one durable consumer per agent',
      subjects: agentSubjects.streamSubjects,
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      max_age: nanos(this.config.CL_AGENTS_MAX_AGE_S * 1000),
      num_replicas: this.config.CL_AGENTS_REPLICAS,
      duplicate_window: nanos(2 * 60 * 1000),
    };
    try {
      const info = await this.jsm.streams.info(AGENTS_STREAM);
      if (info.config.max_age !== desired.max_age) {
        await this.jsm.streams
          .update(AGENTS_STREAM, { ...info.config, max_age: desired.max_age })
          .catch((error: unknown) => {
            // Only the installation admin may edit streams: run with the age that is there.
            if (!isPermissionRefusal(error)) throw error;
            this.logger.warn('stream settings left as they are', {
              stream: AGENTS_STREAM,
              maxAgeNs: info.config.max_age,
              wantedNs: desired.max_age,
              reason: 'update it as the installation admin (nats/installation-admin.creds)',
            });
          });
      }
    } catch (error) {
      if (!(error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound))
        throw error;
      await this.jsm.streams.add(desired).catch(async (addError: unknown) => {
        // Another replica created it meanwhile.
        await this.jsm.streams.info(AGENTS_STREAM).catch(() => {
          throw addError;
        });
      });
    }
  }

  /** Creates the agent's durable consumer if it is missing; it starts at the beginning of its subjects. */
  async ensureConsumer(agentId: string): Promise<void> {
    const durable = agentSubjects.consumer(agentId);
    try {
      await this.jsm.consumers.info(AGENTS_STREAM, durable);
      return;
    } catch (error) {
      if (!(error instanceof JetStreamApiError && error.code === JetStreamApiCodes.ConsumerNotFound))
        throw error;
    }
    await this.jsm.consumers.add(AGENTS_STREAM, {
      durable_name: durable,
      filter_subject: agentSubjects.inbound(agentId),
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(30_000),
      max_ack_pending: 256,
      max_deliver: -1,
    });
  }

  async deleteConsumer(agentId: string): Promise<void> {
    try {
      await this.jsm.consumers.delete(AGENTS_STREAM, agentSubjects.consumer(agentId));
    } catch (error) {
      if (!(error instanceof JetStreamApiError && error.code === JetStreamApiCodes.ConsumerNotFound))
        throw error;
    }
  }

  /** A user JWT for the agent's own public key, allowing only its own subjects and consumer. */
  userJwt(agentId: string, publicKey: string): Promise<string> {
    return agentUserJwt({
      agentId,
      publicKey,
      ttlSeconds: this.config.CL_AGENT_NATS_JWT_TTL_S,
      keys: this.keys,
    });
  }

  /** The services' account as this release defines it (its exports to agents' accounts). */
  async ensureServicesAccount(): Promise<void> {
    const { pushed } = await this.accounts.ensureServicesAccount();
    if (pushed) this.logger.info("the services' account was updated on the broker");
  }

  /**
   * The agent's own account on the broker: active, or revoked as of `deregisteredAt`. `isNew` for an
   * agent enrolled just now (its account cannot be on the server yet).
   */
  async ensureAccount(
    agentId: string,
    options: { deregisteredAt?: Date; isNew?: boolean } = {},
  ): Promise<void> {
    const revokedAt = options.deregisteredAt ? revocationTime(options.deregisteredAt) : undefined;
    const { pushed } = await this.accounts.ensureAgentAccount(agentId, {
      isNew: options.isNew ?? false,
      ...(revokedAt === undefined ? {} : { revokedAt }),
    });
    if (pushed && revokedAt !== undefined) {
      this.logger.info('agent revoked on the broker', { agentId });
    }
  }
}

/**
 * A revocation covers JWTs issued at or before this second. One second later than the deregistration,
 * so a JWT signed in the same second is covered too (none is signed after: the agent is deregistered).
 */
export function revocationTime(at: Date): number {
  return Math.floor(at.getTime() / 1000) + 1;
}
