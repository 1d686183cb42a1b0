import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

/**
 * Passwd and group entries for the apps' uids (deployments.systemUsers). setpriv runs a process under
 * any numeric uid, but some tools refuse a uid without a name: OpenSSH's client (git over ssh) exits
 * with "No user exists for uid". The entries are named after the uid (`cl-62001`), so agents sharing a
 * host in tests, or an app renamed, never collide; the comment says whose it is.
 */

const run = promisify(execFile);

/** Whether useradd (and its siblings) can be run here: the shadow tools are in /usr/sbin on Debian. */
export async function systemUserToolsPresent(): Promise<boolean> {
  try {
    await run('useradd', ['--help']);
    return true;
  } catch {
    return false;
  }
}

export function systemUserName(uid: number): string {
  return `cl-${uid}`;
}

/** The name of a passwd (or group) entry with this id, through NSS (LDAP users count too). */
async function lookup(database: 'passwd' | 'group', id: number): Promise<string | null> {
  try {
    const { stdout } = await run('getent', [database, String(id)]);
    return stdout.split(':')[0] || null;
  } catch (error) {
    // getent exits 2 when there is no such entry.
    if ((error as { code?: unknown }).code === 2) return null;
    throw new Error(`getent ${database} ${id} failed: ${(error as Error).message}`);
  }
}

/** Who holds the app's id in passwd and group (null: no one), read once. */
async function holders(uid: number): Promise<{ user: string | null; group: string | null }> {
  const [user, group] = await Promise.all([lookup('passwd', uid), lookup('group', uid)]);
  return { user, group };
}

/** Of those, the entries that are not ours (`cl-<uid>`). */
function othersAmong(uid: number, held: { user: string | null; group: string | null }) {
  const ours = systemUserName(uid);
  return [
    { what: 'uid' as const, name: held.user },
    { what: 'gid' as const, name: held.group },
  ].filter(
    (entry): entry is { what: 'uid' | 'gid'; name: string } => entry.name !== null && entry.name !== ours,
  );
}

/** Whether the uid (and the gid of the same number) is free for an app, or already one of ours. */
export async function uidAvailable(uid: number): Promise<boolean> {
  return othersAmong(uid, await holders(uid)).length === 0;
}

// useradd and groupadd lock /etc/passwd and /etc/group and fail rather than wait: one at a time.
let queue: Promise<unknown> = Promise.resolve();
function serially(work: () => Promise<void>): Promise<void> {
  const next = queue.then(work);
  queue = next.catch(() => undefined);
  return next;
}

/**
 * Makes sure `cl-<uid>` exists with this uid, a group of the same number, the app's home and no
 * login shell. An id that belongs to someone else is an error that says what to change.
 */
export function ensureSystemUser(input: { uid: number; appName: string; home: string }): Promise<void> {
  return serially(async () => {
    const name = systemUserName(input.uid);
    const held = await holders(input.uid);
    const [other] = othersAmong(input.uid, held);
    if (other)
      throw new Error(
        `${other.what} ${input.uid} of app ${input.appName} belongs to ${other.name}: move deployments.uidRange to ids no one uses`,
      );
    if (held.group === null) await run('groupadd', ['--system', '--gid', String(input.uid), name]);
    if (held.user === null)
      await run('useradd', [
        '--system',
        '--uid',
        String(input.uid),
        '--gid',
        String(input.uid),
        '--no-create-home',
        '--home-dir',
        input.home,
        '--shell',
        '/usr/sbin/nologin',
        '--comment',
        `CloudLunacy app ${input.appName}`,
        name,
      ]);
  });
}
