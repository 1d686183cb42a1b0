import { Controller, Get, HttpCode, Inject, Param, Post, Res } from '@nestjs/common';
import type { Response } from 'express';
import {
  appName,
  credentialsBoxInfo,
  databaseSecret,
  deploymentCommands,
  DomainError,
  parseOrThrow,
  backupId,
  type BackupView,
  type DatabaseCommandReply,
  type DatabaseCredentialsView,
  type DatabaseOperation,
  type DatabaseSecret,
} from '#contracts';
import { CommandBus } from '#messaging';
import { generateSealingKeyPair, open } from '#pki-client';
import { API_CONFIG } from './agents.controller.js';
import { actorOf, Auth, CurrentPrincipal, type Principal } from './auth.js';
import type { ApiConfig } from './config.js';

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
 * A database's own operations, run live by the agent that runs it (nothing of them is stored on the
 * front): `GET /api/v1/apps/{name}/credentials` and `POST …/credentials/rotate` (through a box sealed
 * to a key this process made for the one request: the services and the broker pass it on unread);
 * `POST …/backups` (started; `GET …/backups` shows it running, then done), and
 * `POST …/backups/{backupId}/restore`. Admins only.
 */
@Controller()
export class DatabasesController {
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
    return this.credentials(name, false, principal, response);
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
    return this.credentials(name, true, principal, response);
  }

  /** Starts a backup on the VPS (it stays there); the answer is the backup, running. */
  @Post('apps/:name/backups')
  @HttpCode(202)
  @Auth('admin')
  async backup(@Param('name') name: string, @CurrentPrincipal() principal: Principal): Promise<BackupView> {
    const reply = await this.ask(name, { kind: 'backup' }, principal);
    if (!('backup' in reply.answer)) throw unexpected(reply);
    return reply.answer.backup;
  }

  @Get('apps/:name/backups')
  @Auth('admin')
  async backups(
    @Param('name') name: string,
    @CurrentPrincipal() principal: Principal,
  ): Promise<{ backups: BackupView[] }> {
    const reply = await this.ask(name, { kind: 'backups' }, principal);
    if (!('backups' in reply.answer)) throw unexpected(reply);
    return { backups: reply.answer.backups };
  }

  /** The database serves the backup's data (what it held since is set aside on the VPS, not deleted). */
  @Post('apps/:name/backups/:backupId/restore')
  @HttpCode(200)
  @Auth('admin')
  async restore(
    @Param('name') name: string,
    @Param('backupId') id: string,
    @CurrentPrincipal() principal: Principal,
  ): Promise<BackupView> {
    const reply = await this.ask(
      name,
      { kind: 'restore', backupId: parseOrThrow(backupId, id, 'backupId') },
      principal,
    );
    if (!('backup' in reply.answer)) throw unexpected(reply);
    return reply.answer.backup;
  }

  private ask(
    name: string,
    operation: DatabaseOperation,
    principal: Principal,
  ): Promise<DatabaseCommandReply> {
    return this.commands.execute<DatabaseCommandReply>(
      deploymentCommands.database,
      { appName: parseOrThrow(appName, name, 'name'), operation },
      { actor: actorOf(principal), commandId: crypto.randomUUID() },
    );
  }

  private async credentials(
    name: string,
    rotate: boolean,
    principal: Principal,
    response: Response,
  ): Promise<DatabaseCredentialsView> {
    const keys = generateSealingKeyPair();
    const reply = await this.ask(name, { kind: 'credentials', publicKey: keys.publicKey, rotate }, principal);
    if (!('sealed' in reply.answer)) throw unexpected(reply);
    let secret: DatabaseSecret;
    try {
      secret = databaseSecret.parse(
        JSON.parse(
          open(reply.answer.sealed, keys.privateKey, credentialsBoxInfo(reply.requestId)).toString('utf8'),
        ),
      );
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
      appName: name,
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

const unexpected = (reply: DatabaseCommandReply) =>
  new DomainError('unavailable', `agent ${reply.agentId} answered something else: is it up to date?`);
