import { chmod, lstat, mkdir, mkdtemp, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { artifactDigest, makeReadOnly } from './digest.js';

describe('artifactDigest', () => {
  let root: string;
  let dir: string;

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'cl-digest-'));
    dir = join(root, 'release');
    await mkdir(join(dir, 'lib', 'sub'), { recursive: true });
    await writeFile(join(dir, 'index.js'), 'console.log(1)\n');
    await writeFile(join(dir, 'lib', 'a.js'), 'a');
    await writeFile(join(dir, 'lib', 'sub', 'b.js'), 'b');
    await symlink('lib/a.js', join(dir, 'link'));
    await writeFile(join(root, 'outside'), 'outside');
    await symlink('../outside', join(dir, 'escape'));
  });
  afterEach(async () => {
    await chmodTree(root, 0o700);
    await rm(root, { recursive: true, force: true });
  });

  it('is stable and ignores mtimes', async () => {
    const first = await artifactDigest(dir);
    expect(first).toMatch(/^[0-9a-f]{64}$/);
    expect(await artifactDigest(dir)).toBe(first);
    await utimes(join(dir, 'index.js'), new Date(0), new Date(0));
    await utimes(join(dir, 'lib'), new Date(0), new Date(0));
    expect(await artifactDigest(dir)).toBe(first);
  });

  it('does not follow symlinks: the target file changing outside leaves it alone', async () => {
    const first = await artifactDigest(dir);
    await writeFile(join(root, 'outside'), 'changed');
    expect(await artifactDigest(dir)).toBe(first);
  });

  it.each([
    ['content', (d: string) => writeFile(join(d, 'lib', 'a.js'), 'A')],
    ['mode', (d: string) => chmod(join(d, 'lib', 'sub', 'b.js'), 0o755)],
    ['a directory mode', (d: string) => chmod(join(d, 'lib'), 0o700)],
    [
      'symlink target',
      async (d: string) => {
        await rm(join(d, 'link'));
        await symlink('lib/sub/b.js', join(d, 'link'));
      },
    ],
    ['a new empty file', (d: string) => writeFile(join(d, 'lib', 'empty'), '')],
    ['a new empty directory', (d: string) => mkdir(join(d, 'empty'))],
    [
      'a rename',
      async (d: string) => {
        await writeFile(join(d, 'index2.js'), 'console.log(1)\n');
        await rm(join(d, 'index.js'));
      },
    ],
  ])('changes with %s', async (_what, change) => {
    const before = await artifactDigest(dir);
    await change(dir);
    expect(await artifactDigest(dir)).not.toBe(before);
  });

  it('makeReadOnly removes every w bit, keeps x, leaves links and their targets alone', async () => {
    await chmod(join(dir, 'index.js'), 0o775);
    await makeReadOnly(dir);
    expect((await lstat(join(dir, 'index.js'))).mode & 0o7777).toBe(0o555);
    expect((await lstat(join(dir, 'lib', 'a.js'))).mode & 0o222).toBe(0);
    const lib = (await lstat(join(dir, 'lib'))).mode & 0o7777;
    expect(lib & 0o222).toBe(0);
    expect(lib & 0o111).toBe(0o111);
    expect((await lstat(join(dir, 'lib', 'sub'))).mode & 0o222).toBe(0);
    expect((await lstat(join(dir))).mode & 0o222).toBe(0);
    expect((await lstat(join(root, 'outside'))).mode & 0o200).toBe(0o200);
    // and the digest still reads the tree
    expect(await artifactDigest(dir)).toMatch(/^[0-9a-f]{64}$/);
  });
});

/** Gives write back so the temporary tree can be removed (the spec may run as a non-root user). */
async function chmodTree(path: string, mode: number): Promise<void> {
  const stat = await lstat(path).catch(() => null);
  if (!stat || stat.isSymbolicLink()) return;
  await chmod(path, stat.isDirectory() ? mode : 0o600);
  if (stat.isDirectory()) {
    const { readdir } = await import('node:fs/promises');
    for (const name of await readdir(path)) await chmodTree(join(path, name), mode);
  }
}
