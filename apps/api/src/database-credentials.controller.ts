import { Controller, Get, HttpCode, Inject, Param, Post, Res } from '@nestjs/common';
import type { Response } from 'express';
import {
  appName,
  credentialsBoxInfo,
  deploymentCommands,
  DomainError,
  parseOrThrow,
  type DatabaseCredentialsReply,
  type DatabaseSecret,
} from '#contracts';
import { CommandBus } from '#messaging';
import { generateSealingKeyPair, open } from '#pki-client';
import { API_CONFIG } from './agents.controller.js';
import { actorOf, Auth, CurrentPrincipal, type Principal } from './auth.js';
import type { ApiConfig } from './config.js';

/** What an admin gets: where to connect and how, with the password. Never cached, never logged. */
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

function connectionStringOf(engine: string, secret: DatabaseSecret, hostname: string, port: number): string {
  const auth = `${encodeURIComponent(secret.user)}:${encodeURIComponent(secret.password)}`;
  switch (engine) {
    case 'redis':
      return `rediss://${auth}@${hostname}:${port}`;
    default:
      return `${engine}://${auth}@${hostname}:${port}/?tls=true`;
  }
}

/**
 * `GET /api/v1/apps/{name}/credentials` and `POST …/credentials/rotate`: a database's credentials,
 * fetched live from the agent that made them, through a box sealed to a key this process made for the
 * one request (the services and the broker pass it on unread). Nothing of them is stored on the front.
 */
@Controller()
export class DatabaseCredentialsController {
  constructor(
    @Inject(CommandBus) private readonly commands: CommandBus,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
  ) {}

  @Get('apps/:name/credentials')
  @Auth('admin')
  read(
    @Param('name') name: string,
    @CurrentPrincipal() principal: Principal,
    @Res({ passthrough: true }) response: Response,
  ): Promise<DatabaseCredentialsView> {
    return this.fetch(name, false, principal, response);
  }

  /** A new password, made on the agent; the old one stops working, connected clients stay. */
  @Post('apps/:name/credentials/rotate')
  @HttpCode(200)
  @Auth('admin')
  rotate(
    @Param('name') name: string,
    @CurrentPrincipal() principal: Principal,
    @Res({ passthrough: true }) response: Response,
  ): Promise<DatabaseCredentialsView> {
    return this.fetch(name, true, principal, response);
  }

  private async fetch(
    name: string,
    rotate: boolean,
    principal: Principal,
    response: Response,
  ): Promise<DatabaseCredentialsView> {
    const app = parseOrThrow(appName, name, 'name');
    const keys = generateSealingKeyPair();
    const reply = await this.commands.execute<DatabaseCredentialsReply>(
      deploymentCommands.databaseCredentials,
      { appName: app, publicKey: keys.publicKey, rotate },
      { actor: actorOf(principal), commandId: crypto.randomUUID() },
    );
    let secret: DatabaseSecret;
    try {
      secret = JSON.parse(
        open(reply.sealed, keys.privateKey, credentialsBoxInfo(reply.requestId)).toString('utf8'),
      ) as DatabaseSecret;
    } catch {
      throw new DomainError(
        'unavailable',
        `the answer of agent ${reply.agentId} could not be opened`,
        'name',
      );
    }
    response.setHeader('Cache-Control', 'no-store');
    const port = this.config.CL_FRONT_SNI_PORT;
    return {
      appName: app,
      engine: reply.engine,
      hostname: reply.hostname,
      port,
      user: secret.user,
      password: secret.password,
      connectionString: connectionStringOf(reply.engine, secret, reply.hostname, port),
      rotatedAt: secret.rotatedAt,
    };
  }
}
