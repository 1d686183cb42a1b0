import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import type { AppConfig } from '#contracts';
import { gitConfigFile, gitFetchSteps } from './git.js';
import type { ProcessRuntime } from './process-runtime.js';
import type { AppPlace, CommandOutput } from './runtime.js';

/** The source cannot be fetched: the deployment fails at `fetched` with this message. */
export class SourceError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null = null,
  ) {
    super(message);
    this.name = 'SourceError';
  }
}

/** Whether `path` (real) is `root` or inside it. */
export function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !rel.startsWith(sep));
}

/** The real path of a `file://` source, checked against the agent's own `fileRoots` (the front checked too). */
export async function fileSourcePath(url: string, fileRoots: readonly string[]): Promise<string> {
  const path = decodeURIComponent(new URL(url).pathname);
  let real: string;
  try {
    real = await realpath(path);
  } catch {
    throw new SourceError(`the repository ${path} does not exist on this VPS`);
  }
  for (const root of fileRoots) {
    const realRoot = await realpath(root).catch(() => null);
    if (realRoot && isInside(realRoot, real)) return real;
  }
  throw new SourceError(
    `file:// sources must be under the agent's deployments.fileRoots (${fileRoots.join(', ') || 'none set'})`,
  );
}

export interface GitFetch {
  runtime: Pick<ProcessRuntime, 'run' | 'removeTree'>;
  place: AppPlace;
  workspace: string;
  source: Extract<AppConfig['source'], { type: 'git' }>;
  ref: string | null;
  fileRoots: readonly string[];
  /** A root-owned directory the app's user can traverse, for the fetch's git config file. */
  configDir: string;
  credential?: string;
  output: CommandOutput;
  /** For the commit id, which `git rev-parse` prints. */
  scratch: CommandOutput;
  path: string;
  signal: AbortSignal;
  onStart?: (process: { pid: number; startTime: number }) => Promise<void> | void;
}

const STEP_EXIT_BASE = 100;
const GIT_VERBS = ['init', 'fetch', 'checkout', 'rev-parse'];

/** A word for sh, taken literally: single quotes, with each ' written as '\''. */
export function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** A shallow fetch of one ref as the app's user; `.git` is removed after. Returns the commit. */
export async function fetchGit(input: GitFetch): Promise<{ commit: string }> {
  const { runtime, place, workspace, source } = input;
  const realRepository = source.url.startsWith('file:')
    ? await fileSourcePath(source.url, input.fileRoots)
    : undefined;
  await mkdir(input.configDir, { recursive: true, mode: 0o711 });
  const globalConfigFile = join(input.configDir, `${place.appName}.gitconfig`);
  await writeFile(globalConfigFile, gitConfigFile(source, realRepository), { mode: 0o644 });
  let sshKeyFile: string | undefined;
  let sshKnownHostsFile: string | undefined;
  try {
    if (source.credentials?.kind === 'ssh-key' && input.credential !== undefined) {
      // O_EXCL: the app's tmp is the app's; a symlink it planted there must not be written through.
      sshKeyFile = await writeNew(
        place,
        `ssh-key-${randomBytes(6).toString('hex')}`,
        `${input.credential.trim()}\n`,
      );
      if (source.credentials.knownHosts)
        sshKnownHostsFile = await writeNew(
          place,
          `known-hosts-${randomBytes(6).toString('hex')}`,
          `${source.credentials.knownHosts.trim()}\n`,
        );
    }
    const steps = gitFetchSteps({
      source,
      ref: input.ref,
      workspace,
      home: place.home,
      globalConfigFile,
      ...(input.credential !== undefined ? { credential: input.credential } : {}),
      ...(sshKeyFile ? { sshKeyFile } : {}),
      ...(sshKnownHostsFile ? { sshKnownHostsFile } : {}),
    });
    // One process for all the steps (each spawn as the app costs more than git itself): a script of
    // quoted argv lines, each exiting with 100 + its index when it fails. The steps share one environment.
    const script = steps
      .map((step, index) => `${step.argv.map(shellQuote).join(' ')} || exit ${STEP_EXIT_BASE + index}`)
      .join('\n');
    // The commit (rev-parse, the last step) is the only thing on stdout; git's complaints go to the log.
    for (const file of [input.scratch.stdoutPath, input.scratch.stderrPath]) await rm(file, { force: true });
    const result = await runtime.run(place, ['/bin/sh', '-c', script], {
      cwd: place.home,
      env: { ...steps[0].env, PATH: input.path, TMPDIR: place.tmp },
      output: { stdoutPath: input.scratch.stdoutPath, stderrPath: input.output.stderrPath },
      signal: input.signal,
      ...(input.onStart ? { onStart: input.onStart } : {}),
    });
    if (result.exitCode !== 0) {
      const failed = result.exitCode === null ? undefined : steps[result.exitCode - STEP_EXIT_BASE];
      const what = failed?.argv.find((arg) => GIT_VERBS.includes(arg)) ?? 'git';
      // git's own reason is in the deployment's log (its stderr), shown with the failure's last lines.
      const how = result.signal
        ? ` (signal ${result.signal})`
        : failed
          ? ''
          : ` (exit code ${result.exitCode})`;
      throw new SourceError(`git ${what} failed${how}`, result.exitCode);
    }
    const commit = (await readFile(input.scratch.stdoutPath, 'utf8')).trim();
    if (!/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(commit))
      throw new SourceError('git did not name the commit it fetched');
    // The history is not part of the release (and its config could be read by tools as the app's).
    await runtime.removeTree(place, join(workspace, '.git'));
    return { commit };
  } finally {
    for (const file of [sshKeyFile, sshKnownHostsFile]) if (file) await rm(file, { force: true });
  }
}

async function writeNew(place: AppPlace, name: string, content: string): Promise<string> {
  const path = join(place.tmp, name);
  const handle = await open(
    path,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o600,
  );
  try {
    await handle.writeFile(content);
    // Through the handle: by path, the app could have swapped the file for a link to any other file.
    if (process.getuid?.() === 0) await handle.chown(place.uid, place.gid);
  } finally {
    await handle.close();
  }
  return path;
}

/**
 * A file of the source, read only when its real path is inside the workspace and it is not a symlink
 * (O_NOFOLLOW): a source cannot make the agent read the VPS's files. null when it does not exist.
 */
export async function readSourceFile(
  workspace: string,
  rel: string,
  maxBytes = 1024 * 1024,
): Promise<string | null> {
  const root = await realpath(workspace);
  let real: string;
  try {
    real = await realpath(join(root, rel));
  } catch {
    return null;
  }
  if (!isInside(root, real)) throw new SourceError(`${rel} leaves the source directory`);
  const handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch(
    (error: NodeJS.ErrnoException) => {
      if (error.code === 'ELOOP') throw new SourceError(`${rel} is a symlink`);
      throw error;
    },
  );
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new SourceError(`${rel} is not a file`);
    if (stat.size > maxBytes) throw new SourceError(`${rel} is larger than ${maxBytes} bytes`);
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

/** The build root's real path, which must stay inside the source. */
export async function buildRootPath(workspace: string, root: string): Promise<string> {
  const base = await realpath(workspace);
  const real = await realpath(join(base, root)).catch(() => {
    throw new SourceError(`build.root ${root} does not exist in the source`);
  });
  if (!isInside(base, real)) throw new SourceError('build.root leaves the source directory');
  return real;
}
