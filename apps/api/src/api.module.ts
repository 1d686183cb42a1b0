import { readFileSync } from 'node:fs';
import { Module, type DynamicModule } from '@nestjs/common';
import { DiscoveryModule, NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { DataSource } from 'typeorm';
import { secretsLayout, TokenSigner, TokenVerifier } from '#auth';
import type { NatsConnection } from '@nats-io/transport-node';
import { CommandBusModule, LastHeartbeats } from '#messaging';
import { DatabaseModule } from '#persistence';
import { LOGGER, NestJsonLogger, type Logger } from '#platform';
import { AdminController } from './admin.controller.js';
import { AgentsController, API_CONFIG } from './agents.controller.js';
import { Authenticator, AuthGuard } from './auth.js';
import { CapabilitiesController } from './capabilities.controller.js';
import { DatabasesController } from './databases.controller.js';
import { CertificatesController } from './certificates.controller.js';
import type { ApiConfig } from './config.js';
import { dashboardHandler, loadDashboard, securityHeaders } from './dashboard.js';
import { DeadLetters } from './dead-letters.js';
import { DeploymentLogsController } from './deployment-logs.controller.js';
import { DeploymentLogReader } from './deployment-logs.js';
import { DeploymentSourceController } from './deployment-source.controller.js';
import { DeploymentUploads } from './deployment-uploads.js';
import { bodyEncodingGuard, correlationScope, requestId } from './edge.js';
import { ApiExceptionFilter, bodyErrorHandler } from './errors.js';
import { API_NATS, EventLogModule } from './event-log.js';
import { EventsController } from './events.controller.js';
import { LiveController } from './live.controller.js';
import { LiveUpdates } from './live.js';
import { OverviewController } from './overview.controller.js';
import { ProjectionPosition } from './projection-position.js';
import { ProxyNodesController } from './proxy-nodes.controller.js';
import { RouteWaiter } from './route-waiter.js';
import { AppsController, DeploymentWaiter } from './apps.controller.js';
import { RoutesController } from './routes.controller.js';
import { SessionStore } from './sessions.js';

export const API_PREFIX = 'api/v1';

@Module({})
export class ApiModule {
  static forRoot(config: ApiConfig, logger: Logger): DynamicModule {
    const layout = secretsLayout(config.CL_SECRETS_DIR);
    return {
      module: ApiModule,
      imports: [
        DatabaseModule.forRoot(config, 'api'),
        CommandBusModule.forRoot(config, 'api'),
        EventLogModule.forRoot(config),
        DiscoveryModule,
      ],
      controllers: [
        AgentsController,
        RoutesController,
        AppsController,
        DatabasesController,
        DeploymentLogsController,
        DeploymentSourceController,
        EventsController,
        AdminController,
        CertificatesController,
        ProxyNodesController,
        OverviewController,
        LiveController,
        CapabilitiesController,
      ],
      providers: [
        { provide: API_CONFIG, useValue: config },
        { provide: LOGGER, useValue: logger },
        {
          provide: TokenSigner,
          useFactory: () => new TokenSigner(readFileSync(layout.jwtPrivateKey, 'utf8')),
        },
        {
          provide: TokenVerifier,
          useFactory: () => new TokenVerifier(readFileSync(layout.jwtPublicKey, 'utf8')),
        },
        {
          provide: SessionStore,
          useFactory: (dataSource: DataSource) => new SessionStore(dataSource, config.CL_REFRESH_TOKEN_TTL_S),
          inject: [DataSource],
        },
        {
          provide: LastHeartbeats,
          useFactory: (connection: NatsConnection) => {
            const heartbeats = new LastHeartbeats(connection, logger.child({ component: 'heartbeats' }));
            heartbeats.start();
            return heartbeats;
          },
          inject: [API_NATS],
        },
        Authenticator,
        AuthGuard,
        RouteWaiter,
        {
          provide: DeploymentWaiter,
          useFactory: (dataSource: DataSource) => new DeploymentWaiter(dataSource),
          inject: [DataSource],
        },
        DeadLetters,
        ProjectionPosition,
        LiveUpdates,
        DeploymentLogReader,
        {
          provide: DeploymentUploads,
          useFactory: (connection: NatsConnection) =>
            new DeploymentUploads(
              connection,
              {
                maxBytes: config.CL_DEPLOY_UPLOAD_MAX_BYTES,
                maxAgeS: config.CL_DEPLOY_UPLOAD_MAX_AGE_S,
                storeMaxBytes: config.CL_DEPLOY_UPLOAD_STORE_MAX_BYTES,
              },
              logger.child({ component: 'uploads' }),
            ),
          inject: [API_NATS],
        },
      ],
    };
  }
}

/**
 * The HTTP API on express: JSON bodies (64 KiB at most), `/api/v1`, one error shape, the dashboard at `/`.
 * Not yet listening.
 */
export async function createApiApp(config: ApiConfig, logger: Logger): Promise<NestExpressApplication> {
  const app = await NestFactory.create<NestExpressApplication>(ApiModule.forRoot(config, logger), {
    bodyParser: false,
    logger: new NestJsonLogger(logger),
  });
  // A request id first, so that everything after it (errors included) can name the request.
  app.use(requestId);
  app.use(bodyEncodingGuard);
  app.useBodyParser('json', { limit: '64kb', strict: false });
  app.use(bodyErrorHandler(logger));
  app.use(correlationScope);
  app.setGlobalPrefix(API_PREFIX);
  app.useGlobalFilters(new ApiExceptionFilter(logger));
  app.disable('x-powered-by');
  // Security headers on every response; the dashboard at `/` (never under /api).
  app.use(securityHeaders);
  app.use(dashboardHandler(loadDashboard(config.CL_DASHBOARD_DIR, logger)));
  // Longer than the idle timeout of clients and proxies in front, so a reused connection is never
  // closed by the server while a request is on its way (ECONNRESET under load).
  const server = app.getHttpServer() as import('node:http').Server;
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  return app;
}
