import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdir, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Process isolation for deployments (docs/plans/deployments.md §7.3; facts in deployments-spike.md):
 * one numeric uid per app (setpriv, no passwd entry), rlimits, and a cgroup per release when the host
 * gives us one.
 */

export type IsolationMode = 'uid' | 'none';

export interface CgroupProbe {
  version: 1 | 2;
  memory: boolean;
  pids: boolean;
  /** v2: `<mount><own>/cloudlunacy`; v1: the directory holding the hierarchies (`/sys/fs/cgroup`). */
  base: string;
  /** The `<mount><own>/cloudlunacy` directory of each usable controller (v2: both are `base`). */
  dirs: { memory?: string; pids?: string };
}

export interface IsolationProbe {
  isolation: IsolationMode;
  cgroup: CgroupProbe | null;
  detail: string;
}

/** Absolute, so that the app's PATH (in the wrapper's environment, as root) cannot choose what runs. */
export const SETPRIV = '/usr/bin/setpriv';

export interface ProbeSources {
  /** Text of /proc/self/mountinfo and /proc/self/cgroup, and the uid; for tests of other layouts. */
  mountinfo?: string;
  selfCgroup?: string;
  uid?: number;
}

interface Mount {
  root: string;
  point: string;
  type: string;
  options: string[];
}

function parseMountinfo(text: string): Mount[] {
  const mounts: Mount[] = [];
  for (const line of text.split('\n')) {
    const dash = line.indexOf(' - ');
    if (dash < 0) continue;
    const left = line.slice(0, dash).split(' ');
    const right = line.slice(dash + 3).split(' ');
    // mountinfo escapes spaces and friends as \040 etc.
    const unescape = (s: string) =>
      s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    mounts.push({
      root: unescape(left[3] ?? ''),
      point: unescape(left[4] ?? ''),
      type: right[0] ?? '',
      options: (right[2] ?? '').split(','),
    });
  }
  return mounts;
}

/** `hierarchy-id:controllers:path` lines → controller (or '' for v2) → own path. */
function parseSelfCgroup(text: string): Map<string, string> {
  const own = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line.trim());
    if (!m) continue;
    if (m[2] === '') own.set('', m[3]);
    for (const c of m[2].split(',')) if (c) own.set(c, m[3]);
  }
  return own;
}

/** The directory of our own cgroup inside a mount; a namespaced mount's root is a prefix of the path. */
function ownDir(mount: Mount, path: string): string {
  const rel = mount.root !== '/' && path.startsWith(mount.root) ? path.slice(mount.root.length) : path;
  return join(mount.point, rel);
}

