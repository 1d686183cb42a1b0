import { agentConfigSchema, backoffDelay } from './config.js';
import { defaultHandlers, HandlerRegistry } from './handlers.js';

test('backoff grows exponentially up to the maximum, with jitter in the upper half', () => {
  const low = () => 0;
  const high = () => 0.999_999;
  expect([0, 1, 2, 3].map((attempt) => backoffDelay(attempt, 100, 10_000, low))).toEqual([50, 100, 200, 400]);
  expect(backoffDelay(3, 100, 10_000, high)).toBe(800);
  expect(backoffDelay(30, 100, 10_000, high)).toBe(10_000);
  expect(backoffDelay(30, 100, 10_000, low)).toBe(5_000);
});

test('the config file is validated, naming the field', () => {
  const base = {
    apiUrl: 'https://front.example.com',
    publicAddress: '203.0.113.7',
    stateDir: '/var/lib/agent',
  };
  expect(agentConfigSchema.parse(base)).toMatchObject({ heartbeatIntervalMs: 10_000, labels: {} });
  const bad = agentConfigSchema.safeParse({ ...base, agentId: 'Not Valid' });
  expect(bad.success).toBe(false);
  expect(bad.error?.issues[0]?.path).toEqual(['agentId']);
  expect(agentConfigSchema.safeParse({ ...base, apiUrl: 'ftp://x' }).success).toBe(false);
  expect(agentConfigSchema.safeParse({ ...base, unknown: 1 }).success).toBe(false);
});

test('one handler per topic; ping answers on pong', async () => {
  const registry = defaultHandlers();
  expect(() => registry.register('ping', () => undefined)).toThrow(/registered already/);
  expect(() => new HandlerRegistry().register('bad topic', () => undefined)).toThrow(/bad topic/);
  const published: [string, unknown][] = [];
  await registry.get('ping')!(
    {
      topic: 'ping',
      subject: 'agents.a.in.ping',
      sequence: 7,
      deliveryCount: 1,
      data: new Uint8Array(),
      json: { n: 1 },
    },
    {
      agentId: 'a',
      api: { url: 'http://127.0.0.1:1', accessToken: () => '' },
      publish: (topic, body) => published.push([topic, body]),
      request: () => Promise.reject(new Error('not used')),
    },
  );
  expect(published).toEqual([['pong', { received: { n: 1 }, sequence: 7 }]]);
});
