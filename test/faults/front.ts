/**
 * The fault suite's view of a front: its HAProxy (master-worker, started by test/harness/haproxy.ts) and
 * its Data Plane API emulator run as a process of its own (node dist/test/dataplane-emulator/main.js), so
 * that it can be SIGKILLed like dataplaneapi and started again on the same port with the same files.
 * The harness runs the emulator inside the test process; `detachEmulator` stops that one and starts the
 * process in its place, from the same configuration.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { EmulatorConfig } from '../dataplane-emulator/config.js';
import { repoRoot } from '../harness/apps.js';
import type { HaproxyStack } from '../harness/haproxy.js';
import { portAccepts, startProcess, waitFor, type RunningProcess } from '../harness/processes.js';

const EMULATOR_MAIN = join(repoRoot, 'dist', 'test', 'dataplane-emulator', 'main.js');

export function exited(process: RunningProcess | undefined): boolean {
  return !process || process.child.exitCode !== null || process.child.signalCode !== null;
}

/** Sends SIGKILL and waits until the process is gone. */
export async function sigkill(process: RunningProcess): Promise<void> {
  if (exited(process)) return;
  const gone = new Promise<void>((resolve) => process.child.once('exit', () => resolve()));
  process.child.kill('SIGKILL');
  await gone;
}

/** The emulator's configuration in dataplaneapi's YAML format (what main.js reads). */
function emulatorYaml(config: EmulatorConfig): string {
  const general = (config as EmulatorConfig & { generalStorageDir?: string }).generalStorageDir;
  return stringify({
    config_version: 2,
    name: 'faults',
    dataplaneapi: {
      host: config.host,
      port: config.port,
      user: config.users.map((user) => ({ name: user.name, password: user.password, insecure: true })),
      transaction: {
        transaction_dir: config.transactionDir,
        max_open_transactions: config.maxOpenTransactions,
      },
      resources: {
        maps_dir: config.mapsDir,
        ssl_certs_dir: config.sslCertsDir,
        // Newer emulators also keep general use files (the CRL); older ones have no such field.
        ...(general ? { general_storage_dir: general } : {}),
      },
    },
    haproxy: {
      config_file: config.configFile,
      haproxy_bin: config.haproxyBin,
      master_runtime: config.masterSocket,
      ...(config.statsSocket ? { stats_socket: config.statsSocket } : {}),
      reload: { reload_delay: config.reloadDelayMs / 1000 },
    },
  });
}

export class EmulatorProcess {
  process!: RunningProcess;

  private constructor(
    readonly name: string,
    readonly port: number,
    private readonly configPath: string,
  ) {}

  /** Stops the harness's in-process emulator of `front` and runs the same one as a process. */
  static async detach(name: string, front: HaproxyStack): Promise<EmulatorProcess> {
    const config: EmulatorConfig = { ...front.emulator.config, port: front.ports.dataplane };
    await front.emulator.stop();
    const configPath = join(front.paths.dir, 'dataplaneapi.yml');
    await writeFile(configPath, emulatorYaml(config), { mode: 0o600 });
    const emulator = new EmulatorProcess(name, front.ports.dataplane, configPath);
    await emulator.start();
    return emulator;
  }

  async start(): Promise<void> {
    const started = startProcess(process.execPath, [EMULATOR_MAIN, '--config', this.configPath], {
      cwd: repoRoot,
      env: { PATH: process.env.PATH ?? '', CL_LOG_LEVEL: 'warn' },
    });
    this.process = started;
    await waitFor(
      `${this.name} to listen on ${this.port}`,
      async () => {
        if (exited(started)) throw new Error(`${this.name} exited:\n${started.output()}`);
        return (await portAccepts(this.port)) || undefined;
      },
      { timeoutMs: 20_000, intervalMs: 25 },
    );
  }

  kill(): Promise<void> {
    return sigkill(this.process);
  }

  stop(): Promise<void> {
    return this.process.stop();
  }
}

export type WorkerKillOutcome =
  /** HAProxy 2.6 default (exit-on-failure): the master kills the other workers and exits. */
  | 'master-exited'
  /** The master stayed up and forked a new worker (not what 2.6 does, kept for honesty). */
  | 'worker-respawned'
  /** The master stayed up without a worker. */
  | 'master-without-worker';

/**
 * SIGKILLs the current HAProxy worker of `front` and watches what the master does for up to 3 s. Unless it
 * started a new worker by itself, HAProxy is started again through the harness (as systemd's
 * Restart= would), from haproxy.cfg and the map files as they are on disk.
 */
export async function killHaproxyWorker(
  front: HaproxyStack,
  afterKill: () => void,
): Promise<{ outcome: WorkerKillOutcome; worker: number }> {
  const before = await front.showProc();
  const worker = before.workers.at(-1)?.pid;
  if (!worker) throw new Error(`HAProxy has no worker:\n${before.raw}`);
  const master = front.haproxy;
  process.kill(worker, 'SIGKILL');
  afterKill();
  const seen = await waitFor(
    'the HAProxy master to react to its worker being killed',
    async (): Promise<WorkerKillOutcome | undefined> => {
      if (exited(master)) return 'master-exited';
      const proc = await front.showProc().catch(() => undefined);
      if (proc && proc.workers.some((entry) => entry.pid !== worker)) return 'worker-respawned';
      return undefined;
    },
    { timeoutMs: 3_000, intervalMs: 20 },
  ).catch((): WorkerKillOutcome => 'master-without-worker');
  if (seen === 'master-exited') await front.restartHaproxy();
  else if (seen === 'master-without-worker') await front.restartHaproxy('SIGKILL');
  return { outcome: seen, worker };
}
