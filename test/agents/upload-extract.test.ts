import { chmod, chown, lstat, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { extractUpload, TarRefused } from '../../apps/agent/src/deployments/upload.js';
import { makeTempDir } from '../harness/processes.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot)
  console.log(
    'upload-extract.test: skipped, extracting as an app uid needs root (uid %d)',
    process.getuid?.(),
  );
const maybe = isRoot ? it : it.skip;

interface Member {
  name: string;
  type?: '0' | '2' | '3' | '5';
  data?: string;
  /** The size the header claims (a bomb claims more than it carries). */
  size?: number;
  link?: string;
  mode?: number;
}

/** A ustar archive written by hand: tar itself will not make most of these. */
function tarball(members: Member[], { truncated = false } = {}): Buffer {
  const blocks: Buffer[] = [];
  for (const member of members) {
    const header = Buffer.alloc(512);
    const data = Buffer.from(member.data ?? '');
    const field = (offset: number, length: number, value: string) =>
      header.write(value, offset, length, 'latin1');
    const octal = (offset: number, length: number, value: number) =>
      field(offset, length, `${value.toString(8).padStart(length - 1, '0')}\0`);
    field(0, 100, member.name);
    octal(100, 8, member.mode ?? (member.type === '5' ? 0o755 : 0o644));
    octal(108, 8, 0);
    octal(116, 8, 0);
    octal(124, 12, member.size ?? data.length);
    octal(136, 12, 1_700_000_000);
    field(148, 8, '        ');
    field(156, 1, member.type ?? '0');
    field(157, 100, member.link ?? '');
    field(257, 8, 'ustar\x0000');
    if (member.type === '3') {
      octal(329, 8, 1);
      octal(337, 8, 3);
    }
    let sum = 0;
    for (const byte of header) sum += byte;
    field(148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
    blocks.push(header);
    if (data.length > 0) blocks.push(data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  if (!truncated) blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}

const HOSTILE: [string, (outside: string) => Buffer, string][] = [
  [
    'a .. name',
    () => tarball([{ name: '../escaped', data: 'x' }]),
    `"../escaped": a name with a '..' component`,
  ],
  [
    'an absolute name',
    (outside) => tarball([{ name: `${outside}/absolute`, data: 'x' }]),
    ': an absolute name',
  ],
  [
    'a symlink out, then a file through it',
    () =>
      tarball([
        { name: 'out', type: '2', link: '../outside' },
        { name: 'out/through', data: 'x' },
      ]),
    '"out": a symlink that leaves the tree',
  ],
  [
    'a symlink to an absolute path',
    (outside) => tarball([{ name: 'abs', type: '2', link: outside }]),
    '"abs": a symlink to an absolute path',
  ],
  ['a device file', () => tarball([{ name: 'null', type: '3' }]), '"null": a device file'],
  [
    'a size bomb',
    () => tarball([{ name: 'big', size: 2 * 1024 ** 3, data: 'x' }], { truncated: true }),
    'unpacks to more than 1073741824 bytes',
  ],
];

/** Every path under a directory (relative), for proving nothing was written where it should not be. */
async function tree(dir: string, prefix = ''): Promise<string[]> {
  const found: string[] = [];
  for (const name of await readdir(dir)) {
    const path = join(dir, name);
    found.push(prefix + name);
    if ((await lstat(path)).isDirectory()) found.push(...(await tree(path, `${prefix}${name}/`)));
  }
  return found.sort();
}

describe('extracting an uploaded tarball as the app uid', () => {
  const uid = 62000 + 800 + (process.pid % 90);

  async function layout() {
    const temp = await makeTempDir('upload-extract');
    await chmod(temp.path, 0o711);
    // The agent's: the downloaded tarball lives where the app cannot write.
    const downloads = join(temp.path, 'downloads');
    await mkdir(downloads, { mode: 0o711 });
    const app = join(temp.path, 'app', 'releases');
    const workspace = join(app, '1.tmp');
    await mkdir(workspace, { recursive: true });
    for (const dir of [join(temp.path, 'app'), app, workspace]) await chown(dir, uid, uid);
    // Writable by the app's uid: what a symlink or `..` could reach if tar were let loose.
    const outside = join(temp.path, 'app', 'outside');
    await mkdir(outside);
    await chown(outside, uid, uid);
    return { temp, downloads, workspace, outside };
  }

  const options = (file: string, workspace: string) => ({
    file,
    workspace,
    isolation: 'uid' as const,
    uid,
    gid: uid,
    nofile: 1024,
    nproc: 256,
    timeoutMs: 60_000,
  });

  maybe('extracts a plain tarball as the app uid, without its owners and setuid bits', async () => {
    const { temp, downloads, workspace } = await layout();
    try {
      const file = join(downloads, 'good.tar.gz');
      await writeFile(
        file,
        tarball([
          { name: 'app/', type: '5' },
          { name: 'app/server.js', data: 'console.log("v1")\n', mode: 0o6755 },
          { name: 'app/a name with spaces', data: 'x' },
          { name: 'link', type: '2', link: 'app/server.js' },
        ]),
        { mode: 0o600 },
      );
      const listing = await extractUpload(options(file, workspace));
      expect(listing.entries.map((entry) => entry.name)).toEqual([
        'app',
        'app/server.js',
        'app/a name with spaces',
        'link',
      ]);
      expect(await readFile(join(workspace, 'link'), 'utf8')).toContain('v1');
      const server = await stat(join(workspace, 'app', 'server.js'));
      expect([server.uid, server.gid, server.mode & 0o7000]).toEqual([uid, uid, 0]);
    } finally {
      await temp.remove();
    }
  });

  test.each(HOSTILE)(
    'refuses %s with the reason and writes nothing anywhere',
    async (_what, make, reason) => {
      if (!isRoot) return;
      const { temp, downloads, workspace, outside } = await layout();
      try {
        const file = join(downloads, 'hostile.tar.gz');
        await writeFile(file, make(outside), { mode: 0o600 });
        const before = await tree(temp.path);
        const refusal = await extractUpload(options(file, workspace)).then(
          () => new Error('extracted'),
          (error: unknown) => error,
        );
        expect(refusal).toBeInstanceOf(TarRefused);
        expect((refusal as Error).message).toContain(reason);
        expect(await readdir(workspace)).toEqual([]);
        expect(await readdir(outside)).toEqual([]);
        expect(await tree(temp.path)).toEqual(before);
      } finally {
        await temp.remove();
      }
    },
  );

  maybe('refuses a tarball the app could swap (in a directory it can write)', async () => {
    const { temp, workspace } = await layout();
    try {
      const file = join(workspace, '..', 'in-app.tar.gz');
      await writeFile(file, tarball([{ name: 'a', data: 'x' }]), { mode: 0o600 });
      await chmod(join(workspace, '..'), 0o777);
      await expect(extractUpload(options(file, workspace))).rejects.toThrow(
        "must be the agent's, in a directory only the agent can write",
      );
    } finally {
      await temp.remove();
    }
  });
});
