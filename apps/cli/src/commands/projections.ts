import { projectorCommands, type RebuildStatus } from '#contracts';
import { UsageError, type CliCommand } from '../command.js';
import { withCommandBus, cliActor } from '../nats.js';
import { drawProgress, endProgress, renderProgress } from '../progress.js';

export const projectionCommands: CliCommand[] = [
  {
    path: ['projections', 'status'],
    summary: 'how far the live projections are behind the log',
    async run() {
      const state = await withCommandBus('read', (bus) =>
        bus.execute(projectorCommands.status, {}, { actor: cliActor }),
      );
      console.log(JSON.stringify(state, null, 2));
    },
  },
  {
    path: ['projections', 'rebuild'],
    summary: 'rebuild projections from the log and swap them in, or build a time-travel view with --as-of-*',
    usage: '<name ...|all> [--as-of-sequence <n> | --as-of-time <iso>] [--label <name>] [--no-wait]',
    positionals: true,
    options: {
      'as-of-sequence': { type: 'string' },
      'as-of-time': { type: 'string' },
      label: { type: 'string' },
      'no-wait': { type: 'boolean' },
    },
    async run({ positionals, values }) {
      if (positionals.length === 0) throw new UsageError('name the projections to rebuild, or all');
      const sequence = values['as-of-sequence'];
      const time = values['as-of-time'];
      if (sequence !== undefined && time !== undefined)
        throw new UsageError('give --as-of-sequence or --as-of-time, not both');
      const inspect = sequence !== undefined || time !== undefined || values.label !== undefined;
      const request = {
        projections: positionals,
        mode: inspect ? 'inspect' : 'swap',
        ...(sequence !== undefined ? { asOf: { sequence: Number(sequence) } } : {}),
        ...(time !== undefined ? { asOf: { time: String(time) } } : {}),
        ...(values.label !== undefined ? { label: String(values.label) } : {}),
      };
      const final = await withCommandBus('write', async (bus) => {
        let status = await bus.execute<RebuildStatus>(projectorCommands.rebuild, request, {
          actor: cliActor,
        });
        console.error(`rebuild ${status.id} started into schema ${status.schema}`);
        if (values['no-wait']) return status;
        while (status.phase !== 'done' && status.phase !== 'failed') {
          await new Promise((resolve) => setTimeout(resolve, 500));
          status = await bus.execute<RebuildStatus>(
            projectorCommands.rebuildStatus,
            { id: status.id },
            { actor: cliActor },
          );
          drawProgress(
            renderProgress({
              done: status.sequence,
              total: status.target,
              rate: status.eventsPerSecond,
              etaSeconds: status.etaSeconds,
              label: status.phase,
            }),
          );
        }
        endProgress();
        return status;
      });
      console.log(JSON.stringify(final, null, 2));
      if (final.phase === 'failed') throw new Error(`rebuild failed: ${final.error}`);
    },
  },
  {
    path: ['projections', 'schemas'],
    summary: 'list time-travel views and rebuilds in progress',
    async run() {
      console.log(
        JSON.stringify(
          await withCommandBus('read', (bus) =>
            bus.execute(projectorCommands.schemas, {}, { actor: cliActor }),
          ),
          null,
          2,
        ),
      );
    },
  },
  {
    path: ['projections', 'drop'],
    summary: 'drop a time-travel view',
    usage: '<asof_schema>',
    positionals: true,
    async run({ positionals }) {
      if (positionals.length !== 1) throw new UsageError('give exactly one schema name');
      await withCommandBus('write', (bus) =>
        bus.execute(projectorCommands.dropSchema, { schema: positionals[0] }, { actor: cliActor }),
      );
      console.log(`dropped ${positionals[0]}`);
    },
  },
];
