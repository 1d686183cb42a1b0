import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startProcess, type RunningProcess } from './processes.js';

const here = dirname(fileURLToPath(import.meta.url));
/** The repository root, whether this file runs from test/harness or dist/test/harness. */
export const repoRoot = here.includes(join('dist', 'test'))
  ? join(here, '..', '..', '..')
  : join(here, '..', '..');

/** Starts a built app (`node dist/apps/<app>/src/main.js`) as its own process, as production would. */
export function startApp(app: string, env: Record<string, string>, args: string[] = []): RunningProcess {
  const entry = join(repoRoot, 'dist', 'apps', app, 'src', 'main.js');
  if (!existsSync(entry))
    throw new Error(`${entry} is missing: run \`npm run build\` first (npm test does it in pretest)`);
  return startProcess(process.execPath, [entry, ...args], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', CL_LOG_LEVEL: 'warn', ...env },
  });
}
