import { randomBytes } from 'node:crypto';
import { open, rename, rm, symlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Flushes a directory entry change (a rename, a link) to disk. Best effort where directories cannot be opened. */
export async function syncDirectory(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EINVAL' && code !== 'EPERM') throw error;
  } finally {
    await handle?.close();
  }
}

/** A fresh temporary path beside `path` (same directory, hence same file system: rename is atomic). */
export function temporaryPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
}

/** Writes `data` to a new file created with O_EXCL and `mode`, and flushes it to disk. */
export async function writeFileDurably(path: string, data: string | Uint8Array, mode: number): Promise<void> {
  const handle = await open(path, 'wx', mode);
  try {
    await handle.chmod(mode); // the umask may have narrowed or widened nothing we want to depend on
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Replaces `path` atomically: readers see the old content or the new one, never a mix, and after a crash
 * the file is one or the other. Temp file in the same directory, fsync, rename, fsync of the directory.
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  options: { mode?: number } = {},
): Promise<void> {
  const temporary = temporaryPathFor(path);
  try {
    await writeFileDurably(temporary, data, options.mode ?? 0o600);
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
  await syncDirectory(dirname(path));
}

/**
 * Points the symbolic link `path` at `target` atomically: a new link under a temporary name, renamed over
 * the old one (rename replaces a link without following it), then the directory is flushed. Readers
 * following `path` see the old target or the new one, never none: a set of files in one directory is
 * switched at once.
 */
export async function replaceSymlinkAtomic(target: string, path: string): Promise<void> {
  const temporary = temporaryPathFor(path);
  try {
    await symlink(target, temporary);
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
  await syncDirectory(dirname(path));
}
