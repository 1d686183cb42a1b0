import { createHash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { lstat, open, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * What a release directory is (docs/plans/deployments.md §7.3): a digest to check before a rollback
 * starts it, and read-only so that it stays what was built. Nothing here follows a symlink: the app
 * wrote the tree, and a link could point anywhere on the host.
 */

type Kind = 'dir' | 'file' | 'symlink';

interface Entry {
  path: string; // relative, '/'-separated; '.' is the root
  kind: Kind;
  mode: number;
}

function kindOf(
  stat: { isDirectory(): boolean; isFile(): boolean; isSymbolicLink(): boolean },
  path: string,
): Kind {
  if (stat.isSymbolicLink()) return 'symlink';
  if (stat.isDirectory()) return 'dir';
  if (stat.isFile()) return 'file';
  // Builds have no business making fifos, sockets or devices; refusing keeps the listing total.
  throw new Error(`${path}: not a file, directory or symlink`);
}

async function walk(dir: string): Promise<Entry[]> {
  const entries: Entry[] = [];
  const visit = async (rel: string) => {
    const abs = rel === '.' ? dir : join(dir, rel);
    const stat = await lstat(abs);
    const kind = kindOf(stat, rel);
    entries.push({ path: rel, kind, mode: stat.mode & 0o7777 });
    if (kind !== 'dir') return;
    for (const name of await readdir(abs)) await visit(rel === '.' ? name : `${rel}/${name}`);
  };
  await visit('.');
  return entries;
}

/** Opens without following a symlink put there since the lstat (O_NOFOLLOW), and never blocks. */
function openNoFollow(path: string, directory = false) {
  return open(
    path,
    constants.O_RDONLY |
      constants.O_NOFOLLOW |
      constants.O_NONBLOCK |
      (directory ? constants.O_DIRECTORY : 0),
  );
}

export async function sha256File(path: string): Promise<{ hash: string; size: number }> {
  const handle = await openNoFollow(path);
  try {
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of createReadStream('', {
      fd: handle.fd,
      autoClose: false,
    }) as AsyncIterable<Buffer>) {
      hash.update(chunk);
      size += chunk.length;
    }
    return { hash: hash.digest('hex'), size };
  } finally {
    await handle.close();
  }
}

const byteOrder = (a: Entry, b: Entry) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path));

/**
 * SHA-256 hex over one JSON line per entry, sorted by the bytes of the relative path:
 * `[path, type, mode & 0o7777, size, sha256(content | symlink target)]`. JSON keeps names with
 * newlines unambiguous. Directories count with size 0 (their st_size depends on the file system's
 * history, not on what is in them); mtimes and owners are left out.
 */
export async function artifactDigest(dir: string): Promise<string> {
  return (await digestTree(dir)).digest;
}

/** The digest above, and the bytes of the files and link targets it covered. */
export async function digestTree(dir: string): Promise<{ digest: string; bytes: number }> {
  const entries = (await walk(dir)).sort(byteOrder);
  const listing = createHash('sha256');
  let bytes = 0;
  for (const e of entries) {
    const abs = e.path === '.' ? dir : join(dir, e.path);
    let size = 0;
    let hash = '';
    if (e.kind === 'file') ({ hash, size } = await sha256File(abs));
    else if (e.kind === 'symlink') {
      const target = Buffer.from(await readlink(abs, { encoding: 'buffer' }));
      size = target.length;
      hash = createHash('sha256').update(target).digest('hex');
    }
    bytes += size;
    listing.update(JSON.stringify([e.path, e.kind, e.mode, size, hash]) + '\n');
  }
  return { digest: listing.digest('hex'), bytes };
}

/**
 * `chmod -R a-w` without following symlinks: children before their directory, through file handles
 * opened with O_NOFOLLOW. The x bits stay, so directories remain traversable.
 */
export async function makeReadOnly(dir: string): Promise<void> {
  const entries = await walk(dir);
  for (const e of entries.reverse()) {
    if (e.kind === 'symlink') continue; // Linux has no lchmod; a link's own mode means nothing
    const handle = await openNoFollow(e.path === '.' ? dir : join(dir, e.path), e.kind === 'dir');
    try {
      await handle.chmod(e.mode & ~0o222);
    } finally {
      await handle.close();
    }
  }
}
