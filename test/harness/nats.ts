import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect, type ConnectionOptions, type NatsConnection } from '@nats-io/transport-node';
import { freePort } from './ports.js';
import { makeTempDir, portAccepts, startProcess, waitFor, type RunningProcess } from './processes.js';

export interface TestNats {
  url: string;
  port: number;
  dataDir: string;
  process: RunningProcess;
  connect(options?: Partial<ConnectionOptions>): Promise<NatsConnection>;
  /** Stops the server (SIGKILL when `crash`), keeping its data so it can start again. */
  stop(options?: { crash?: boolean }): Promise<void>;
  start(): Promise<void>;
  /** Stops the server and deletes its data. */
  destroy(): Promise<void>;
}

/**
 * Starts a private nats-server with JetStream on a free loopback port and its own store directory.
 * `config` is appended to the generated configuration (accounts, authorization, …).
 */
export async function startNats(options: { config?: string } = {}): Promise<TestNats> {
  const port = await freePort();
  const dir = await makeTempDir('nats');
  const configPath = join(dir.path, 'nats.conf');
  await writeFile(
    configPath,
    [
      `listen: 127.0.0.1:${port}`,
      `jetstream { store_dir: "${join(dir.path, 'js')}" }`,
      'max_payload: 1MB',
      options.config ?? '',
    ].join('\n'),
  );
  let process: RunningProcess;
  const start = async () => {
    process = startProcess('nats-server', ['-c', configPath]);
    await waitFor(`nats-server on ${port}`, async () => (await portAccepts(port)) || undefined).catch(
      (error) => {
        throw new Error(`${String(error)}\n${process.output()}`);
      },
    );
  };
  await start();
  const handle: TestNats = {
    url: `nats://127.0.0.1:${port}`,
    port,
    dataDir: dir.path,
    get process() {
      return process;
    },
    connect: (connectOptions = {}) => connect({ servers: `127.0.0.1:${port}`, ...connectOptions }),
    stop: async ({ crash = false } = {}) => process.stop(crash ? 'SIGKILL' : 'SIGTERM'),
    start,
    destroy: async () => {
      await process.stop();
      await dir.remove();
    },
  };
  return handle;
}