async function writable(path: string): Promise<boolean> {
  try {
    await access(path, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

async function words(path: string): Promise<string[]> {
  try {
    return (await readFile(path, 'utf8')).split(/\s+/).filter(Boolean);
  } catch {
    return [];
  }
}

export async function probeIsolation(sources: ProbeSources = {}): Promise<IsolationProbe> {
  const uid = sources.uid ?? process.getuid?.() ?? -1;
  const notes: string[] = [];
  let isolation: IsolationMode = 'none';
  if (uid !== 0) notes.push(`not root (uid ${uid}): apps run as the agent's user`);
  else if (
    !(await access(SETPRIV, constants.X_OK).then(
      () => true,
      () => false,
    ))
  )
    notes.push(`${SETPRIV} not found: apps run as root's user`);
  else {
    isolation = 'uid';
    notes.push('uid isolation with setpriv');
  }

  const mounts = parseMountinfo(
    sources.mountinfo ?? (await readFile('/proc/self/mountinfo', 'utf8').catch(() => '')),
  );
  const own = parseSelfCgroup(
    sources.selfCgroup ?? (await readFile('/proc/self/cgroup', 'utf8').catch(() => '')),
  );
  let cgroup: CgroupProbe | null = null;

  // v2 first: the controllers must already be enabled for our children (subtree_control), since with
  // the agent's own process inside its cgroup we may not enable them there ("no internal processes").
  const v2 = mounts.find((m) => m.type === 'cgroup2');
  if (v2 && own.has('')) {
    const dir = ownDir(v2, own.get('')!);
    const delegated = await words(join(dir, 'cgroup.subtree_control'));
    const memory = delegated.includes('memory');
    const pids = delegated.includes('pids');
    if ((memory || pids) && (await writable(dir))) {
      cgroup = { version: 2, memory, pids, base: join(dir, 'cloudlunacy'), dirs: {} };
      if (memory) cgroup.dirs.memory = cgroup.base;
      if (pids) cgroup.dirs.pids = cgroup.base;
    } else {
      notes.push(`cgroup v2 at ${dir} delegates [${delegated.join(' ')}], not memory/pids`);
    }
  }

  if (!cgroup) {
    const dirs: CgroupProbe['dirs'] = {};
    let base = '';
    for (const controller of ['memory', 'pids'] as const) {
      const mount = mounts.find((m) => m.type === 'cgroup' && m.options.includes(controller));
      const path = own.get(controller);
      if (!mount || path === undefined) continue;
      const dir = ownDir(mount, path);
      if (await writable(dir)) {
        dirs[controller] = join(dir, 'cloudlunacy');
        base = join(mount.point, '..');
      } else notes.push(`cgroup v1 ${controller} at ${dir} is not writable`);
    }
    if (dirs.memory || dirs.pids)
      cgroup = { version: 1, memory: !!dirs.memory, pids: !!dirs.pids, base, dirs };
  }

  if (cgroup) {
    const has = [cgroup.memory && 'memory', cgroup.pids && 'pids'].filter(Boolean).join('+');
    notes.push(
      `cgroup v${cgroup.version} ${has} under ${cgroup.version === 2 ? cgroup.base : Object.values(cgroup.dirs).join(', ')}`,
    );
  } else notes.push('no cgroups: only rlimits apply');
  return { isolation, cgroup, detail: notes.join('; ') };
}

export interface ReleaseCgroup {
  /** The `cgroup.procs` file of each hierarchy the release is in (v1: one per controller). */
  procsFiles: string[];
  /** Removes the release's cgroups (leaf first); they must be empty. The app's level goes when empty. */
  remove(): Promise<void>;
  /** Every pid in the release's cgroups. */
  pids(): Promise<number[]>;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

function checkName(what: string, value: string): void {
  // These become path components under /sys/fs/cgroup: no '/', no '..'.
  if (!NAME.test(value) || value.includes('..'))
    throw new Error(`invalid ${what} for a cgroup: ${JSON.stringify(value)}`);
}

async function enable(dir: string, controllers: string[]): Promise<void> {
  const want = controllers.map((c) => `+${c}`).join(' ');
  if (want) await writeFile(join(dir, 'cgroup.subtree_control'), want);
}

export async function createReleaseCgroup(
  probe: IsolationProbe | CgroupProbe,
  app: string,
  release: string,
  limits: { memoryMb: number; processes: number },
): Promise<ReleaseCgroup> {
  checkName('app', app);
  checkName('release', release);
  const cg = 'cgroup' in probe ? probe.cgroup : probe;
  if (!cg) throw new Error('no cgroups on this host');
  if (!Number.isInteger(limits.memoryMb) || limits.memoryMb <= 0)
    throw new Error('memoryMb must be a positive integer');
  if (!Number.isInteger(limits.processes) || limits.processes <= 0)
    throw new Error('processes must be a positive integer');
  const bytes = String(limits.memoryMb * 1024 * 1024);
  const leaves: string[] = [];

  if (cg.version === 2) {
    const controllers = [cg.memory && 'memory', cg.pids && 'pids'].filter((c): c is string => !!c);
    const appDir = join(cg.base, app);
    const leaf = join(appDir, release);
    // Each level must pass the controllers down before the next level gets the interface files.
    await mkdir(cg.base, { recursive: true });
    await enable(cg.base, controllers);
    await mkdir(appDir, { recursive: true });
    await enable(appDir, controllers);
    await mkdir(leaf, { recursive: true });
    leaves.push(leaf);
    if (cg.memory) {
      await writeFile(join(leaf, 'memory.max'), bytes);
      // Without this a limited app swaps instead of being killed; absent when the host has no swap.
      await writeFile(join(leaf, 'memory.swap.max'), '0').catch(() => undefined);
    }
    if (cg.pids) await writeFile(join(leaf, 'pids.max'), String(limits.processes));
  } else {
    if (cg.dirs.memory) {
      const leaf = join(cg.dirs.memory, app, release);
      await mkdir(leaf, { recursive: true });
      leaves.push(leaf);
      await writeFile(join(leaf, 'memory.limit_in_bytes'), bytes);
      // memsw (memory + swap) must be >= the memory limit; it only exists with swap accounting.
      await writeFile(join(leaf, 'memory.memsw.limit_in_bytes'), bytes).catch(() => undefined);
    }
    if (cg.dirs.pids) {
      const leaf = join(cg.dirs.pids, app, release);
      await mkdir(leaf, { recursive: true });
      leaves.push(leaf);
      await writeFile(join(leaf, 'pids.max'), String(limits.processes));
    }
  }

  const procsFiles = leaves.map((leaf) => join(leaf, 'cgroup.procs'));
  return {
    procsFiles,
    async pids() {
      const all = new Set<number>();
      for (const file of procsFiles) {
        const text = await readFile(file, 'utf8').catch(() => '');
        for (const line of text.split('\n')) if (line.trim()) all.add(Number(line));
      }
      return [...all].sort((a, b) => a - b);
    },
    async remove() {
      for (const leaf of leaves) {
        await rmdirRetrying(leaf);
        // The app's level is shared by its releases: remove it only when this was the last one.
        await rmdir(join(leaf, '..')).catch(() => undefined);
      }
    },
  };
}

async function rmdirRetrying(dir: string): Promise<void> {
  // A process that was just killed can stay listed for a moment; EBUSY then clears by itself.
  for (let attempt = 0; ; attempt++) {
    try {
      await rmdir(dir);
      return;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || attempt >= 40) throw error;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/**
 * Runs as root with the app's environment: `$1` cgroup.procs files (one a line), `$2` uid, `$3` gid,
 * `$4` nofile, `$5` nproc, `$6` `--`, then the program. Our data only ever appears as quoted expansions
 * or as setpriv's argv, never as shell text. dash spells RLIMIT_NPROC `ulimit -p` (bash: `-u`).
 */
export const WRAPPER = `set -f
procs=$1 uid=$2 gid=$3 nofile=$4 nproc=$5
[ "$6" = -- ] || { echo "cloudlunacy wrapper: bad arguments" >&2; exit 125; }
shift 6
IFS='
'
for f in $procs; do
  printf '%s\\n' "$$" > "$f" || { echo "cloudlunacy wrapper: cannot join cgroup $f" >&2; exit 125; }
done
ulimit -n "$nofile" || exit 125
ulimit -u "$nproc" 2>/dev/null || ulimit -p "$nproc" || exit 125
exec ${SETPRIV} --reuid="$uid" --regid="$gid" --clear-groups --no-new-privs --inh-caps=-all --bounding-set=-all -- "$@"
`;

/** Runs as the app: `$1` the directory to work in, then the program. */
export const CHDIR_AS_APP = 'cd -- "$1" || exit 125; shift; exec "$@"';

/**
 * Names that would run code in the root part (the shell and setpriv run as root with this
 * environment): the dynamic loader's and glibc's variables, and shells' startup hooks.
 */
const ROOT_UNSAFE =
  /^(LD_.*|GLIBC_TUNABLES|MALLOC_.*|GCONV_PATH|LOCPATH|NLSPATH|HOSTALIASES|RES_OPTIONS|LOCALDOMAIN|RESOLV_HOST_CONF|BASH_ENV|ENV|SHELLOPTS|BASHOPTS|PS4|IFS|CDPATH|BASH_FUNC_.*)$/;

export interface SpawnIsolatedOptions {
  isolation: IsolationMode;
  uid: number;
  gid: number;
  cwd: string;
  env: Record<string, string>;
  cgroupProcsFiles?: string[];
  nofile: number;
  nproc: number;
  stdout: number | 'ignore';
  stderr: number | 'ignore';
  /** Always true: a new session, so the app survives the agent and is stopped by process group. */
  detached?: true;
}

/** The argv for `/bin/sh` (exported for the spec of the wrapper's quoting). */
export function wrapperArgs(
  argv: string[],
  o: Pick<SpawnIsolatedOptions, 'uid' | 'gid' | 'nofile' | 'nproc' | 'cgroupProcsFiles'>,
): string[] {
  if (argv.length === 0) throw new Error('argv is empty');
  // Positive, so uid/gid 0 is refused: setpriv to root would run the app as root.
  for (const [what, n] of Object.entries({ uid: o.uid, gid: o.gid, nofile: o.nofile, nproc: o.nproc })) {
    if (!Number.isInteger(n) || n < 1) throw new Error(`${what} must be a positive integer`);
  }
  const files = o.cgroupProcsFiles ?? [];
  for (const f of files)
    if (!f.startsWith('/') || f.includes('\n')) throw new Error(`bad cgroup.procs path ${JSON.stringify(f)}`);
  return [
    '-c',
    WRAPPER,
    'cl',
    files.join('\n'),
    String(o.uid),
    String(o.gid),
    String(o.nofile),
    String(o.nproc),
    '--',
    ...argv,
  ];
}

export function spawnIsolated(argv: string[], o: SpawnIsolatedOptions): ChildProcess {
  const stdio: ['ignore', number | 'ignore', number | 'ignore'] = ['ignore', o.stdout, o.stderr];
  if (o.isolation === 'none') {
    if (argv.length === 0) throw new Error('argv is empty');
    return spawn(argv[0], argv.slice(1), { cwd: o.cwd, env: o.env, stdio, detached: true });
  }
  const unsafe = Object.keys(o.env).filter((k) => ROOT_UNSAFE.test(k));
  if (unsafe.length)
    throw new Error(`environment variables not allowed for an isolated process: ${unsafe.join(', ')}`);
  // The working directory is entered after setpriv, as the app: a root chdir would follow a symlink the
  // app put in its own tree into a directory only root may enter (another app's release).
  const entering = ['/bin/sh', '-c', CHDIR_AS_APP, 'cl-cd', o.cwd, ...argv];
  return spawn('/bin/sh', wrapperArgs(entering, o), { cwd: '/', env: o.env, stdio, detached: true });
}

/** Field 22 (starttime, clock ticks since boot) of a /proc/<pid>/stat line. */
export function parseStatStartTime(stat: string): number {
  // comm (field 2) is in parentheses and may itself contain spaces and ')': the last ')' ends it.
  const end = stat.lastIndexOf(')');
  if (end < 0) throw new Error('not a /proc/<pid>/stat line');
  const rest = stat
    .slice(end + 2)
    .trim()
    .split(' '); // rest[0] is field 3
  const value = rest[22 - 3];
  if (value === undefined || !/^\d+$/.test(value)) throw new Error('no start time in /proc/<pid>/stat');
  return Number(value);
}

function parseStatPgrpState(stat: string): { state: string; pgrp: number } {
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state: rest[0], pgrp: Number(rest[5 - 3]) };
}

/** The start time of a live process, or null when there is none: with the pid, it names a process. */
export async function processStartTime(pid: number): Promise<number | null> {
  try {
    return parseStatStartTime(await readFile(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return null;
  }
}

/**
 * Whether the process the pid and start time name is alive: false when it is gone, another process has
 * the pid now, or it is a zombie (an adopted release's parent may not have reaped it yet).
 */
export async function isAlive(pid: number, startTime: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  if (!stat) return false;
  try {
    if (parseStatStartTime(stat) !== startTime) return false;
  } catch {
    return false;
  }
  return !['Z', 'X'].includes(parseStatPgrpState(stat).state);
}

/** Whether any process (a zombie too) is in the group: kill(-pgid, 0) signals nothing. */
function groupExists(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Live (not zombie) members of a process group, found in /proc: orphans may never be reaped here. */
async function groupMembers(pgid: number): Promise<number[]> {
  const found: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    if (!stat) continue;
    const { state, pgrp } = parseStatPgrpState(stat);
    if (pgrp === pgid && state !== 'Z' && state !== 'X') found.push(Number(name));
  }
  return found;
}

async function liveCgroupPids(cgroup: Pick<ReleaseCgroup, 'pids'>): Promise<number[]> {
  const live: number[] = [];
  for (const pid of await cgroup.pids()) {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    if (stat && !['Z', 'X'].includes(parseStatPgrpState(stat).state)) live.push(pid);
  }
  return live;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Already gone (ESRCH) is the outcome we want.
  }
}

/**
 * Stops a release: SIGTERM to its process group and to every pid in its cgroup (which catches what left
 * the group), then SIGKILL after `graceMs`. Resolves with what it took.
 */
export async function killReleaseGroup(
  pgid: number,
  cgroup?: Pick<ReleaseCgroup, 'pids'>,
  { graceMs = 5_000, killWaitMs = 5_000 }: { graceMs?: number; killWaitMs?: number } = {},
): Promise<'exit' | 'kill' | 'none'> {
  // pgid 0/1 would signal our own group or everything.
  if (!Number.isInteger(pgid) || pgid <= 1) throw new Error(`refusing to signal process group ${pgid}`);
  const remaining = async () => [
    // The scan of /proc costs tens of milliseconds on a busy host; an empty group answers ESRCH at once.
    ...(groupExists(pgid) ? await groupMembers(pgid) : []),
    ...(cgroup ? await liveCgroupPids(cgroup) : []),
  ];
  const send = async (sig: NodeJS.Signals) => {
    signal(-pgid, sig);
    if (cgroup) for (const pid of await cgroup.pids()) signal(pid, sig);
  };
  if ((await remaining()).length === 0) return 'none';
  await send('SIGTERM');
  if (await gone(remaining, graceMs)) return 'exit';
  await send('SIGKILL');
  if (await gone(remaining, killWaitMs)) return 'kill';
  throw new Error(
    `process group ${pgid} still has processes after SIGKILL: ${(await remaining()).join(' ')}`,
  );
}

async function gone(remaining: () => Promise<number[]>, withinMs: number): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    if ((await remaining()).length === 0) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}
