import type { AppView, BackupView, DatabaseCredentialsView as Credentials } from '#contracts';
import { ApiClient, apiOptions, clean } from '../api-client.js';
import { UsageError, type CliCommand } from '../command.js';
import { appLines, print } from '../deployment-output.js';
import { drawProgress, endProgress } from '../progress.js';

function database(positionals: string[], count: number): string {
  const name = positionals[0];
  if (name === undefined || name === '') throw new UsageError('missing <database>');
  if (positionals.length > count) throw new UsageError(`unexpected argument: ${positionals[count]}`);
  return encodeURIComponent(name);
}

const megabytes = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

function backupLine(backup: BackupView): string {
  const size = backup.status === 'running' ? `${megabytes(backup.bytes)} so far` : megabytes(backup.bytes);
  const detail = backup.error ? `  ${clean(backup.error)}` : backup.sha256 ? `  sha256 ${backup.sha256}` : '';
  return `${clean(backup.backupId)}  ${backup.status.padEnd(7)}  ${size.padStart(16)}${detail}`;
}

function credentialLines(credentials: Credentials): string[] {
  return [
    clean(credentials.connectionString),
    `  host      ${clean(credentials.hostname)}:${credentials.port} (TLS, by SNI; the CA is GET /api/v1/ca.pem)`,
    `  user      ${clean(credentials.user)}`,
    `  password  ${clean(credentials.password)}`,
    `  rotated   ${clean(credentials.rotatedAt)}`,
  ];
}

/**
 * Databases' own operations, run by their agents (docs/deployments.md, "Databases"): the credentials,
 * fetched live and never stored on the front; a new password; backups, which stay on the VPS; restores.
 */
export const databaseCommands: CliCommand[] = [
  {
    path: ['databases', 'create'],
    summary: 'create a managed database on an agent (deploy it with cli deployments create <name>)',
    usage: '<name> --agent <id> --engine redis [--host <name>.<agent>.<zone>.<domain>] [--json]',
    positionals: true,
    options: {
      ...apiOptions,
      agent: { type: 'string' },
      engine: { type: 'string' },
      host: { type: 'string' },
    },
    async run({ values, positionals }) {
      const name = positionals[0];
      if (name === undefined || name === '') throw new UsageError('missing <name>');
      if (positionals.length > 1) throw new UsageError(`unexpected argument: ${positionals[1]}`);
      if (typeof values.agent !== 'string') throw new UsageError('--agent <id> is required');
      if (typeof values.engine !== 'string') throw new UsageError('--engine is required (redis)');
      const { body } = await ApiClient.fromArgs(values).request<AppView>('POST', 'apps', {
        body: {
          name,
          agentId: values.agent,
          source: { type: 'database', engine: values.engine },
          ...(typeof values.host === 'string' ? { hostname: values.host } : {}),
        },
      });
      print(values, body, () => appLines(body));
    },
  },
  {
    path: ['databases', 'credentials'],
    summary:
      "a database's connection string and password, fetched live from its agent; --rotate makes a new one",
    usage: '<database> [--rotate] [--json]',
    positionals: true,
    options: { ...apiOptions, rotate: { type: 'boolean' } },
    async run({ values, positionals }) {
      const name = database(positionals, 1);
      const client = ApiClient.fromArgs(values);
      const { body } = values.rotate
        ? await client.request<Credentials>('POST', `apps/${name}/credentials/rotate`)
        : await client.request<Credentials>('GET', `apps/${name}/credentials`);
      print(values, body, () => credentialLines(body));
    },
  },
  {
    path: ['databases', 'backup'],
    summary: 'back a database up on its VPS (the file stays there), showing its progress until it is done',
    usage: '<database> [--no-wait] [--json]',
    positionals: true,
    options: { ...apiOptions, 'no-wait': { type: 'boolean' } },
    async run({ values, positionals }) {
      const name = database(positionals, 1);
      const client = ApiClient.fromArgs(values);
      let { body: backup } = await client.request<BackupView>('POST', `apps/${name}/backups`);
      if (values['no-wait'] !== true) {
        while (backup.status === 'running') {
          drawProgress(`backing up ${clean(positionals[0])}: ${megabytes(backup.bytes)} written`);
          await new Promise((resolve) => setTimeout(resolve, 500));
          const { body } = await client.request<{ backups: BackupView[] }>('GET', `apps/${name}/backups`);
          backup = body.backups.find((candidate) => candidate.backupId === backup.backupId) ?? backup;
        }
        endProgress();
      }
      print(values, backup, () => [backupLine(backup)]);
      if (backup.status === 'failed') process.exitCode = 1;
    },
  },
  {
    path: ['databases', 'backups'],
    summary: "a database's backups on its VPS, newest first",
    usage: '<database> [--json]',
    positionals: true,
    options: apiOptions,
    async run({ values, positionals }) {
      const name = database(positionals, 1);
      const { body } = await ApiClient.fromArgs(values).request<{ backups: BackupView[] }>(
        'GET',
        `apps/${name}/backups`,
      );
      print(values, body, () =>
        body.backups.length === 0 ? ['no backups yet'] : body.backups.map((backup) => backupLine(backup)),
      );
    },
  },
  {
    path: ['databases', 'restore'],
    summary: 'give a database the data of one of its backups (what it held is set aside on the VPS)',
    usage: '<database> <backup id> [--json]',
    positionals: true,
    options: apiOptions,
    async run({ values, positionals }) {
      const name = database(positionals, 2);
      const id = positionals[1];
      if (id === undefined)
        throw new UsageError('missing <backup id> (cli databases backups <database> lists them)');
      const { body } = await ApiClient.fromArgs(values).request<BackupView>(
        'POST',
        `apps/${name}/backups/${encodeURIComponent(id)}/restore`,
        { timeoutMs: 130_000 },
      );
      print(values, body, () => [`restored ${backupLine(body)}`]);
    },
  },
];
