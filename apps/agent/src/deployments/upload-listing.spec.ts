import { checkTarListing, TarRefused, unescapeTarName } from './upload-listing.js';

/** Lines as `LC_ALL=C tar -tvzf x --quoting-style=escape --numeric-owner --absolute-names` prints them. */
const line = (mode: string, size: string | number, name: string) =>
  `${mode} 0/0 ${String(size).padStart(15)} 2026-12-07 12:45 ${name}`;
const file = (name: string, size = 3) => line('-rw-r--r--', size, name);
const dir = (name: string) => line('drwxr-xr-x', 0, name);
const symlink = (name: string, target: string) => line('lrwxrwxrwx', 0, `${name} -> ${target}`);
const hardlink = (name: string, target: string) => line('hrw-r--r--', 0, `${name} link to ${target}`);

const refusal = (text: string, limits?: Parameters<typeof checkTarListing>[1]) => {
  try {
    checkTarListing(text, limits);
  } catch (error) {
    if (error instanceof TarRefused) return error.message;
    throw error;
  }
  throw new Error('expected the listing to be refused');
};

describe('checkTarListing', () => {
  it('takes files, directories and links that stay inside, with names holding spaces and escapes', () => {
    const listing = checkTarListing(
      [
        dir('./'),
        file('./a b.txt', 3),
        file('./new\\nline', 2),
        file('./back\\\\slash', 2),
        file('./caf\\303\\251', 2),
        file('./name -> with arrow', 1),
        dir('./sub/'),
        symlink('./sub/up', '../a b.txt'),
        symlink('./here', '.'),
        hardlink('./hard', './a b.txt'),
        '',
      ].join('\n'),
    );
    expect(listing.entries.map((entry) => entry.name)).toEqual([
      '.',
      'a b.txt',
      'new\nline',
      'back\\slash',
      'café',
      'name -> with arrow',
      'sub',
      'sub/up',
      'here',
      'hard',
    ]);
    expect(listing.unpackedBytes).toBe(10);
    expect(listing.entries.find((entry) => entry.name === 'sub/up')).toMatchObject({
      type: 'symlink',
      target: '../a b.txt',
    });
  });

  it.each([
    ['an absolute name', file('/etc/evil'), '"/etc/evil": an absolute name'],
    ['a .. component', file('../x'), `"../x": a name with a '..' component`],
    ['a .. component inside', file('./a/../../x'), `a name with a '..' component`],
    ['a symlink to an absolute path', symlink('./out', '/etc'), '"out": a symlink to an absolute path'],
    [
      'a symlink leaving the tree',
      symlink('./sub/out', '../../x'),
      '"sub/out": a symlink that leaves the tree',
    ],
    ['a hardlink to an absolute path', hardlink('./h', '/etc/passwd'), '"h": a hardlink to an absolute path'],
    ['a hardlink leaving the tree', hardlink('./h', '../x'), '"h": a hardlink that leaves the tree'],
    ['a character device', line('crw-r--r--', '1,3', './null'), '"./null": a device file'],
    ['a block device', line('brw-r--r--', '8,0', './sda'), '"./sda": a device file'],
    ['a fifo', line('prw-r--r--', 0, './ff'), '"./ff": a fifo'],
    ['a socket', line('srwxr-xr-x', 0, './sock'), '"./sock": a socket'],
    ['another special entry', line('Vrw-r--r--', 0, 'label'), "an entry of type 'V'"],
    ['an ambiguous symlink', symlink('./l -> k', 'x'), 'ambiguous'],
    ['an unreadable line', 'garbage', 'cannot read line 1 of the listing'],
    ['a date that hides part of the name', '-rw-r--r-- 0/0 1 12345 ../ x', 'cannot read line 1'],
    ['an unknown escape', file('./a\\qb'), 'cannot read the name'],
  ])('refuses %s', (_what, text, message) => {
    expect(refusal(text)).toContain(message);
  });

  it('refuses entries and links that go through a symlink of the archive', () => {
    expect(refusal([symlink('./a', 'sub'), dir('./sub/'), file('./a/x')].join('\n'))).toBe(
      '"a/x": is below the symlink "a" of the tarball',
    );
    // d/s1 is the root; through it, s1/../.. is the root's parent, though the text alone stays inside.
    expect(refusal([dir('./d/'), symlink('./d/s1', '..'), symlink('./d/s2', 's1/../..')].join('\n'))).toBe(
      '"d/s2": a symlink through the symlink "d/s1"',
    );
    expect(refusal([dir('./d/'), symlink('./d/l', '..'), hardlink('./h', 'd/l')].join('\n'))).toBe(
      '"h": a hardlink to the symlink "d/l"',
    );
  });

  it('counts entries and listed sizes', () => {
    const three = [file('./a', 10), file('./b', 10), file('./c', 10)].join('\n');
    expect(refusal(three, { maxEntries: 2, maxUnpackedBytes: 100 })).toBe(
      'the tarball has 3 entries; at most 2 are allowed',
    );
    expect(refusal(three, { maxEntries: 10, maxUnpackedBytes: 25 })).toBe(
      'the tarball unpacks to more than 25 bytes (from the listed sizes)',
    );
    expect(checkTarListing(three, { maxEntries: 3, maxUnpackedBytes: 30 }).unpackedBytes).toBe(30);
    expect(refusal(file('./big', 2 * 1024 ** 3))).toContain('unpacks to more than 1073741824 bytes');
  });

  it('reads tar escapes back to the stored bytes', () => {
    expect(unescapeTarName('a\\tb\\\\c\\303\\251\\n')).toBe('a\tb\\cé\n');
  });
});
