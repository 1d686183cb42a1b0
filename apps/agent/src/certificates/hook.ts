import { spawn } from 'node:child_process';
import type { HookStatus } from '#contracts';

export interface HookResult {
  status: Exclude<HookStatus, 'none'>;
  /** Reported to the service (and so into the log): the exit code or signal, never the hook's output. */
  detail?: string;
  /** The hook's output (last 2 KiB), for the agent's own log only. */
  output: string;
}

/**
 * Runs the post-install hook (argv, no shell) with the certificate's paths in its environment, and kills it
 * after `timeoutMs`. Whatever happens is returned, never thrown: a failing hook is reported, not fatal.
 */
export function runHook(
  command: readonly string[],
  env: Record<string, string>,
  timeoutMs: number,
): Promise<HookResult> {
  return new Promise((resolve) => {
    let output = '';
    let settled = false;
    const finish = (result: HookResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    const child = spawn(command[0]!, command.slice(1), {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-2048);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish({ status: 'failed', detail: `timed out after ${timeoutMs} ms`, output });
    }, timeoutMs);
    child.once('error', (error: NodeJS.ErrnoException) =>
      finish({ status: 'failed', detail: `could not start: ${error.code ?? error.message}`, output }),
    );
    child.once('exit', (code, signal) => {
      if (code === 0) finish({ status: 'succeeded', output });
      else finish({ status: 'failed', detail: signal ? `killed by ${signal}` : `exit code ${code}`, output });
    });
  });
}
