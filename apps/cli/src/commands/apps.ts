import { openAsBlob, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { AppView, DeploymentView } from '#contracts';
import { ApiClient, apiOptions, clean, withHint } from '../api-client.js';
import { UsageError, type CliCommand } from '../command.js';
import {
  appLines,
  appRow,
  deploymentLines,
  deploymentRow,
  print,
  requestDeployment,
  stringOption,
  type Values,
} from '../deployment-output.js';
import { logsOptions, printLogs } from '../log-output.js';

function list(values: Values, name: string): string[] {
  const raw = values[name] as unknown;
  if (raw === undefined) return [];
  return (Array.isArray(raw) ? raw : [raw]).map(String);
}

function positional(positionals: string[], index: number, what: string): string {
  const value = positionals[index];
  if (value === undefined || value === '') throw new UsageError(`missing ${what}`);
  return value;
}

function noMore(positionals: string[], count: number): void {
  if (positionals.length > count) throw new UsageError(`unexpected argument: ${positionals[count]}`);
}

/** `NAME=value` split at the first `=`. */
function pair(raw: string, option: string): [string, string] {
  const at = raw.indexOf('=');
  if (at <= 0) throw new UsageError(`--${option}: expected NAME=value, got ${raw}`);
  return [raw.slice(0, at), raw.slice(at + 1)];
}

/** The tarball of `--upload`, as a Blob read from disk when sent. */
async function tarballOf(file: string): Promise<Blob> {
  try {
    return await openAsBlob(file);
  } catch (error) {
    throw new UsageError(`--upload: cannot read ${file}: ${(error as Error).message}`);
  }
}

/** A file's content, less one final newline (what `echo … > file` adds). */
function fileValue(path: string, option: string): string {
  try {
    return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
  } catch (error) {
    throw new UsageError(`--${option}: cannot read ${path}: ${(error as Error).message}`);
  }
}

/** The next `count` lines of stdin (a prompt for each on a terminal). Never from argv. */
async function stdinLines(names: string[]): Promise<string[]> {
  if (names.length === 0) return [];
  const reader = createInterface({ input: process.stdin, terminal: false });
  const lines = reader[Symbol.asyncIterator]();
  const values: string[] = [];
  try {
    for (const name of names) {
      if (process.stdin.isTTY) process.stderr.write(`value of ${name}: `);
      const next = await lines.next();
      if (next.done) throw new UsageError(`stdin ended before the value of ${name} (one line per --secret)`);
      values.push(String(next.value).replace(/\r$/, ''));
    }
  } finally {
    reader.close();
  }
  return values;
}

/** All of stdin, less one final newline: a secret may span lines (a key, a certificate). */
async function stdinValue(name: string): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write(`value of ${name} (end with Ctrl-D): `);
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const value = Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
  if (!value) throw new UsageError(`no value of ${name} on stdin`);
  return value;
}

/** The option of `apps create` that sets a field the API names. */
function createHint(env: string[]) {
  return (field: string): string | undefined => {
    const entry = /^env\[(\d+)\]/.exec(field);
    if (entry) {
      const name = env[Number(entry[1])];
      return name === undefined ? '--env/--secret' : `${name} of --env/--secret`;
    }
    const options: Record<string, string> = {
      name: '<name>',
      agentId: '--agent',
      hostname: '--host',
      'source.url': '--git',
      'source.ref': '--ref',
      'healthCheck.path': '--health-path',
      releasesKept: '--keep',
    };
    return options[field];
  };
}

const withWait = { wait: { type: 'boolean' }, timeout: { type: 'string' } } as const;

