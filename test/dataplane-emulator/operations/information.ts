/** Tags Health, Information, Configuration (the version) and Reloads: what a client asks before it acts. */
import { exec } from 'node:child_process';
import { cpus, freemem, hostname, release, totalmem, type, uptime } from 'node:os';
import { ApiError } from '../store.js';
import type { Operations } from './operation.js';

export const EMULATOR_VERSION = 'v3.4.2 cloudlunacy-emulator';
const BUILD_DATE = '2026-11-22T00:00:00.000Z';

export const informationOperations: Operations = {
  getHealth: async (emulator) => {
    if (!emulator.config.statusCmd) return { status: 200, body: { haproxy: 'unknown' } };
    const up = await new Promise<boolean>((resolve) =>
      exec(emulator.config.statusCmd as string, (error) => resolve(!error)),
    );
    return { status: 200, body: { haproxy: up ? 'up' : 'down' } };
  },
  getInfo: async () => ({
    status: 200,
    body: {
      api: { version: EMULATOR_VERSION, build_date: BUILD_DATE },
      system: {
        hostname: hostname(),
        os_string: `${type()} ${release()}`,
        time: Math.floor(Date.now() / 1000),
        uptime: Math.floor(uptime()),
        cpu_info: { model: cpus()[0]?.model ?? 'unknown', num_cpus: cpus().length },
        mem_info: {
          dataplaneapi_memory: process.memoryUsage().rss,
          free_memory: freemem(),
          total_memory: totalmem(),
        },
      },
    },
  }),
  getConfigurationVersion: async (emulator, context) => ({
    status: 200,
    body: emulator.store.versionFor(context.query.transaction_id as string | undefined),
  }),
  getHaproxyProcessInfo: async (emulator) => {
    const answer = await emulator.haproxy.stats('show info');
    const info: Record<string, string> = {};
    for (const line of answer.split('\n')) {
      const colon = line.indexOf(':');
      if (colon > 0) info[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
    }
    const num = (key: string) =>
      info[key] !== undefined && /^\d+$/.test(info[key]) ? Number(info[key]) : null;
    return {
      status: 200,
      body: {
        runtimeAPI: emulator.haproxy.statsSocket,
        info: {
          pid: num('Pid'),
          version: info.Version ?? '',
          release_date: (info.Release_date ?? '').replace(/\//g, '-'),
          uptime: num('Uptime_sec'),
          nbthread: num('Nbthread'),
          processes: num('Nbproc'),
          process_num: num('Process_num'),
          node: info.node ?? '',
          jobs: num('Jobs'),
          curr_conns: num('CurrConns'),
          cum_req: num('CumReq'),
          stopping: info.Stopping === undefined ? null : info.Stopping === '1',
        },
      },
    };
  },
  getReloads: async (emulator) => ({ status: 200, body: emulator.reloads.list() }),
  getReload: async (emulator, context) => {
    const found = emulator.reloads.get(context.path.id);
    if (!found) throw new ApiError(404, `reload ${context.path.id} does not exist`);
    return { status: 200, body: found };
  },
};
