import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Controller, Get, Inject, Param, Res } from '@nestjs/common';
import type { Response } from 'express';
import { deploymentCommands, UPLOAD_SHA256_HEADER, type UploadRef } from '#contracts';
import { CommandBus } from '#messaging';
import { LOGGER, type Logger } from '#platform';
import { idParam } from './apps.controller.js';
import { actorOf, Auth, CurrentPrincipal, type Principal } from './auth.js';
import { DeploymentUploads } from './deployment-uploads.js';

/**
 * `GET /api/v1/deployments/{id}/source`: the uploaded tarball a deployment deploys, for the agent it
 * belongs to (and an admin). Another agent gets the same 403 whether the deployment exists or not. The
 * deployment's upload comes from the log (the deployments service), with its SHA-256 in
 * `X-Content-SHA256` so the agent can check what it received.
 */
@Controller('deployments')
export class DeploymentSourceController {
  constructor(
    @Inject(CommandBus) private readonly commands: CommandBus,
    @Inject(DeploymentUploads) private readonly uploads: DeploymentUploads,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  @Get(':id/source')
  @Auth('admin', 'agent')
  async source(
    @Param('id') id: string,
    @CurrentPrincipal() principal: Principal,
    @Res() response: Response,
  ): Promise<void> {
    const deploymentId = idParam(id);
    const { upload } = await this.commands.execute<{ upload: UploadRef }>(
      deploymentCommands.getSource,
      { deploymentId },
      { actor: actorOf(principal) },
    );
    const data = await this.uploads.read(upload);
    response.status(200);
    response.setHeader('Content-Type', 'application/gzip');
    response.setHeader('Content-Length', String(upload.bytes));
    response.setHeader(UPLOAD_SHA256_HEADER, upload.sha256);
    response.setHeader('Cache-Control', 'no-store');
    try {
      await pipeline(Readable.fromWeb(data as import('node:stream/web').ReadableStream), response);
    } catch (error) {
      // The headers are sent: a failure mid-way can only cut the body short, which the agent detects.
      this.logger.warn('upload download cut short', { deploymentId, uploadId: upload.uploadId, error });
      response.destroy();
    }
  }
}
