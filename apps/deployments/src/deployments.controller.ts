import { Controller, Inject } from '@nestjs/common';
import { Ctx, MessagePattern, Payload, Transport } from '@nestjs/microservices';
import { z } from 'zod';
import {
  appName,
  configureAppInput,
  createAppInput,
  databaseCommandPayload,
  deploymentCommands,
  deploymentRequestInput,
  DomainError,
  envName,
  label,
  parseOrThrow,
  rollbackInput,
  secretValueInput,
  uploadRef,
  uuid,
  type GitUrlPolicy,
  type StoredEvent,
} from '#contracts';
import { ANY_EVENT, JetStreamEventContext, OnEvent } from '#eventstore';
import { handleCommand } from '#messaging';
import { LOGGER, type Logger } from '#platform';
import { configOf, patchedConfig } from './app-input.js';
import { DeploymentsCommands } from './deployments.commands.js';
import { UploadCheck } from './uploads.js';

export const INPUT_POLICY = Symbol('INPUT_POLICY');

const appRef = z.strictObject({ appName });
const configurePayload = z.strictObject({ appName, patch: z.unknown() });
const setSecretPayload = z.strictObject({ appName, name: envName, value: secretValueInput });
const removeSecretPayload = z.strictObject({ appName, name: envName });
/** `upload`: set by the API from the tarball it stored, never by the user (who sends the tarball). */
const requestPayload = z.strictObject({
  appName,
  request: deploymentRequestInput,
  upload: uploadRef.optional(),
});
const rollbackPayload = z.strictObject({ appName, request: rollbackInput });
const cancelPayload = z.strictObject({ deploymentId: uuid, reason: label(200).optional() });
const deploymentRef = z.strictObject({ deploymentId: uuid });

/**
 * Commands from the API over NATS request/reply (`cmd.deployments.*`, queue group `deployments`). App
 * bodies are validated here, with the installation's policy (file roots, plain git hosts), and each
 * error names the field as the user sent it.
 */
@Controller()
export class DeploymentsController {
  private readonly createSchema: ReturnType<typeof createAppInput>;
  private readonly configureSchema: ReturnType<typeof configureAppInput>;
  private readonly domain: string;

  constructor(
    @Inject(DeploymentsCommands) private readonly service: DeploymentsCommands,
    @Inject(INPUT_POLICY) policy: GitUrlPolicy & { domain: string },
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(UploadCheck) private readonly uploads: UploadCheck,
  ) {
    this.domain = policy.domain;
    this.createSchema = createAppInput(policy);
    this.configureSchema = configureAppInput(policy);
  }

  @MessagePattern(deploymentCommands.createApp, Transport.NATS)
  createApp(@Payload() raw: unknown) {
    return handleCommand(z.unknown(), raw, this.logger, (command) => {
      const input = parseOrThrow(this.createSchema, command.payload);
      const agentId = input.agentId ?? (command.actor.kind === 'agent' ? command.actor.id : undefined);
      if (agentId === undefined)
        throw new DomainError('invalid', 'name the agent the app runs on', 'agentId');
      const { config, secretValues } = configOf(input, agentId, this.domain);
      return this.service.createApp(
        { ...command, payload: { appName: input.name, agentId, config } },
        secretValues,
      );
    });
  }

  @MessagePattern(deploymentCommands.configureApp, Transport.NATS)
  configureApp(@Payload() raw: unknown) {
    return handleCommand(configurePayload, raw, this.logger, (command) => {
      const patch = parseOrThrow(this.configureSchema, command.payload.patch);
      return this.service.configureApp({
        ...command,
        payload: { appName: command.payload.appName, config: (app) => patchedConfig(app.config, patch) },
      });
    });
  }

  @MessagePattern(deploymentCommands.setSecret, Transport.NATS)
  setSecret(@Payload() raw: unknown) {
    return handleCommand(setSecretPayload, raw, this.logger, (command) => this.service.setSecret(command));
  }

  @MessagePattern(deploymentCommands.removeSecret, Transport.NATS)
  removeSecret(@Payload() raw: unknown) {
    return handleCommand(removeSecretPayload, raw, this.logger, (command) =>
      this.service.removeSecret(command),
    );
  }

  @MessagePattern(deploymentCommands.request, Transport.NATS)
  request(@Payload() raw: unknown) {
    return handleCommand(requestPayload, raw, this.logger, async (command) => {
      const { request, upload } = command.payload;
      if (request.uploadId !== undefined) {
        // An upload is the request's body, stored by the API as it comes: there is no id to name.
        throw new DomainError(
          'invalid',
          'uploadId is not taken: POST the .tar.gz itself as the body (Content-Type: application/gzip)',
          'uploadId',
        );
      }
      if (upload !== undefined) await this.uploads.check(upload);
      return this.service.requestDeployment({
        ...command,
        payload: {
          appName: command.payload.appName,
          ...(request.ref !== undefined ? { ref: request.ref } : {}),
          ...(upload !== undefined ? { upload } : {}),
        },
      });
    });
  }

  @MessagePattern(deploymentCommands.rollback, Transport.NATS)
  rollback(@Payload() raw: unknown) {
    return handleCommand(rollbackPayload, raw, this.logger, (command) =>
      this.service.rollback({
        ...command,
        payload: { appName: command.payload.appName, release: command.payload.request.release },
      }),
    );
  }

  @MessagePattern(deploymentCommands.cancel, Transport.NATS)
  cancel(@Payload() raw: unknown) {
    return handleCommand(cancelPayload, raw, this.logger, (command) => this.service.cancel(command));
  }

  @MessagePattern(deploymentCommands.getApp, Transport.NATS)
  getApp(@Payload() raw: unknown) {
    return handleCommand(appRef, raw, this.logger, (command) =>
      this.service.getApp(command.actor, command.payload.appName),
    );
  }

  @MessagePattern(deploymentCommands.database, Transport.NATS)
  database(@Payload() raw: unknown) {
    return handleCommand(databaseCommandPayload, raw, this.logger, (command) =>
      this.service.database(command),
    );
  }

  @MessagePattern(deploymentCommands.getSource, Transport.NATS)
  getSource(@Payload() raw: unknown) {
    return handleCommand(deploymentRef, raw, this.logger, (command) =>
      this.service.getSource(command.actor, command.payload.deploymentId),
    );
  }

  @MessagePattern(deploymentCommands.getDeployment, Transport.NATS)
  getDeployment(@Payload() raw: unknown) {
    return handleCommand(deploymentRef, raw, this.logger, (command) =>
      this.service.getDeployment(command.actor, command.payload.deploymentId),
    );
  }
}

/**
 * Events deployments reacts to, from its durable consumers (at least once: idempotent). Each only pokes
 * the supervisor, which folds the deployment again and does what its state calls for.
 */
@Controller()
export class DeploymentsEventHandlers {
  constructor(@Inject(DeploymentsCommands) private readonly service: DeploymentsCommands) {}

  @OnEvent(ANY_EVENT)
  async event(@Payload() event: StoredEvent, @Ctx() context: unknown): Promise<void> {
    if (!(context instanceof JetStreamEventContext)) return;
    if (event.type === 'AgentDeregistered') await this.service.agentDeregistered(event);
    else if (event.aggregate.type === 'deployment') this.service.deploymentEvent(event);
  }
}
