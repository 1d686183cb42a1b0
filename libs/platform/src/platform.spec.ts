import { z } from 'zod';
import { ConfigError, env, loadConfig } from './config.js';
import { isTransient, retryWhileTransient } from './lifecycle.js';
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

describe('retryWhileTransient', () => {
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:4222'), { code: 'ECONNREFUSED' });

  it('tells transient failures from mistakes that waiting does not fix', () => {
    expect(isTransient(refused)).toBe(true);
    expect(isTransient(Object.assign(new Error('timeout'), { name: 'TimeoutError' }))).toBe(true);
    expect(
      isTransient(Object.assign(new Error('the database system is starting up'), { code: '57P03' })),
    ).toBe(true);
    expect(isTransient(new AggregateError([refused, refused]))).toBe(true);
    expect(isTransient(new Error('wrapped', { cause: refused }))).toBe(true);
    expect(isTransient('Error: Connection lost. Trying to reconnect...')).toBe(true);
    expect(isTransient(new Error('Authorization Violation'))).toBe(false);
    expect(isTransient(new Error('the database has pending migrations: run `npm run migrate` first'))).toBe(
      false,
    );
    expect(isTransient(new ConfigError([]))).toBe(false);
  });

  it('retries a transient failure with growing delays, saying what it waits for', async () => {
    const lines: string[] = [];
    const logger = createLogger('svc', { write: (line) => lines.push(line) });
    const delays: number[] = [];
    let calls = 0;
    const result = await retryWhileTransient(
      'the broker',
      async () => {
        if (++calls < 4) throw refused;
        return 'connected';
      },
      logger,
      { initialDelayMs: 100, maxDelayMs: 300, sleep: async (ms) => void delays.push(ms) },
    );
    expect(result).toBe('connected');
    expect(delays).toEqual([100, 200, 300]);
    expect(lines.map((line) => JSON.parse(line).msg)).toEqual([
      'waiting for the broker',
      'waiting for the broker',
      'waiting for the broker',
    ]);
  });

  it('throws anything else at once, and gives up after maxAttempts', async () => {
    const logger = createLogger('svc', { write: () => undefined });
    let calls = 0;
    await expect(
      retryWhileTransient(
        'x',
        async () => {
          calls++;
          throw new Error('Authorization Violation');
        },
        logger,
      ),
    ).rejects.toThrow('Authorization Violation');
    expect(calls).toBe(1);
    await expect(
      retryWhileTransient('x', () => Promise.reject(refused), logger, {
        maxAttempts: 2,
        sleep: async () => {},
      }),
    ).rejects.toBe(refused);
  });
});
