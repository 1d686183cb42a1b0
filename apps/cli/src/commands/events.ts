import { projectorCommands, type StoredEvent } from '#contracts';
import { UsageError, type CliCommand } from '../command.js';
import { cliActor, withCommandBus, withEventStore } from '../nats.js';

function summary(event: StoredEvent): string {
  return [
    String(event.sequence).padStart(8),
    event.occurredAt,
    event.type.padEnd(24),
    `${event.aggregate.type}/${event.aggregate.id}`.padEnd(40),
    `${event.actor.kind}:${event.actor.id}`,
  ].join('  ');
}

function positiveInteger(value: string | boolean | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1) throw new UsageError(`--${name} must be a positive integer`);
  return parsed;
}

export const eventCommands: CliCommand[] = [
  {
    path: ['events', 'tail'],
    summary: 'print the newest events; --follow keeps printing new ones',
    usage: '[--last <n>] [--from <sequence>] [--type <EventType>] [--follow] [--json]',
    options: {
      last: { type: 'string' },
      from: { type: 'string' },
      type: { type: 'string' },
      follow: { type: 'boolean' },
      json: { type: 'boolean' },
    },
    async run({ values }) {
      const last = positiveInteger(values.last, 'last') ?? 20;
      const from = positiveInteger(values.from, 'from');
      await withEventStore('read', async (store) => {
        const end = await store.lastSequence();
        const abort = new AbortController();
        process.once('SIGINT', () => abort.abort());
        for await (const event of store.readLog({
          fromSequence: from ?? Math.max(end - last + 1, 1),
          follow: Boolean(values.follow),
          signal: abort.signal,
        })) {
          if (values.type && event.type !== values.type) continue;
          console.log(values.json ? JSON.stringify(event) : summary(event));
        }
      });
    },
  },
  {
    path: ['events', 'show'],
    summary: 'print one event as JSON',
    usage: '<sequence>',
    positionals: true,
    async run({ positionals }) {
      const sequence = positiveInteger(positionals[0], 'sequence');
      if (sequence === undefined || positionals.length !== 1)
        throw new UsageError('give exactly one sequence number');
      await withEventStore('read', async (store) => {
        const end = await store.lastSequence();
        if (sequence > end) throw new UsageError(`the log ends at sequence ${end}`);
        console.log(JSON.stringify(await store.getBySequence(sequence), null, 2));
      });
    },
  },
  {
    path: ['events', 'quarantine'],
    summary: 'set aside a message of the log that cannot be decoded, so the record it sits on works again',
    usage: '<sequence> --reason <text>',
    positionals: true,
    options: { reason: { type: 'string' } },
    async run({ positionals, values }) {
      const sequence = positiveInteger(positionals[0], 'sequence');
      if (sequence === undefined || positionals.length !== 1)
        throw new UsageError('give exactly one sequence number');
      if (typeof values.reason !== 'string' || values.reason.trim() === '')
        throw new UsageError('say why with --reason (it is kept in the log with your name)');
      const outcome = await withCommandBus('write', (bus) =>
        bus.execute(projectorCommands.quarantine, { sequence, reason: values.reason }, { actor: cliActor }),
      );
      console.log(JSON.stringify(outcome, null, 2));
    },
  },
];
