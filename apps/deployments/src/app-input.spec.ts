import { createAppInput, DomainError } from '#contracts';
import { configOf, patchedConfig } from './app-input.js';

const domain = 'cloudlunacy.localhost';
const create = createAppInput({ domain, fileRoots: [], plainGitHosts: [] });

describe('a database app', () => {
  const input = create.parse({ name: 'cache', source: { type: 'database', engine: 'redis' } });

  it('gets its SNI name in its agent namespace and no secrets', () => {
    const { config, secretValues } = configOf(input, 'agent-1', domain);
    expect(config.hostname).toBe('cache.agent-1.redis.cloudlunacy.localhost');
    expect(config.source).toEqual({ type: 'database', engine: 'redis' });
    expect(secretValues).toEqual({});
  });

  it('cannot become an app, nor take build settings or env', () => {
    const { config } = configOf(input, 'agent-1', domain);
    const refusal = (patch: Parameters<typeof patchedConfig>[1]) => {
      try {
        patchedConfig(config, patch);
      } catch (error) {
        return error as DomainError;
      }
      throw new Error('not refused');
    };
    expect(refusal({ source: { type: 'upload' } })).toMatchObject({ code: 'invalid', field: 'source.type' });
    expect(refusal({ env: [] })).toMatchObject({ field: 'env' });
    expect(refusal({ build: {} })).toMatchObject({ field: 'build' });
    expect(patchedConfig(config, { releasesKept: 5 }).releasesKept).toBe(5);
  });

  it('leaves web apps their apps-zone name', () => {
    const web = create.parse({ name: 'web', source: { type: 'upload' } });
    expect(configOf(web, 'agent-1', domain).config.hostname).toBe('web.apps.cloudlunacy.localhost');
  });
});

describe("a database's host name given without its agent", () => {
  it('is checked against the agent it runs on once that is known', () => {
    const input = create.parse({
      name: 'cache',
      hostname: 'cache.agent-2.redis.cloudlunacy.localhost',
      source: { type: 'database', engine: 'redis' },
    });
    expect(() => configOf(input, 'agent-1', domain)).toThrow(/own namespace/);
    expect(configOf(input, 'agent-2', domain).config.hostname).toBe(
      'cache.agent-2.redis.cloudlunacy.localhost',
    );
  });
});
