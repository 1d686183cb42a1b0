import type { INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { NestJsonLogger, type Logger } from '#platform';
import type { ProxySyncConfig } from './config.js';
import { ProxySyncModule } from './proxy-sync.module.js';

/**
 * proxy-sync: reconciles one HAProxy with the routes projection through its Data Plane API, and reports
 * what it applied. It answers no commands and serves no HTTP, so it is an application context, not a server.
 */
export function createProxySyncApp(
  config: ProxySyncConfig,
  logger: Logger,
): Promise<INestApplicationContext> {
  return NestFactory.createApplicationContext(ProxySyncModule.forRoot(config, logger), {
    logger: new NestJsonLogger(logger),
  });
}
