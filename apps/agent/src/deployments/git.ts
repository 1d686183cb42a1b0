import type { AppConfig } from '#contracts';

/** One command the fetch runs, as the app's user, with no shell in between. */
export interface GitStep {
  argv: string[];
  env: Record<string, string>;
}

export interface GitFetchInput {
  source: Extract<AppConfig['source'], { type: 'git' }>;
  /** A branch, tag or commit; null: the remote's HEAD. */
  ref: string | null;
  /** The empty directory the source lands in. */
  workspace: string;
  /** The app's home (git and ssh read nothing else of the user's). */
  home: string;
  /**
   * A root-owned, world-readable git config file the agent writes (`gitConfigFile` below): for `file://`
   * sources owned by another user, git's ownership check reads `safe.directory` only from a global file,
   * not from `-c` (it clears those before running upload-pack locally).
   */
  globalConfigFile: string;
  /** The value of the secret the credentials name, when they do. */
  credential?: string;
  /** Where an ssh key is written for the fetch (0600, in the app's tmp, deleted afterwards). */
  sshKeyFile?: string;
  sshKnownHostsFile?: string;
}

/** Protocols git may use at all: each fetch allows exactly its own. */
const PROTOCOL_OF: Record<string, string> = {
  'https:': 'https',
  'ssh:': 'ssh',
  'git:': 'git',
  'file:': 'file',
};

/**
 * The steps of a shallow fetch of one ref into an empty workspace. The URL and the ref come after `--`,
 * so neither can be an option; credentials go in the environment, never in argv (visible in `ps`) or the
 * URL; hooks are off, no system config is read, and git never prompts.
 */
export function gitFetchSteps(input: GitFetchInput): GitStep[] {
  const url = new URL(input.source.url);
  const protocol = PROTOCOL_OF[url.protocol];
  if (!protocol) throw new Error(`git sources are https, ssh, git or file URLs, not ${url.protocol}`);
  const env: Record<string, string> = {
    HOME: input.home,
    GIT_TERMINAL_PROMPT: '0',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: input.globalConfigFile,
    GIT_ALLOW_PROTOCOL: protocol,
  };
  const credentials = input.source.credentials;
  if (credentials && input.credential === undefined) {
    throw new Error(`the source's credentials name ${credentials.secret}, which the agent was not given`);
  }
  if (credentials?.kind === 'https-token') {
    const basic = Buffer.from(`x-access-token:${input.credential}`).toString('base64');
    Object.assign(env, {
      GIT_CONFIG_COUNT: '1',
      GIT_CONFIG_KEY_0: 'http.extraHeader',
      GIT_CONFIG_VALUE_0: `Authorization: Basic ${basic}`,
    });
  } else if (credentials?.kind === 'ssh-key') {
    if (!input.sshKeyFile) throw new Error('an ssh key source needs a key file');
    const knownHosts = input.sshKnownHostsFile
      ? `-o StrictHostKeyChecking=yes -o UserKnownHostsFile=${input.sshKnownHostsFile}`
      : '-o StrictHostKeyChecking=accept-new';
    env.GIT_SSH_COMMAND = `ssh -i ${input.sshKeyFile} -o IdentitiesOnly=yes -o BatchMode=yes ${knownHosts}`;
  }
  const git = (...args: string[]): GitStep => ({
    argv: ['git', '-c', 'core.hooksPath=/dev/null', '-c', `protocol.${protocol}.allow=always`, ...args],
    env,
  });
  const ref = input.ref ?? 'HEAD';
  return [
    git('-C', input.workspace, 'init', '-q'),
    git('-C', input.workspace, 'fetch', '-q', '--depth', '1', '--no-tags', '--', input.source.url, ref),
    git('-C', input.workspace, 'checkout', '-q', '--detach', 'FETCH_HEAD'),
    git('-C', input.workspace, 'rev-parse', 'HEAD'),
  ];
}

/** The global config a fetch of a `file://` repository of another user needs (the repository's `.git`). */
export function gitConfigFile(
  source: Extract<AppConfig['source'], { type: 'git' }>,
  realRepositoryPath?: string,
): string {
  if (!source.url.startsWith('file:') || realRepositoryPath === undefined) return '';
  // git compares the repository's .git directory (or a bare repository's own path); both are allowed.
  return `[safe]\n\tdirectory = ${realRepositoryPath}/.git\n\tdirectory = ${realRepositoryPath}\n`;
}
