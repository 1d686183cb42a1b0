import type { AppConfig } from '#contracts';
import { gitConfigFile, gitFetchSteps } from './git.js';

type GitSource = Extract<AppConfig['source'], { type: 'git' }>;
const source = (url: string, credentials: GitSource['credentials'] = null): GitSource => ({
  type: 'git',
  url,
  ref: null,
  credentials,
});
const base = {
  workspace: '/apps/web/releases/3.tmp',
  home: '/apps/web/home',
  globalConfigFile: '/state/git/web.config',
};

test('the URL and the ref come after --, and only the source’s own protocol is allowed', () => {
  const steps = gitFetchSteps({ ...base, source: source('https://example.com/r.git'), ref: 'v1.2' });
  const fetch = steps[1]!.argv;
  expect(fetch.slice(fetch.indexOf('--'))).toEqual(['--', 'https://example.com/r.git', 'v1.2']);
  expect(fetch).toEqual(
    expect.arrayContaining(['-c', 'core.hooksPath=/dev/null', '-c', 'protocol.https.allow=always']),
  );
  expect(steps[1]!.env).toMatchObject({
    GIT_ALLOW_PROTOCOL: 'https',
    GIT_TERMINAL_PROMPT: '0',
    GIT_CONFIG_NOSYSTEM: '1',
  });
  expect(steps.map((step) => step.argv.slice(5, 8))).toEqual([
    ['-C', base.workspace, 'init'],
    ['-C', base.workspace, 'fetch'],
    ['-C', base.workspace, 'checkout'],
    ['-C', base.workspace, 'rev-parse'],
  ]);
  expect(gitFetchSteps({ ...base, source: source('file:///srv/r'), ref: null })[1]!.argv.at(-1)).toBe('HEAD');
});

test('a token goes in the environment, never in argv or the URL', () => {
  const token = 'ghp_0123456789abcdef';
  const steps = gitFetchSteps({
    ...base,
    source: source('https://example.com/r.git', {
      secret: 'GIT_TOKEN',
      kind: 'https-token',
      knownHosts: null,
    }),
    ref: 'main',
    credential: token,
  });
  for (const step of steps) expect(step.argv.join(' ')).not.toContain(token);
  const header = steps[1]!.env.GIT_CONFIG_VALUE_0!;
  expect(Buffer.from(header.replace('Authorization: Basic ', ''), 'base64').toString()).toContain(token);
  expect(() =>
    gitFetchSteps({
      ...base,
      source: source('https://example.com/r.git', {
        secret: 'GIT_TOKEN',
        kind: 'https-token',
        knownHosts: null,
      }),
      ref: 'main',
    }),
  ).toThrow(/GIT_TOKEN/);
});

test('an ssh key is a file named in GIT_SSH_COMMAND, with the known hosts checked when given', () => {
  const steps = gitFetchSteps({
    ...base,
    source: source('ssh://git@example.com/r.git', { secret: 'DEPLOY_KEY', kind: 'ssh-key', knownHosts: 'x' }),
    ref: 'main',
    credential: '-----BEGIN OPENSSH PRIVATE KEY-----',
    sshKeyFile: '/apps/web/tmp/key',
    sshKnownHostsFile: '/apps/web/tmp/known_hosts',
  });
  expect(steps[1]!.env.GIT_SSH_COMMAND).toBe(
    'ssh -i /apps/web/tmp/key -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=/apps/web/tmp/known_hosts',
  );
  expect(JSON.stringify(steps)).not.toContain('BEGIN OPENSSH');
});

test('other transports are refused; file sources get their safe.directory from a global file', () => {
  expect(() => gitFetchSteps({ ...base, source: source('ext::sh -c id'), ref: null })).toThrow(/not ext:/);
  expect(gitConfigFile(source('file:///srv/repos/web'), '/srv/repos/web')).toBe(
    '[safe]\n\tdirectory = /srv/repos/web/.git\n\tdirectory = /srv/repos/web\n',
  );
  expect(gitConfigFile(source('https://example.com/r.git'), '/x')).toBe('');
});
