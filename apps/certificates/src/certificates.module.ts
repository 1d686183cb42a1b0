import {
  Inject,
  Injectable,
  Module,
  type BeforeApplicationShutdown,
  type DynamicModule,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { CRL_BUCKET } from '#auth';
import { DataSource } from 'typeorm';
import { aggregateTypeSubjects, type DomainEvent } from '#contracts';
import { EventStore, EventStoreModule, NATS_CONNECTION } from '#eventstore';
import { AgentRequestServer } from '#messaging';
import { DatabaseModule } from '#persistence';
import type { PkiSettings } from '#pki';
import { LOGGER, retryWhileTransient, type Logger } from '#platform';
import { AgentChannel } from './agent-channel.js';
import { agentCertificateRequests } from './agent-requests.js';
import { Authority } from './authority.js';
import { CertificateIndex } from './certificate-index.js';
import { CertificateEventHandlers, CertificatesController } from './certificates.controller.js';
import { CertificateCommands } from './certificates.commands.js';
import type { CertificatesConfig } from './config.js';
import { CrlPublisher } from './crl.js';
import { evolveAgentLife, type AgentLife } from './domain/decider.js';
import { RenewalScheduler } from './renewal.js';

const CONFIG = Symbol('CERTIFICATES_CONFIG');

/** Every deregistered agent, folded from the agent events of the log. */
async function deregisteredAgents(store: EventStore): Promise<Set<string>> {
  const agents = new Map<string, AgentLife>();
  for await (const event of store.readLog({
    filterSubject: aggregateTypeSubjects('agent', store.subjectPrefix),
  })) {
    const id = event.aggregate.id;
    agents.set(id, evolveAgentLife(agents.get(id) ?? { status: 'absent' }, event as DomainEvent));
  }
  return new Set([...agents].filter(([, state]) => state.status === 'deregistered').map(([id]) => id));
}

/**
 * At start: records the CA in the log (once per fingerprint), revokes what deregistered agents still hold,
 * signs a CRL, makes sure of the front's bundle, then answers agents and starts the renewal timer.
 */
@Injectable()
class CertificatesLifecycle implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;

  constructor(
    @Inject(EventStore) private readonly store: EventStore,
    @Inject(Authority) private readonly authority: Authority,
    @Inject(CertificateCommands) private readonly commands: CertificateCommands,
    @Inject(CrlPublisher) private readonly crl: CrlPublisher,
    @Inject(AgentRequestServer) private readonly requests: AgentRequestServer,
    @Inject(RenewalScheduler) private readonly renewal: RenewalScheduler,
    @Inject(CONFIG) private readonly config: CertificatesConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    // Idempotent steps over the broker: a timeout on a loaded machine is waited out, not fatal.
    await retryWhileTransient(
      'the event log to record the CA and the front certificate',
      async () => {
        await this.authority.record(this.store, this.logger);
        await this.commands.revokeOfDeregistered(await deregisteredAgents(this.store));
        await this.crl.rebuild();
        await this.commands.ensureFront();
      },
      this.logger,
    );
    this.requests.start();
    const tick = () => {
      if (this.running) return;
      this.running = this.renewal
        .tick()
        // The CRL is signed again well before its nextUpdate (and after revocations of other replicas).
        .then(() => this.crl.current())
        .then(() => undefined)
        .catch((error: unknown) => this.logger.warn('renewal check failed; will try again', { error }))
        .finally(() => (this.running = undefined));
    };
    this.timer = setInterval(tick, this.config.CL_CERTS_RENEW_CHECK_MS);
    tick();
    this.logger.info('certificates ready', {
      ca: this.authority.ca.fingerprint,
      domain: this.authority.domain,
      front: this.config.CL_FRONT_CERT_FILE ?? this.authority.settings.frontCertificateFile ?? null,
    });
  }

  async beforeApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.requests.stop();
    await this.running;
  }
}

@Module({})
export class CertificatesModule {
  static forRoot(config: CertificatesConfig, pki: PkiSettings, logger: Logger): DynamicModule {
    return {
      module: CertificatesModule,
      imports: [
        EventStoreModule.forRoot(config, 'certificates'),
        DatabaseModule.forRoot(config, 'certificates'),
      ],
      controllers: [CertificatesController, CertificateEventHandlers],
      providers: [
        { provide: LOGGER, useValue: logger },
        { provide: CONFIG, useValue: config },
        { provide: Authority, useFactory: () => Authority.open(pki, logger) },
        {
          provide: CertificateIndex,
          useFactory: (store: EventStore) => new CertificateIndex(store),
          inject: [EventStore],
        },
        {
          provide: CrlPublisher,
          useFactory: async (authority: Authority, index: CertificateIndex, connection: NatsConnection) => {
            const bucket = await retryWhileTransient(
              'JetStream to open the CRL bucket',
              () => new Kvm(connection).create(CRL_BUCKET, { history: 1 }),
              logger,
            );
            return new CrlPublisher(
              authority,
              index,
              config.CL_CERTS_CRL_REFRESH_S,
              logger.child({ component: 'crl' }),
              async (pem) => {
                await bucket.put('current', pem);
              },
            );
          },
          inject: [Authority, CertificateIndex, NATS_CONNECTION],
        },
        {
          provide: AgentChannel,
          useFactory: (connection: NatsConnection) => new AgentChannel(connection, logger),
          inject: [NATS_CONNECTION],
        },
        {
          provide: CertificateCommands,
          useFactory: (
            store: EventStore,
            dataSource: DataSource,
            authority: Authority,
            index: CertificateIndex,
            crl: CrlPublisher,
            channel: AgentChannel,
          ) =>
            new CertificateCommands(
              store,
              dataSource,
              authority,
              index,
              crl,
              channel,
              { frontCertificateFile: config.CL_FRONT_CERT_FILE ?? pki.frontCertificateFile },
              logger,
            ),
          inject: [EventStore, DataSource, Authority, CertificateIndex, CrlPublisher, AgentChannel],
        },
        {
          provide: AgentRequestServer,
          useFactory: (connection: NatsConnection, commands: CertificateCommands) =>
            agentCertificateRequests(connection, commands, logger.child({ component: 'agent-requests' })),
          inject: [NATS_CONNECTION, CertificateCommands],
        },
        {
          provide: RenewalScheduler,
          useFactory: (
            dataSource: DataSource,
            channel: AgentChannel,
            commands: CertificateCommands,
            authority: Authority,
          ) =>
            new RenewalScheduler(
              dataSource,
              channel,
              commands,
              {
                renewBeforeSeconds: pki.renewBeforeSeconds,
                retrySeconds: config.CL_CERTS_RENEW_RETRY_S,
                caNotAfter: authority.ca.notAfter,
              },
              logger.child({ component: 'renewal' }),
            ),
          inject: [DataSource, AgentChannel, CertificateCommands, Authority],
        },
        CertificatesLifecycle,
      ],
      exports: [CertificateCommands, Authority],
    };
  }
}
