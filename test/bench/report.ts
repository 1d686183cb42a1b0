import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export type Figures = Record<string, number | string | boolean | null>;

/** Results live in the source tree's test/bench/results (git-ignored), whether run from src or dist. */
export function resultsDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const root = here.includes(`${join('dist', 'test')}`)
    ? join(here, '..', '..', '..')
    : join(here, '..', '..');
  return join(root, 'test', 'bench', 'results');
}

export async function writeFigures(name: string, figures: Figures): Promise<string> {
  const dir = resultsDir();
  await mkdir(dir, { recursive: true });
  const path = join(dir, `${name}.json`);
  await writeFile(
    path,
    JSON.stringify({ benchmark: name, measuredAt: new Date().toISOString(), ...figures }, null, 2) + '\n',
  );
  return path;
}

/** Progress on stderr, so stdout stays the figures. */
export function progress(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index]!;
}

export const round = (value: number, digits = 1) => Math.round(value * 10 ** digits) / 10 ** digits;

/** Calls `report` at most once per interval: progress for long runs without flooding the terminal. */
export function throttled<T>(report: (value: T) => void, intervalMs = 1_000): (value: T) => void {
  let last = 0;
  return (value) => {
    if (Date.now() - last < intervalMs) return;
    last = Date.now();
    report(value);
  };
}

/**
 * CPU seconds (user + system) used so far by every process whose command name is `name` and by its
 * children that have exited, from /proc (Linux): e.g. Postgres, whose backends come and go.
 */
export async function cpuSecondsOf(name: string): Promise<number> {
  const ticksPerSecond = 100; // USER_HZ on Linux
  let ticks = 0;
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // pid (comm) state ...: utime, stime, cutime, cstime are fields 14-17, counted after the comm's ')'.
    const close = stat.lastIndexOf(')');
    if (close < 0 || stat.slice(stat.indexOf('(') + 1, close) !== name) continue;
    const fields = stat.slice(close + 2).split(' ');
    for (const field of fields.slice(11, 15)) ticks += Number(field);
  }
  return ticks / ticksPerSecond;
}
