import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  buildRootPath,
  fileSourcePath,
  isInside,
  readSourceFile,
  shellQuote,
  SourceError,
} from './sources.js';

describe('isInside', () => {
  it.each([
    ['/a/b', '/a/b', true],
    ['/a/b', '/a/b/', true],
    ['/a/b', '/a/b/c', true],
    ['/a/b', '/a/b/c/d.txt', true],
    ['/a/b', '/a/b/..c', true],
    ['/a/b', '/a/b/c/../d', true],
    ['/a/b', '/a/bc', false],
    ['/a/b', '/a/bc/d', false],
    ['/a/b', '/a', false],
    ['/a/b', '/', false],
    ['/a/b', '/a/c', false],
    ['/a/b', '/a/b/..', false],
    ['/a/b', '/a/b/../c', false],
    ['/a/b', '/a/b/c/../../x', false],
    ['/', '/anything/at/all', true],
  ])('root %s, path %s: %s', (root, path, inside) => {
    expect(isInside(root, path)).toBe(inside);
  });
});

describe('source files', () => {
  let base: string;
  let workspace: string;
  let outside: string;

  beforeEach(async () => {
    base = await realpath(await mkdtemp(join(tmpdir(), 'cl-sources-')));
    workspace = join(base, 'workspace');
    outside = join(base, 'outside');
    await mkdir(join(workspace, 'app', 'sub'), { recursive: true });
    await mkdir(outside);
    await writeFile(join(workspace, 'cloudlunacy.json'), '{"build":{}}');
    await writeFile(join(workspace, 'app', 'package.json'), '{"name":"app"}');
    await writeFile(join(outside, 'secret'), 'root only');
    await mkdir(join(outside, 'dir'));
    await symlink(join(outside, 'secret'), join(workspace, 'to-outside'));
    await symlink('../../outside', join(workspace, 'app', 'escape'));
    await symlink('../outside/dir', join(workspace, 'dir-outside'));
    await symlink('package.json', join(workspace, 'app', 'same-dir-link'));
  });
  afterEach(async () => {
    await rm(base, { recursive: true, force: true });
  });

  describe('readSourceFile', () => {
    it('reads a file of the source', async () => {
      expect(await readSourceFile(workspace, 'cloudlunacy.json')).toBe('{"build":{}}');
      expect(await readSourceFile(workspace, 'app/package.json')).toBe('{"name":"app"}');
    });

    it('refuses a symlink to a file outside the workspace', async () => {
      await expect(readSourceFile(workspace, 'to-outside')).rejects.toThrow(
        new SourceError('to-outside leaves the source directory'),
      );
    });

    it('refuses a path through a symlink inside the source that points out', async () => {
      await expect(readSourceFile(workspace, 'app/escape/secret')).rejects.toThrow(
        /leaves the source directory/,
      );
      await writeFile(join(outside, 'dir', 'package.json'), '{}');
      await expect(readSourceFile(workspace, 'dir-outside/package.json')).rejects.toThrow(
        /leaves the source directory/,
      );
      // '..' after a symlink is taken by name (join), not through the link: this is the workspace's own.
      expect(await readSourceFile(workspace, 'dir-outside/../cloudlunacy.json')).toBe('{"build":{}}');
    });

    it('refuses a relative path that climbs out', async () => {
      await expect(readSourceFile(workspace, '../outside/secret')).rejects.toThrow(
        /leaves the source directory/,
      );
      await expect(readSourceFile(join(workspace, 'app'), '../cloudlunacy.json')).rejects.toThrow(
        /leaves the source directory/,
      );
    });

    it('returns null for a missing file (and a dangling symlink)', async () => {
      expect(await readSourceFile(workspace, 'missing.json')).toBeNull();
      expect(await readSourceFile(workspace, 'app/missing/deeper.json')).toBeNull();
      await symlink('nowhere', join(workspace, 'dangling'));
      expect(await readSourceFile(workspace, 'dangling')).toBeNull();
    });

    it('refuses a directory', async () => {
      await expect(readSourceFile(workspace, 'app')).rejects.toThrow(new SourceError('app is not a file'));
    });

    it('refuses a file larger than maxBytes, and takes one of exactly maxBytes', async () => {
      await writeFile(join(workspace, 'big.json'), 'x'.repeat(101));
      await writeFile(join(workspace, 'fits.json'), 'x'.repeat(100));
      await expect(readSourceFile(workspace, 'big.json', 100)).rejects.toThrow(
        new SourceError('big.json is larger than 100 bytes'),
      );
      expect(await readSourceFile(workspace, 'fits.json', 100)).toHaveLength(100);
    });

    it('works from a workspace reached through a symlink', async () => {
      await symlink(workspace, join(base, 'link-to-workspace'));
      expect(await readSourceFile(join(base, 'link-to-workspace'), 'app/same-dir-link')).toBe(
        '{"name":"app"}',
      );
    });
  });

  describe('buildRootPath', () => {
    it('is the real path of a directory of the source', async () => {
      expect(await buildRootPath(workspace, 'app')).toBe(join(workspace, 'app'));
      expect(await buildRootPath(workspace, '.')).toBe(workspace);
      expect(await buildRootPath(workspace, 'app/sub/..')).toBe(join(workspace, 'app'));
    });

    it("refuses a root that leaves the workspace with '..'", async () => {
      await expect(buildRootPath(workspace, '../outside')).rejects.toThrow(
        new SourceError('build.root leaves the source directory'),
      );
      await expect(buildRootPath(workspace, '..')).rejects.toThrow(/leaves the source directory/);
    });

    it('refuses a root that leaves the workspace through a symlink', async () => {
      await expect(buildRootPath(workspace, 'dir-outside')).rejects.toThrow(/leaves the source directory/);
      await expect(buildRootPath(workspace, 'app/escape')).rejects.toThrow(/leaves the source directory/);
    });

    it('refuses a root that does not exist', async () => {
      await expect(buildRootPath(workspace, 'nope')).rejects.toThrow(
        new SourceError('build.root nope does not exist in the source'),
      );
    });
  });

  describe('fileSourcePath', () => {
    let roots: string;
    let repository: string;

    beforeEach(async () => {
      roots = join(base, 'repos');
      repository = join(roots, 'team', 'web');
      await mkdir(repository, { recursive: true });
      await mkdir(join(base, 'repos-other', 'web'), { recursive: true });
      await symlink(join(outside, 'dir'), join(roots, 'sneaky'));
    });

    it('accepts a repository under a root, as its real path', async () => {
      expect(await fileSourcePath(pathToFileURL(repository).href, [roots])).toBe(repository);
      expect(await fileSourcePath(pathToFileURL(roots).href, [roots])).toBe(roots);
      // A root named through a symlink counts as its real path.
      await symlink(roots, join(base, 'repos-link'));
      expect(await fileSourcePath(pathToFileURL(repository).href, [join(base, 'repos-link')])).toBe(
        repository,
      );
      // Any of several roots.
      expect(await fileSourcePath(pathToFileURL(repository).href, [outside, roots])).toBe(repository);
    });

    it('decodes the URL path', async () => {
      const spaced = join(roots, 'with space');
      await mkdir(spaced);
      expect(await fileSourcePath(pathToFileURL(spaced).href, [roots])).toBe(spaced);
    });

    it('refuses a repository outside the roots, naming deployments.fileRoots', async () => {
      const url = pathToFileURL(outside).href;
      await expect(fileSourcePath(url, [roots])).rejects.toThrow(SourceError);
      await expect(fileSourcePath(url, [roots])).rejects.toThrow(
        `file:// sources must be under the agent's deployments.fileRoots (${roots})`,
      );
      // A sibling sharing the root's name as a prefix is outside.
      await expect(
        fileSourcePath(pathToFileURL(join(base, 'repos-other', 'web')).href, [roots]),
      ).rejects.toThrow(/deployments\.fileRoots/);
      await expect(fileSourcePath(url, [])).rejects.toThrow(/deployments\.fileRoots \(none set\)/);
    });

    it('refuses one that reaches outside through a symlink or ..', async () => {
      await expect(fileSourcePath(pathToFileURL(join(roots, 'sneaky')).href, [roots])).rejects.toThrow(
        /deployments\.fileRoots/,
      );
      await expect(fileSourcePath(`file://${roots}/team/../../outside`, [roots])).rejects.toThrow(
        /deployments\.fileRoots/,
      );
      await expect(fileSourcePath(`file://${roots}/team%2F..%2F..%2Foutside`, [roots])).rejects.toThrow(
        /deployments\.fileRoots/,
      );
    });

    it('refuses a repository that does not exist, and ignores a root that does not', async () => {
      await expect(fileSourcePath(pathToFileURL(join(roots, 'missing')).href, [roots])).rejects.toThrow(
        /does not exist on this VPS/,
      );
      await expect(fileSourcePath(pathToFileURL(repository).href, [join(base, 'no-root')])).rejects.toThrow(
        /deployments\.fileRoots/,
      );
    });
  });
});

describe('shellQuote', () => {
  it('gives sh each word back literally, quotes, dollars, globs and newlines included', () => {
    const words = ["it's", '$(id) `id` $HOME', '* ? [a]', 'a\nb', "''", '', '-n', '\\'];
    for (const word of words)
      expect(execFileSync('sh', ['-c', `printf %s ${shellQuote(word)}`], { encoding: 'utf8' })).toBe(word);
  });
});
