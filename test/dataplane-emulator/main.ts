/**
 * Runs the Data Plane API emulator (a test double of dataplaneapi) on its own:
 *
 *   node dist/test/dataplane-emulator/main.js --config <dataplaneapi.yml> [--start-haproxy]
 *
 * The YAML file has dataplaneapi's format (the subset described in docs/dataplane.md). With
 * --start-haproxy the emulator also runs HAProxy in master-worker mode (`haproxy -W -S <master_runtime>
 * -f <config_file>`) and stops it on exit; otherwise HAProxy must already run with that master socket.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createLogger, stopOnSignals } from '#platform';
import { loadConfigFile } from './config.js';
import { DataplaneEmulator } from './emulator.js';
import { HaproxyControl } from './haproxy.js';

function argument(name: string): string | undefined {
  const index = process.argv.indexOf(name);
  return index >= 0 ? process.argv[index + 1] : undefined;
}

async function waitForMaster(control: HaproxyControl, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`haproxy exited with status ${child.exitCode}`);
    const proc = await control.showProc().catch(() => undefined);
    if (proc && proc.workers.length > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('haproxy did not start a worker within 15 s');
}

async function main(): Promise<void> {
  const logger = createLogger('dataplane-emulator');
  const file = argument('--config');
  if (!file) {
    process.stderr.write('usage: main.js --config <dataplaneapi.yml> [--start-haproxy]\n');
    process.exit(2);
  }
  const config = await loadConfigFile(file);
  let haproxy: ChildProcess | undefined;
  if (process.argv.includes('--start-haproxy')) {
    haproxy = spawn(config.haproxyBin, ['-W', '-S', config.masterSocket, '-f', config.configFile], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    await waitForMaster(new HaproxyControl(config.haproxyBin, config.masterSocket, ''), haproxy);
  }
  const emulator = await DataplaneEmulator.start(config, logger);
  stopOnSignals(logger, async () => {
    await emulator.stop();
    if (haproxy && haproxy.exitCode === null) {
      const exited = new Promise((resolve) => haproxy?.once('exit', resolve));
      haproxy.kill('SIGTERM');
      await exited;
    }
  });
}

main().catch((error: unknown) => {
  process.stderr.write(
    `dataplane emulator failed to start: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
