import { createHash } from 'node:crypto';
import { DATABASE_ADMIN_USER, databaseFiles, newCredentials, redisAcl, redisConfig } from './database.js';

const place = {
  appName: 'cache',
  uid: 62_000,
  gid: 62_000,
  dir: '/var/lib/cloudlunacy/apps/cache',
  home: '/var/lib/cloudlunacy/apps/cache/home',
  tmp: '/var/lib/cloudlunacy/apps/cache/tmp',
  shared: '/var/lib/cloudlunacy/apps/cache/shared',
};

describe('a Redis release', () => {
  const files = databaseFiles(place);

  it('serves TLS only with the copied pair, keeps its data and its admin socket in the root-owned app directory', () => {
    const conf = redisConfig(files);
    expect(conf).toMatch(/^port 0$/m);
    expect(conf).toContain(`tls-cert-file ${place.dir}/db/cert.pem`);
    expect(conf).toContain(`tls-key-file ${place.dir}/db/key.pem`);
    expect(conf).toContain(`dir ${place.dir}/data`);
    expect(conf).toContain(`unixsocket ${place.dir}/run/redis.sock`);
    expect(conf).toMatch(/^unixsocketperm 700$/m);
    expect(conf).toContain(`include ${place.dir}/db/users.conf`);
    // No address or port of its own: the start command gives those.
    expect(conf).not.toMatch(/^(bind|tls-port) /m);
  });

  it('writes only password hashes, and keeps administration from the client user', () => {
    const credentials = newCredentials(new Date('2026-12-08T00:00:00Z'));
    expect(credentials.password).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(credentials.adminPassword).not.toBe(credentials.password);
    const acl = redisAcl(credentials);
    expect(acl).not.toContain(credentials.password);
    expect(acl).not.toContain(credentials.adminPassword);
    const hash = createHash('sha256').update(credentials.password).digest('hex');
    expect(acl).toContain(`user default on #${hash} ~* &* +@all -@admin -migrate -restore`);
    expect(acl).toMatch(new RegExp(`^user ${DATABASE_ADMIN_USER} on #[0-9a-f]{64} ~\\* &\\* \\+@all$`, 'm'));
  });
});
