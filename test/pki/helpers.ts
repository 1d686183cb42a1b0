import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface OpensslResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `openssl` (the outside judge) and returns its exit code and output, never throwing on failure. */
export function openssl(
  args: string[],
  options: { input?: string; timeoutMs?: number } = {},
): Promise<OpensslResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'openssl',
      args,
      { timeout: options.timeoutMs ?? 20_000, maxBuffer: 8 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') {
          reject(error);
          return;
        }
        resolve({ code: error ? (error.code as number) : 0, stdout, stderr });
      },
    );
    // openssl may exit without reading its input (verify, x509 -in): a closed pipe is not a failure.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(options.input ?? '');
  });
}

/** Writes `content` as `name` in `dir` and returns the path. */
export async function put(dir: string, name: string, content: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, content, { mode: 0o600 });
  return path;
}
