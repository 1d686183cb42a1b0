import { mkdtemp, readFile, rm, stat, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initSecrets, secretGenerators } from './secrets.js';
import { secretsLayout } from './layout.js';

let dir: string;
beforeEach(async () => {
  dir = join(await mkdtemp(join(tmpdir(), 'cl-secrets-spec-')), 'secrets');
});
afterEach(async () => {
  await rm(join(dir, '..'), { recursive: true, force: true });
});

test('creates every secret 0600, keeps them on a second run, refuses a half-present set', async () => {
  const first = await initSecrets(dir);
  expect(first.generated).toEqual(secretGenerators.map((generator) => generator.name));
  const layout = secretsLayout(dir);
  for (const generator of secretGenerators) {
    for (const file of generator.files(layout)) expect((await stat(file)).mode & 0o777).toBe(0o600);
  }
  const key = await readFile(layout.accountSigningSeed, 'utf8');
  const second = await initSecrets(dir);
  expect(second).toMatchObject({ generated: [], kept: first.generated });
  expect(await readFile(layout.accountSigningSeed, 'utf8')).toBe(key);

  await unlink(layout.operatorJwt);
  await expect(initSecrets(dir)).rejects.toThrow(/"nats-jwts" are incomplete/);
  expect(await readFile(layout.accountSigningSeed, 'utf8')).toBe(key);
});

test('the server config names the resolver directory it was given', async () => {
  await initSecrets(dir, { natsResolverDir: '/var/lib/nats/resolver' });
  const config = await readFile(secretsLayout(dir).natsAuthConfig, 'utf8');
  expect(config).toContain('dir: "/var/lib/nats/resolver"');
  expect(config).toMatch(/type: full/);
  expect(config).toMatch(/allow_delete: false/);
});
