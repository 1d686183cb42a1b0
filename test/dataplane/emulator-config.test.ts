/** The emulator reads dataplaneapi's YAML format, including the production file in deploy/haproxy. */
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { configFromYaml } from '../dataplane-emulator/config.js';

describe('emulator configuration', () => {
  it('reads deploy/haproxy/dataplaneapi.yml, taking the password from the environment', () => {
    const text = readFileSync(resolve(process.cwd(), 'deploy/haproxy/dataplaneapi.yml'), 'utf8');
    expect(() => configFromYaml(text)).toThrow(/CL_DATAPLANE_PASSWORD/);
    process.env.CL_DATAPLANE_PASSWORD = 'from-the-environment';
    try {
      expect(configFromYaml(text)).toEqual({
        host: '127.0.0.1',
        port: 5555,
        users: [{ name: 'proxy-sync', password: 'from-the-environment' }],
        userlist: 'controller',
        transactionDir: '/var/lib/dataplaneapi/transactions',
        maxOpenTransactions: 20,
        mapsDir: '/etc/haproxy/maps',
        sslCertsDir: '/etc/haproxy/ssl',
        generalStorageDir: '/etc/haproxy/general',
        configFile: '/etc/haproxy/haproxy.cfg',
        haproxyBin: '/usr/sbin/haproxy',
        masterSocket: '/run/haproxy/master.sock',
        statsSocket: undefined,
        reloadDelayMs: 5000,
        statusCmd: 'systemctl is-active --quiet haproxy',
      });
    } finally {
      delete process.env.CL_DATAPLANE_PASSWORD;
    }
  });

  it('applies dataplaneapi defaults, resolves relative paths and accepts a fractional reload_delay', () => {
    const config = configFromYaml(
      'dataplaneapi:\n  user: [{name: a, password: b, insecure: true}]\nhaproxy:\n  config_file: cfg/haproxy.cfg\n  master_runtime: m.sock\n  reload: {reload_delay: 0.1}\n',
      '/srv/stack',
    );
    expect(config).toEqual(
      expect.objectContaining({
        host: 'localhost',
        port: 5555,
        maxOpenTransactions: 20,
        transactionDir: '/tmp/haproxy',
        configFile: '/srv/stack/cfg/haproxy.cfg',
        masterSocket: '/srv/stack/m.sock',
        reloadDelayMs: 100,
      }),
    );
  });

  it('refuses hashed passwords and a missing master socket with a message naming the field', () => {
    expect(() =>
      configFromYaml(
        'dataplaneapi:\n  user: [{name: a, password: "$5$x$y"}]\nhaproxy:\n  master_runtime: m.sock\n',
      ),
    ).toThrow(/insecure: true/);
    expect(() => configFromYaml('dataplaneapi: {}\nhaproxy: {}\n')).toThrow(/master_runtime/);
  });
});
