import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { MicroserviceOptions } from '@nestjs/microservices';
import { aggregateTypeSubjects, CERTIFICATES_SERVICE } from '#contracts';
import { connectEventConsumer, EventStore, NATS_CONNECTION } from '#eventstore';
import { commandServerOptions } from '#messaging';
import { PostgresDeadLetters } from '#persistence';
import type { PkiSettings } from '#pki';
import { NestJsonLogger, type Logger } from '#platform';
import { CertificatesModule } from './certificates.module.js';
import type { CertificatesConfig } from './config.js';

/** The durable consumer of the certificates service on the event log (and the name of its dead letters). */
export const CERTIFICATES_CONSUMER = 'certificates';

/**
 * The certificates service: commands over NATS request/reply (`cmd.certificates.*`), agents' certificate
 * requests on their own prefixes, a durable consumer of agent events (revocation on deregistration), and
 * the renewal timer. It serves no HTTP: the API does (`/api/v1/ca.pem`, `/crl.pem`, `/certificates`, …).
 */
export async function createCertificatesApp(
  config: CertificatesConfig,
  pki: PkiSettings,
  logger: Logger,
  options: { nestLogs?: boolean } = {},
): Promise<INestApplication> {
  const app = await NestFactory.create(CertificatesModule.forRoot(config, pki, logger), {
    logger: options.nestLogs === false ? false : new NestJsonLogger(logger),
  });
  try {
    app.connectMicroservice<MicroserviceOptions>(commandServerOptions(config, CERTIFICATES_SERVICE), {
      inheritAppConfig: false,
    });
    const store = app.get(EventStore);
    connectEventConsumer(app, {
      connection: app.get(NATS_CONNECTION),
      store,
      durable: CERTIFICATES_CONSUMER,
      filterSubject: aggregateTypeSubjects('agent', store.subjectPrefix),
      deadLetters: app.get(PostgresDeadLetters),
      logger,
    });
    await app.startAllMicroservices();
    await app.init();
  } catch (error) {
    await app.close().catch(() => undefined);
    throw error;
  }
  return app;
}
