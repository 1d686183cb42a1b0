import type { NatsConnection } from '@nats-io/transport-node';
import { connectNats } from '#messaging';
import { DEAD_LETTER_STATUSES, type DeadLetterStatus, type DeadLetterView } from '#contracts';
import { createDataSource, databaseConfigSchema, DeadLetterAdmin } from '#persistence';
import { loadConfig } from '#platform';
import { UsageError, type CliCommand } from '../command.js';
import { cliActor, cliLogger, cliNatsConfig, withCommandBus, type CliAccess } from '../nats.js';

/** Runs `work` with the dead letters of the installation (its database, and the broker for changes). */
async function withDeadLetters<T>(
  access: CliAccess,
  work: (admin: DeadLetterAdmin) => Promise<T>,
): Promise<T> {
  const db = loadConfig(databaseConfigSchema);
  const dataSource = createDataSource({ url: db.CL_DATABASE_URL, applicationName: 'cli', poolSize: 2 });
  await dataSource.initialize();
  try {
    return await withCommandBus(access, async (bus) => {
      const connection: NatsConnection = await connectNats(cliNatsConfig(access), 'cli', cliLogger);
      const admin = new DeadLetterAdmin(dataSource, bus, connection, cliLogger);
      try {
        return await work(admin);
      } finally {
        await admin.stop({ waitForRebuilds: true });
        await connection.close();
      }
    });
  } finally {
    await dataSource.destroy();
  }
}

function statusOption(value: string | boolean | undefined): DeadLetterStatus | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !DEAD_LETTER_STATUSES.includes(value as DeadLetterStatus))
    throw new UsageError(`--status must be one of ${DEAD_LETTER_STATUSES.join(', ')}`);
  return value as DeadLetterStatus;
}

function letterId(positionals: string[]): string {
  if (positionals.length !== 1 || !/^[1-9][0-9]{0,17}$/.test(positionals[0]!))
    throw new UsageError('give exactly one dead letter id (see `dead-letters list`)');
  return positionals[0]!;
}

function line(letter: DeadLetterView): string {
  return [
    letter.id.padStart(6),
    letter.status.padEnd(9),
    String(letter.sequence).padStart(8),
    (letter.eventType ?? '(undecodable)').padEnd(24),
    letter.consumer.padEnd(28),
    letter.error.split('\n')[0]!.slice(0, 80),
  ].join('  ');
}

export const deadLetterCommands: CliCommand[] = [
  {
    path: ['dead-letters', 'list'],
    summary: 'list dead letters (newest first); --by-message groups the letters of one message',
    usage:
      '[--status open|retrying|resolved|dismissed] [--consumer <name>] [--by-message] [--limit <n>] [--json]',
    options: {
      status: { type: 'string' },
      consumer: { type: 'string' },
      'by-message': { type: 'boolean' },
      limit: { type: 'string' },
      json: { type: 'boolean' },
    },
    async run({ values }) {
      const limit = values.limit === undefined ? 50 : Number(values.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 500)
        throw new UsageError('--limit must be an integer from 1 to 500');
      const filters = {
        status: statusOption(values.status),
        consumer: typeof values.consumer === 'string' ? values.consumer : undefined,
        limit,
      };
      await withDeadLetters('read', async (admin) => {
        if (values['by-message']) {
          const { messages } = await admin.messages(filters);
          if (values.json) return console.log(JSON.stringify(messages, null, 2));
          for (const message of messages) {
            console.log(
              `#${message.sequence} ${message.eventType ?? '(undecodable)'} on ${message.subject}: ` +
                `${message.letters.length} dead letter(s), ${message.waiting} waiting`,
            );
            for (const letter of message.letters)
              console.log(`    ${letter.id.padStart(6)}  ${letter.status.padEnd(9)}  ${letter.consumer}`);
          }
          return;
        }
        const { deadLetters } = await admin.list(filters);
        if (values.json) return console.log(JSON.stringify(deadLetters, null, 2));
        for (const letter of deadLetters) console.log(line(letter));
      });
    },
  },
  {
    path: ['dead-letters', 'show'],
    summary: 'print one dead letter as JSON (its error and the message it is about)',
    usage: '<id>',
    positionals: true,
    async run({ positionals }) {
      const id = letterId(positionals);
      await withDeadLetters('read', async (admin) =>
        console.log(JSON.stringify(await admin.get(id), null, 2)),
      );
    },
  },
  {
    path: ['dead-letters', 'retry'],
    summary: 'hand a dead letter to its consumer again after a fix (a projection is rebuilt)',
    usage: '<id>',
    positionals: true,
    async run({ positionals }) {
      const id = letterId(positionals);
      await withDeadLetters('write', async (admin) => {
        const outcome = await admin.retry(id, cliActor);
        if (outcome.outcome === 'rebuilding') {
          // A projection's letter is retried by a rebuild: wait for it, then say how it ended.
          console.error(
            `rebuilding ${outcome.deadLetter.consumer} (rebuild ${outcome.rebuild?.id}); waiting…`,
          );
          await admin.stop({ waitForRebuilds: true });
          const after = await admin.get(id);
          console.log(JSON.stringify({ ...outcome, deadLetter: after }, null, 2));
          if (after.status !== 'resolved') process.exitCode = 1;
          return;
        }
        console.log(JSON.stringify(outcome, null, 2));
        if (outcome.outcome === 'failed') process.exitCode = 1;
      });
    },
  },
  {
    path: ['dead-letters', 'dismiss'],
    summary:
      'dismiss a dead letter (--message: every waiting one of its message); kept in the log with your name',
    usage: '<id> --reason <text> [--message]',
    positionals: true,
    options: { reason: { type: 'string' }, message: { type: 'boolean' } },
    async run({ positionals, values }) {
      const id = letterId(positionals);
      if (typeof values.reason !== 'string' || values.reason.trim() === '')
        throw new UsageError('say why with --reason (it is kept in the log with your name)');
      const reason = values.reason;
      await withDeadLetters('write', async (admin) => {
        const outcome = await admin.dismiss(
          id,
          { scope: values.message ? 'message' : 'letter', reason },
          cliActor,
        );
        console.log(JSON.stringify(outcome, null, 2));
      });
    },
  },
];
