import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseStatStartTime, SETPRIV, WRAPPER, wrapperArgs } from './isolation.js';

describe('parseStatStartTime', () => {
  it('reads field 22 when comm holds spaces and parentheses', () => {
    // fields 3..21, then starttime 642135, then the rest
    const stat =
      '28049 (a b) c) S 28044 28044 7118 0 -1 4194304 98 0 0 0 0 0 0 0 20 0 1 0 642135 3133440 390 18446744073709551615 0 0';
    expect(parseStatStartTime(stat)).toBe(642135);
  });

  it('is not fooled by a comm that looks like fields', () => {
    const stat =
      '7 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 99) R 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 555 0 0';
    expect(parseStatStartTime(stat)).toBe(555);
  });

  it('refuses a truncated line', () => {
    expect(() => parseStatStartTime('7 (x) S 1 2 3')).toThrow('no start time');
    expect(() => parseStatStartTime('garbage')).toThrow();
  });
});

describe('WRAPPER', () => {
  // setpriv replaced by printf: what would reach setpriv (its options, then the program's argv) is printed
  // NUL-separated, so the spec needs no root and sees every argument exactly.
  const printing = WRAPPER.replace(SETPRIV, "/usr/bin/printf '%s\\0'");
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'cl-wrapper-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function run(argv: string[], procsFiles: string[] = []) {
    const args = wrapperArgs(argv, {
      uid: 62001,
      gid: 62002,
      nofile: 512,
      nproc: 4000,
      cgroupProcsFiles: procsFiles,
    });
    expect(args[1]).toBe(WRAPPER);
    const result = spawnSync('/bin/sh', ['-c', printing, ...args.slice(2)], {
      encoding: 'utf8',
      env: { PATH: '/usr/bin:/bin' },
    });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    return result.stdout.split('\0').slice(0, -1);
  }

  it('passes hostile argv through verbatim after setpriv options', () => {
    const hostile = [
      'node',
      'a b',
      `"q" 'q'`,
      '$(touch /tmp/cl-pwned)',
      '`id`',
      'x; rm -rf /',
      '$1 $@ ${HOME}',
      '*',
      '\nnew\nline',
      '--',
      '',
    ];
    const out = run(hostile);
    expect(out).toEqual([
      '--reuid=62001',
      '--regid=62002',
      '--clear-groups',
      '--no-new-privs',
      '--inh-caps=-all',
      '--bounding-set=-all',
      '--',
      ...hostile,
    ]);
  });

  it('writes its pid into every cgroup.procs file, even with odd names', () => {
    const a = join(dir, 'a procs');
    const b = join(dir, '$(x);b');
    run(['true'], [a, b]);
    const pa = readFileSync(a, 'utf8');
    expect(pa).toMatch(/^\d+\n$/);
    expect(readFileSync(b, 'utf8')).toBe(pa);
  });

  it('sets the rlimits before exec', () => {
    const script = WRAPPER.replace(`exec ${SETPRIV}`, 'echo "$(ulimit -n)"; exit 0; :');
    const args = wrapperArgs(['x'], { uid: 62001, gid: 62001, nofile: 321, nproc: 4000 });
    const result = spawnSync('/bin/sh', ['-c', script, ...args.slice(2)], { encoding: 'utf8' });
    expect(result.stdout.trim()).toBe('321');
  });

  it('fails (125) when a cgroup cannot be joined', () => {
    const args = wrapperArgs(['true'], {
      uid: 62001,
      gid: 62001,
      nofile: 512,
      nproc: 4000,
      cgroupProcsFiles: [join(dir, 'no/such/procs')],
    });
    const result = spawnSync('/bin/sh', ['-c', printing, ...args.slice(2)], { encoding: 'utf8' });
    expect(result.status).toBe(125);
    expect(result.stdout).toBe('');
  });

  it('refuses uid 0, empty argv and procs paths with newlines', () => {
    expect(() => wrapperArgs(['x'], { uid: 0, gid: 1, nofile: 1, nproc: 1 })).toThrow('uid');
    expect(() => wrapperArgs([], { uid: 1, gid: 1, nofile: 1, nproc: 1 })).toThrow('empty');
    expect(() =>
      wrapperArgs(['x'], { uid: 1, gid: 1, nofile: 1, nproc: 1, cgroupProcsFiles: ['/a\n/b'] }),
    ).toThrow('cgroup');
  });
});