export const appsCommands: CliCommand[] = [
  {
    path: ['apps', 'create'],
    summary:
      'create an app from a git source, or one deployed from uploads (secret values from stdin lines or --secret-file)',
    usage:
      '<name> --agent <id> (--git <url> [--ref <ref>] | --upload) [--host <h>] [--env K=V]... [--secret NAME]... [--secret-file NAME=path]... [--health-path /p] [--keep N] [--runtime process|container] [--json]',
    positionals: true,
    options: {
      ...apiOptions,
      agent: { type: 'string' },
      git: { type: 'string' },
      ref: { type: 'string' },
      upload: { type: 'boolean' },
      host: { type: 'string' },
      env: { type: 'string', multiple: true },
      secret: { type: 'string', multiple: true },
      'secret-file': { type: 'string', multiple: true },
      'health-path': { type: 'string' },
      keep: { type: 'string' },
      runtime: { type: 'string' },
    },
    async run({ values, positionals }) {
      const name = positional(positionals, 0, '<name>');
      noMore(positionals, 1);
      const agent = stringOption(values, 'agent');
      const git = stringOption(values, 'git');
      if (!agent) throw new UsageError('--agent <id> is required');
      const upload = values.upload === true;
      if (!git && !upload)
        throw new UsageError('--git <url> (or --upload, for an app deployed from tarballs) is required');
      if (upload && (git || values.ref !== undefined)) {
        throw new UsageError('--upload: an app deployed from tarballs has no --git or --ref');
      }
      const keep = stringOption(values, 'keep');
      if (keep !== undefined && !/^\d+$/.test(keep)) throw new UsageError('--keep: must be a whole number');
      const client = ApiClient.fromArgs(values);
      const env = list(values, 'env').map((raw) => pair(raw, 'env'));
      const files = new Map(list(values, 'secret-file').map((raw) => pair(raw, 'secret-file')));
      const secretNames = [...new Set([...list(values, 'secret'), ...files.keys()])];
      const fromStdin = secretNames.filter((secret) => !files.has(secret));
      const stdin = await stdinLines(fromStdin);
      const secrets = secretNames.map((secret): [string, string] => {
        const file = files.get(secret);
        return [
          secret,
          file !== undefined ? fileValue(file, 'secret-file') : stdin[fromStdin.indexOf(secret)]!,
        ];
      });
      const body = {
        name,
        agentId: agent,
        source: upload
          ? { type: 'upload' }
          : { type: 'git', url: git, ...(values.ref !== undefined ? { ref: values.ref } : {}) },
        ...(values.host !== undefined ? { hostname: values.host } : {}),
        env: [
          ...env.map(([envName, value]) => ({ name: envName, value })),
          ...secrets.map(([envName, value]) => ({ name: envName, value, secret: true })),
        ],
        ...(values['health-path'] !== undefined ? { healthCheck: { path: values['health-path'] } } : {}),
        ...(keep !== undefined ? { releasesKept: Number(keep) } : {}),
        // The service checks it (process or container) and names the field when it is neither.
        ...(values.runtime !== undefined ? { runtime: values.runtime } : {}),
      };
      const names = body.env.map((entry) => entry.name);
      try {
        const answer = await client.request<AppView>('POST', 'apps', { body });
        print(values, answer.body, () => appLines(answer.body));
      } catch (error) {
        throw withHint(error, createHint(names));
      }
    },
  },
  {
    path: ['apps', 'list'],
    summary: 'list the apps (of one agent with --agent)',
    usage: '[--agent <id>] [--json]',
    options: { ...apiOptions, agent: { type: 'string' } },
    async run({ values }) {
      const client = ApiClient.fromArgs(values);
      const answer = await client.request<{ apps: AppView[]; total: number }>('GET', 'apps', {
        query: { agentId: stringOption(values, 'agent') },
      });
      print(values, answer.body, () => [
        `${'NAME'.padEnd(24)} ${'AGENT'.padEnd(16)} ${'HOST'.padEnd(40)} CURRENT`,
        ...answer.body.apps.map(appRow),
        `${answer.body.total} app(s)`,
      ]);
    },
  },
  {
    path: ['apps', 'show'],
    summary: 'show an app: configuration, releases, secrets by name and version',
    usage: '<name> [--json]',
    positionals: true,
    options: { ...apiOptions },
    async run({ values, positionals }) {
      const name = positional(positionals, 0, '<name>');
      noMore(positionals, 1);
      const client = ApiClient.fromArgs(values);
      const answer = await client.request<AppView>('GET', `apps/${encodeURIComponent(name)}`);
      print(values, answer.body, () => appLines(answer.body));
    },
  },
  {
    path: ['apps', 'secrets', 'set'],
    summary: 'set a secret of an app (the value from stdin; it is never shown again)',
    usage: '<app> <NAME> [--json]',
    positionals: true,
    options: { ...apiOptions },
    async run({ values, positionals }) {
      const app = positional(positionals, 0, '<app>');
      const name = positional(positionals, 1, '<NAME>');
      noMore(positionals, 2);
      const client = ApiClient.fromArgs(values);
      const value = await stdinValue(name);
      const answer = await client.request<{ name: string; version: number; setAt: string }>(
        'PUT',
        `apps/${encodeURIComponent(app)}/secrets/${encodeURIComponent(name)}`,
        { body: { value } },
      );
      print(values, answer.body, () => [
        `secret ${clean(answer.body.name)} of ${clean(app)}: version ${answer.body.version} (${clean(answer.body.setAt)})`,
      ]);
    },
  },
  {
    path: ['apps', 'secrets', 'rm'],
    summary: 'remove a secret of an app (from the next deployment)',
    usage: '<app> <NAME> [--json]',
    positionals: true,
    options: { ...apiOptions },
    async run({ values, positionals }) {
      const app = positional(positionals, 0, '<app>');
      const name = positional(positionals, 1, '<NAME>');
      noMore(positionals, 2);
      const client = ApiClient.fromArgs(values);
      const answer = await client.request(
        'DELETE',
        `apps/${encodeURIComponent(app)}/secrets/${encodeURIComponent(name)}`,
      );
      print(values, answer.body, () => [`secret ${clean(name)} of ${clean(app)} removed`]);
    },
  },
  {
    path: ['apps', 'logs'],
    summary: "print the output of the app's running release (its last succeeded deployment); -f follows it",
    usage: '<app> [-f|--follow] [--tail N] [--json]',
    positionals: true,
    options: { ...apiOptions, ...logsOptions },
    async run({ values, positionals }) {
      const app = positional(positionals, 0, '<app>');
      noMore(positionals, 1);
      const client = ApiClient.fromArgs(values);
      await printLogs(client, `apps/${encodeURIComponent(app)}/logs`, values, (field) =>
        field === 'name' ? '<app>' : undefined,
      );
    },
  },
  {
    path: ['apps', 'rollback'],
    summary: 'roll back to a kept release (the previous one by default); --wait follows it to the end',
    usage: '<app> [release number or id] [--wait [--timeout <s>]] [--json]',
    positionals: true,
    options: { ...apiOptions, ...withWait },
    async run({ values, positionals }) {
      const app = positional(positionals, 0, '<app>');
      noMore(positionals, 2);
      const raw = positionals[1];
      const release = raw === undefined ? undefined : /^\d+$/.test(raw) ? Number(raw) : raw;
      const client = ApiClient.fromArgs(values);
      await requestDeployment(
        client,
        `apps/${encodeURIComponent(app)}/rollback`,
        release === undefined ? {} : { release },
        values,
      );
    },
  },
];

