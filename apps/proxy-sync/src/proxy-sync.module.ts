import {
  Inject,
  Injectable,
  Module,
  type DynamicModule,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { DataSource } from 'typeorm';
import { CRL_BUCKET } from '#auth';
import { DataplaneClient } from '#dataplane';
import { EventStore, EventStoreModule, NATS_CONNECTION } from '#eventstore';
import { BucketWatch } from '#messaging';
import { DatabaseModule } from '#persistence';
import { LOGGER, retryWhileTransient, type Logger } from '#platform';
import { layoutOf, type ProxySyncConfig } from './config.js';
import { DataplaneGateway } from './gateway.js';
import { PostgresRouteSource } from './postgres-route-source.js';
import { Reconciler } from './reconciler.js';
import { EventStoreReporter, KvNodeReporter } from './reporting.js';
import type { RouteSource } from './route-source.js';
import { TargetStreamsResponder } from './target-streams.js';
import { RouteEventTrigger } from './trigger.js';

const PROXY_SYNC_CONFIG = Symbol('PROXY_SYNC_CONFIG');

/**
 * The route source of a deployment: the routes projection in Postgres, read incrementally, with
 * checkpoint notifications on a connection of its own.
 */
export function routeSourceOf(
  config: ProxySyncConfig,
  dataSource: DataSource,
  logger: Logger,
): PostgresRouteSource {
  return new PostgresRouteSource(dataSource, {
    node: config.CL_PROXY_NODE_ID,
    waitTimeoutMs: config.CL_PROXY_PROJECTION_WAIT_MS,
    notifications: () =>
      new pg.Client({
        connectionString: config.CL_DATABASE_URL,
        application_name: `proxy-sync-${config.CL_PROXY_NODE_ID}-listen`,
      }),
    logger: logger.child({ node: config.CL_PROXY_NODE_ID }),
  });
}
export function dataplaneClientOf(config: ProxySyncConfig): DataplaneClient {
  return new DataplaneClient({
    baseUrl: config.CL_DATAPLANE_URL,
    username: config.CL_DATAPLANE_USER,
    password: config.CL_DATAPLANE_PASSWORD,
  });
}

/** Builds the reconciler from its parts; used by the Nest service and by tests that run it in-process. */
export function createReconciler(parts: {
  config: ProxySyncConfig;
  source: RouteSource;
  routes: ConstructorParameters<typeof Reconciler>[2];
  node: ConstructorParameters<typeof Reconciler>[3];
  logger: Logger;
  /** The newest CRL the certificates service published (undefined until one arrived). */
  crl?: () => string | undefined;
}): Reconciler {
  const { config } = parts;
  const client = dataplaneClientOf(config);
  const certificateFile = config.CL_FRONT_CERT_FILE;
  return new Reconciler(
    new DataplaneGateway(client),
    parts.source,
    parts.routes,
    parts.node,
    {
      node: config.CL_PROXY_NODE_ID,
      layout: layoutOf(config),
      intervalMs: config.CL_PROXY_RECONCILE_INTERVAL_MS,
      backoffMinMs: config.CL_PROXY_BACKOFF_MIN_MS,
      backoffMaxMs: config.CL_PROXY_BACKOFF_MAX_MS,
      frontCertificate: certificateFile
        ? { name: config.CL_FRONT_CERT_NAME, read: () => readFile(certificateFile, 'utf8') }
        : undefined,
      crl:
        config.CL_PROXY_CHECK_CRL && parts.crl
          ? {
              name: config.CL_PROXY_CRL_NAME,
              path: join(config.CL_PROXY_GENERAL_DIR, config.CL_PROXY_CRL_NAME),
              current: parts.crl,
            }
          : undefined,
    },
    parts.logger.child({ node: config.CL_PROXY_NODE_ID }),
  );
}

const CRL_FIRST_WAIT_MS = 3_000;

/** One PEM CRL block and nothing else, of a sane size: what is stored for HAProxy to load. */
export function isCrlPem(text: string): boolean {
  return (
    text.length < 4 * 1024 * 1024 &&
    /^-----BEGIN X509 CRL-----\r?\n[A-Za-z0-9+/=\r\n]+-----END X509 CRL-----\r?\n?$/.test(text)
  );
}

@Injectable()
export class ProxySyncService implements OnApplicationBootstrap, OnApplicationShutdown {
  private reconciler?: Reconciler;
  private source?: RouteSource;
  private trigger?: RouteEventTrigger;
  private crlWatch?: BucketWatch;
  private crl?: string;
  private streams?: TargetStreamsResponder;

  constructor(
    @Inject(PROXY_SYNC_CONFIG) private readonly config: ProxySyncConfig,
    @Inject(EventStore) private readonly store: EventStore,
    @Inject(NATS_CONNECTION) private readonly connection: NatsConnection,
    @Inject(DataSource) private readonly dataSource: DataSource,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const node = this.config.CL_PROXY_NODE_ID;
    const kv = await retryWhileTransient(
      `JetStream to open the ${this.config.CL_PROXY_KV_BUCKET} bucket`,
      () => new Kvm(this.connection).create(this.config.CL_PROXY_KV_BUCKET, { history: 1 }),
      this.logger,
    );
    this.source = routeSourceOf(this.config, this.dataSource, this.logger);
    const reconciler = createReconciler({
      config: this.config,
      source: this.source,
      routes: new EventStoreReporter(this.store, node, this.logger),
      node: new KvNodeReporter(kv, this.store, node),
      logger: this.logger,
      crl: () => this.crl,
    });
    this.reconciler = reconciler;
    this.streams = new TargetStreamsResponder(
      this.connection,
      node,
      dataplaneClientOf(this.config),
      this.logger.child({ component: 'target-streams' }),
    );
    this.streams.start();
    if (this.config.CL_PROXY_CHECK_CRL) {
      // Each CRL the certificates service signs (after every revocation) reaches HAProxy in a pass.
      let first: () => void = () => undefined;
      const arrived = new Promise<void>((resolve) => (first = resolve));
      this.crlWatch = new BucketWatch(
        this.connection,
        CRL_BUCKET,
        (key, value) => {
          if (key !== 'current' || value === undefined || !isCrlPem(value) || value === this.crl) return;
          const initial = this.crl === undefined;
          this.crl = value;
          if (initial) first();
          else void reconciler.reconcileSoon({ full: true });
        },
        this.logger.child({ component: 'crl' }),
      );
      this.crlWatch.start();
      // The first pass with the CRL already there saves a second reload right after it; without the
      // certificates service running, routes do not wait for it long.
      await Promise.race([arrived, new Promise((resolve) => setTimeout(resolve, CRL_FIRST_WAIT_MS))]);
      if (this.crl === undefined) {
        this.logger.warn('no CRL published yet: TLS targets are checked against the CA only until one is');
        void arrived.then(() => reconciler.reconcileSoon({ full: true }));
      }
    }
    // Events after the log's current end wake a pass; the first pass reads a projection at least that new.
    const logEnd = await this.store.lastSequence();
    if (this.config.CL_PROXY_TRIGGER_SUBJECT) {
      this.trigger = new RouteEventTrigger(
        this.store,
        this.config.CL_PROXY_TRIGGER_SUBJECT,
        (sequence) => void reconciler.reconcileSoon({ minSequence: sequence }),
        this.logger,
      );
      this.trigger.start(logEnd + 1);
    }
    await reconciler.start({ minSequence: logEnd });
  }

  async onApplicationShutdown(): Promise<void> {
    this.streams?.stop();
    this.crlWatch?.stop();
    await this.trigger?.stop();
    await this.reconciler?.stop();
    await this.source?.close?.();
  }
}

@Module({})
export class ProxySyncModule {
  static forRoot(config: ProxySyncConfig, logger: Logger): DynamicModule {
    const name = `proxy-sync-${config.CL_PROXY_NODE_ID}`;
    return {
      module: ProxySyncModule,
      imports: [EventStoreModule.forRoot(config, name), DatabaseModule.forRoot(config, name)],
      providers: [
        { provide: PROXY_SYNC_CONFIG, useValue: config },
        { provide: LOGGER, useValue: logger },
        ProxySyncService,
      ],
    };
  }
}
