import { z } from 'zod';
import { ConfigError, env, loadConfig } from './config.js';
import { createLogger } from './logger.js';

describe('createLogger', () => {
  it('writes one JSON object per line with bound and call fields', () => {
    const lines: string[] = [];
    const logger = createLogger('svc', { write: (line) => lines.push(line), level: 'debug' }).child({
      node: 'n1',
    });
    logger.info('hello', { count: 2 });
    expect(JSON.parse(lines[0]!)).toEqual(
      expect.objectContaining({ level: 'info', service: 'svc', msg: 'hello', node: 'n1', count: 2 }),
    );
  });

  it('never prints a private key, wherever it hides', () => {
    const lines: string[] = [];
    const logger = createLogger('svc', { write: (line) => lines.push(line) });
    const key = '-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----';
    logger.info(key);
    logger.error('failed', { error: new Error(`bad ${key}`), nested: { pem: key } });
    expect(lines.join('\n')).not.toMatch(/PRIVATE KEY-----/);
  });

  it('drops lines below the level', () => {
    const lines: string[] = [];
    createLogger('svc', { write: (line) => lines.push(line), level: 'warn' }).info('quiet');
    expect(lines).toEqual([]);
  });
});

describe('loadConfig', () => {
  const schema = z.object({ CL_PORT: env.int(3000), CL_URL: env.url(), CL_FLAG: env.bool(false) });
  it('applies defaults and coerces', () => {
    expect(loadConfig(schema, { CL_URL: 'http://x' })).toEqual({
      CL_PORT: 3000,
      CL_URL: 'http://x',
      CL_FLAG: false,
    });
  });
  it('names every bad variable', () => {
    const error = (() => {
      try {
        loadConfig(schema, { CL_PORT: 'abc', CL_FLAG: 'maybe' });
      } catch (caught) {
        return caught as ConfigError;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect(error!.variables.map((entry) => entry.variable).sort()).toEqual(['CL_FLAG', 'CL_PORT', 'CL_URL']);
  });
});