export const deploymentsCommands: CliCommand[] = [
  {
    path: ['deployments', 'create'],
    summary:
      'deploy an app (its ref, or --ref; an upload app: --upload <file.tar.gz>); --wait follows it to the end (exit 0 only if it succeeded)',
    usage: '<app> [--ref <ref> | --upload <file.tar.gz>] [--wait [--timeout <s>]] [--json]',
    positionals: true,
    options: { ...apiOptions, ...withWait, ref: { type: 'string' }, upload: { type: 'string' } },
    async run({ values, positionals }) {
      const app = positional(positionals, 0, '<app>');
      noMore(positionals, 1);
      const file = stringOption(values, 'upload');
      if (file !== undefined && values.ref !== undefined) {
        throw new UsageError('--ref and --upload: give one (a git app takes a ref, an upload app a tarball)');
      }
      // A Blob backed by the file: sent with its size and read from disk as it goes.
      const upload = file === undefined ? undefined : await tarballOf(file);
      const client = ApiClient.fromArgs(values);
      try {
        await requestDeployment(
          client,
          `apps/${encodeURIComponent(app)}/deployments`,
          values.ref !== undefined ? { ref: values.ref } : {},
          values,
          upload,
        );
      } catch (error) {
        throw withHint(error, (field) =>
          field === 'ref'
            ? '--ref'
            : ['(body)', 'Content-Type', 'Content-Length'].includes(field)
              ? '--upload'
              : undefined,
        );
      }
    },
  },
  {
    path: ['deployments', 'list'],
    summary: "list an app's deployments, newest first",
    usage: '<app> [--status <s>] [--limit N] [--offset N] [--json]',
    positionals: true,
    options: {
      ...apiOptions,
      status: { type: 'string' },
      limit: { type: 'string' },
      offset: { type: 'string' },
    },
    async run({ values, positionals }) {
      const app = positional(positionals, 0, '<app>');
      noMore(positionals, 1);
      const client = ApiClient.fromArgs(values);
      const answer = await client.request<{ deployments: DeploymentView[]; total: number }>(
        'GET',
        `apps/${encodeURIComponent(app)}/deployments`,
        {
          query: {
            status: stringOption(values, 'status'),
            limit: stringOption(values, 'limit'),
            offset: stringOption(values, 'offset'),
          },
        },
      );
      print(values, answer.body, () => [
        ...answer.body.deployments.map(deploymentRow),
        `${answer.body.total} deployment(s)`,
      ]);
    },
  },
  {
    path: ['deployments', 'show'],
    summary: 'show a deployment with its phase timeline',
    usage: '<id> [--json]',
    positionals: true,
    options: { ...apiOptions },
    async run({ values, positionals }) {
      const id = positional(positionals, 0, '<id>');
      noMore(positionals, 1);
      const client = ApiClient.fromArgs(values);
      const answer = await client.request<DeploymentView>('GET', `deployments/${encodeURIComponent(id)}`);
      print(values, answer.body, () => deploymentLines(answer.body));
    },
  },
  {
    path: ['deployments', 'logs'],
    summary: "print a deployment's output; -f follows it until the deployment's end",
    usage: '<id> [-f|--follow] [--tail N] [--json]',
    positionals: true,
    options: { ...apiOptions, ...logsOptions },
    async run({ values, positionals }) {
      const id = positional(positionals, 0, '<id>');
      noMore(positionals, 1);
      const client = ApiClient.fromArgs(values);
      await printLogs(client, `deployments/${encodeURIComponent(id)}/logs`, values, (field) =>
        field === 'id' ? '<id>' : undefined,
      );
    },
  },
  {
    path: ['deployments', 'cancel'],
    summary: 'cancel a deployment (at once before its claim; asks the agent while it runs)',
    usage: '<id> [--reason <text>] [--json]',
    positionals: true,
    options: { ...apiOptions, reason: { type: 'string' } },
    async run({ values, positionals }) {
      const id = positional(positionals, 0, '<id>');
      noMore(positionals, 1);
      const client = ApiClient.fromArgs(values);
      const reason = stringOption(values, 'reason');
      const answer = await client.request<DeploymentView>(
        'POST',
        `deployments/${encodeURIComponent(id)}/cancel`,
        { body: reason === undefined ? {} : { reason } },
      );
      print(values, answer.body, () => deploymentLines(answer.body));
    },
  },
];
