import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { adminName, secretsLayout, TokenSigner } from '#auth';
import { label, parseOrThrow, uuid, ValidationError, type EventContext } from '#contracts';
import { eventStoreConfigSchema, type EventStore } from '#eventstore';
import { createDataSource, databaseConfigSchema, isAdminTokenRevoked } from '#persistence';
import { env, loadConfig } from '#platform';
import { UsageError, type CliCommand } from '../command.js';
import { withEventStore } from '../nats.js';

const adminConfigSchema = eventStoreConfigSchema.extend({ CL_SECRETS_DIR: env.string() });
type AdminConfig = z.output<typeof adminConfigSchema>;

const MAX_TTL_S = 30 * 24 * 60 * 60;

function config(): AdminConfig {
  return loadConfig(adminConfigSchema);
}

/** Admin tokens are events (`events.admin.*`), appended as the CLI's own user (nats/cli.creds). */
async function withStore<T>(work: (store: EventStore) => Promise<T>): Promise<T> {
  return withEventStore('write', work);
}

function value(values: Record<string, string | boolean | undefined>, name: string): string | undefined {
  const raw = values[name];
  return typeof raw === 'string' ? raw : undefined;
}

function cliField<T>(schema: z.ZodType<T>, input: unknown, option: string): T {
  try {
    return parseOrThrow(schema, input);
  } catch (error) {
    if (error instanceof ValidationError) throw new UsageError(`--${option}: ${error.issues[0]?.message}`);
    throw error;
  }
}

/** The cause of what a CLI command appends is that run of the command (one id for both). */
function context(name: string): EventContext {
  const run = `cli-${randomUUID()}`;
  return { actor: { kind: 'admin', id: name }, correlationId: run, causationId: run };
}

export const adminCommands: CliCommand[] = [
  {
    path: ['admin', 'token', 'create'],
    summary: 'sign an admin bearer token and print it (stdout: the token only)',
    usage: '--name <name> [--ttl <seconds>]',
    options: { name: { type: 'string' }, ttl: { type: 'string' } },
    async run({ values }) {
      const name = cliField(adminName, value(values, 'name'), 'name');
      const ttl = cliField(
        z.coerce
          .number()
          .int('must be a whole number')
          .min(60, 'must be at least 60')
          .max(MAX_TTL_S, `must be at most ${MAX_TTL_S}`),
        value(values, 'ttl') ?? 12 * 60 * 60,
        'ttl',
      );
      const cfg = config();
      const signer = new TokenSigner(readFileSync(secretsLayout(cfg.CL_SECRETS_DIR).jwtPrivateKey, 'utf8'));
      const tokenId = randomUUID();
      const signed = signer.adminToken(name, ttl, tokenId);
      // Recorded before it is shown: every admin token that exists is in the log, with who and until when.
      await withStore((store) =>
        store.append(
          { type: 'admin', id: tokenId },
          [{ type: 'AdminTokenIssued', data: { tokenId, name, expiresAt: signed.expiresAt.toISOString() } }],
          { context: context(name), expectedSequence: 0 },
        ),
      );
      console.error(JSON.stringify({ tokenId, name, expiresAt: signed.expiresAt.toISOString() }));
      console.log(signed.token);
    },
  },
  {
    path: ['admin', 'token', 'revoke'],
    summary: 'revoke an admin token by its id (waits until the API sees it)',
    usage: '--id <tokenId> [--reason <text>] [--by <admin name>]',
    options: { id: { type: 'string' }, reason: { type: 'string' }, by: { type: 'string' } },
    async run({ values }) {
      const tokenId = cliField(uuid, value(values, 'id'), 'id');
      const reason = cliField(label(200), value(values, 'reason') ?? 'revoked from the CLI', 'reason');
      const by = cliField(adminName, value(values, 'by') ?? 'cli', 'by');
      const outcome = await withStore(async (store) => {
        const history = await store.readAggregate('admin', tokenId);
        if (!history.events.some((event) => event.type === 'AdminTokenIssued')) {
          throw new Error(`no admin token ${tokenId}`);
        }
        if (history.events.some((event) => event.type === 'AdminTokenRevoked')) return 'already revoked';
        await store.append(
          { type: 'admin', id: tokenId },
          [{ type: 'AdminTokenRevoked', data: { tokenId, reason } }],
          { context: context(by), expectedSequence: history.lastSequence },
        );
        return 'revoked';
      });
      const seen = await waitForProjection(tokenId);
      console.log(JSON.stringify({ tokenId, outcome, visibleToApi: seen }));
    },
  },
];

/** Polls the admin_tokens projection until the revocation shows (the API checks that table). */
async function waitForProjection(tokenId: string, timeoutMs = 10_000): Promise<boolean> {
  const db = loadConfig(databaseConfigSchema);
  const dataSource = createDataSource({ url: db.CL_DATABASE_URL, applicationName: 'cli', poolSize: 1 });
  try {
    await dataSource.initialize();
  } catch (error) {
    console.error(
      `warning: could not check the projection (${(error as Error).message}); the projector applies the revocation when it runs`,
    );
    return false;
  }
  try {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (await isAdminTokenRevoked(dataSource, tokenId)) return true;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    console.error('warning: the projector has not applied the revocation yet; is it running?');
    return false;
  } finally {
    await dataSource.destroy();
  }
}
