import type { AppView, DeploymentView, PhaseView } from '#contracts';
import { ApiClient, clean, safeJson } from './api-client.js';
import { UsageError } from './command.js';

export type Values = Record<string, string | boolean | undefined>;

export function stringOption(values: Values, name: string): string | undefined {
  const raw = values[name];
  return typeof raw === 'string' ? raw : undefined;
}

/** `--json`: the answer as JSON; otherwise the human lines. */
export function print(values: Values, result: unknown, human: () => string[]): void {
  if (values.json === true) console.log(safeJson(result));
  else console.log(human().join('\n'));
}

const TERMINAL = new Set(['succeeded', 'failed', 'cancelled', 'abandoned']);

export function appLines(app: AppView): string[] {
  const source = app.config.source as { type: string; url?: string; ref?: string | null; engine?: string };
  const env = Object.entries(app.config.env ?? {});
  return [
    `app ${clean(app.appName)}`,
    `  agent       ${clean(app.agentId)}`,
    `  host        ${clean(app.hostname)}`,
    `  source      ${clean(source.type)} ${clean(source.url ?? source.engine ?? '')}${source.ref ? ` @ ${clean(source.ref)}` : ''}`,
    `  runtime     ${clean(app.config.runtime ?? 'process')}`,
    `  health      ${clean(app.config.healthCheck.path)}`,
    `  keep        ${app.config.releasesKept} releases`,
    `  current     ${app.current ? `release ${app.current.number} (${clean(app.current.commit ?? 'no commit')}) on port ${app.current.port}` : '-'}`,
    `  kept        ${app.keptReleases.map((release) => `#${release.number}`).join(' ') || '-'}`,
    `  env         ${env.map(([name]) => clean(name)).join(' ') || '-'}`,
    `  secrets     ${app.secrets.map((secret) => `${clean(secret.name)} v${secret.version}`).join(', ') || '-'}`,
    `  active      ${clean(app.activeDeploymentId ?? '-')}${app.queuedDeploymentId ? `  queued ${clean(app.queuedDeploymentId)}` : ''}`,
    `  deployments ${app.deploymentsCount}`,
  ];
}

export function appRow(app: AppView): string {
  return [
    clean(app.appName).padEnd(24),
    clean(app.agentId).padEnd(16),
    clean(app.hostname).padEnd(40),
    app.current ? `#${app.current.number}` : '-',
  ].join(' ');
}

function phaseLine(phase: PhaseView): string {
  const mark = { done: '✓', current: '…', pending: ' ', skipped: '-', failed: '✗' }[phase.state] ?? '?';
  const parts = [`  ${mark} ${clean(phase.phase).padEnd(10)}`, clean(phase.state).padEnd(8)];
  if (phase.at) parts.push(clean(phase.at));
  if (phase.durationMs !== null) parts.push(`+${phase.durationMs} ms`);
  if (phase.deadlineAt) parts.push(`deadline ${clean(phase.deadlineAt)}`);
  return parts.join(' ').trimEnd();
}

export function failureLines(deployment: DeploymentView): string[] {
  const failure = deployment.failure;
  if (!failure) return [];
  return [
    `  ${clean(deployment.status)} at ${clean(failure.phase)}: ${clean(failure.reason)}` +
      (failure.exitCode !== null ? ` (exit code ${failure.exitCode})` : '') +
      (failure.signal ? ` (signal ${clean(failure.signal)})` : '') +
      (failure.reverted ? ' (traffic put back on the previous release)' : ''),
    ...(failure.lastLines.length > 0
      ? ['  last lines:', ...failure.lastLines.map((line) => `    ${clean(line)}`)]
      : []),
  ];
}

export function deploymentLines(deployment: DeploymentView): string[] {
  return [
    `deployment ${clean(deployment.deploymentId)}`,
    `  app         ${clean(deployment.appName)} #${deployment.number ?? '-'} (${clean(deployment.kind)}) on ${clean(deployment.agentId)}`,
    `  status      ${clean(deployment.status)}${deployment.deadlineAt ? ` (deadline ${clean(deployment.deadlineAt)})` : ''}`,
    `  requested   ${clean(deployment.requestedAt)} by ${clean(deployment.requestedBy.kind)}:${clean(deployment.requestedBy.id)}`,
    ...(deployment.finishedAt ? [`  finished    ${clean(deployment.finishedAt)}`] : []),
    ...(deployment.commit ? [`  commit      ${clean(deployment.commit)}`] : []),
    ...(deployment.release ? [`  release     #${deployment.release.number}`] : []),
    ...(deployment.cancelRequested
      ? [
          `  cancel      requested ${clean(deployment.cancelRequested.at)}: ${clean(deployment.cancelRequested.reason)}`,
        ]
      : []),
    '  phases',
    ...deployment.phases.map(phaseLine),
    ...failureLines(deployment),
  ];
}

export function deploymentRow(deployment: DeploymentView): string {
  return [
    clean(deployment.deploymentId),
    `#${deployment.number ?? '-'}`.padEnd(5),
    clean(deployment.kind).padEnd(8),
    clean(deployment.status).padEnd(10),
    clean(deployment.requestedAt),
  ].join(' ');
}

/** `--timeout <seconds>` of `--wait` (default: 30 minutes, the longest claim deadline by default). */
export function waitTimeoutMs(values: Values): number {
  const raw = stringOption(values, 'timeout');
  if (raw === undefined) return 30 * 60_000;
  const seconds = Number(raw);
  if (!Number.isFinite(seconds) || seconds <= 0)
    throw new UsageError('--timeout: must be a number of seconds above 0');
  return Math.round(seconds * 1000);
}

/** How long one `?wait=succeeded` request waits: short, so the phases print as they pass. */
const ROUND_MS = 2_000;

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Sends the request (`POST …/deployments` or `…/rollback`) and, with `--wait`, sends it again with the same
 * Idempotency-Key and `?wait=succeeded` until the deployment ends or `--timeout` passes, printing each
 * phase as it passes. Exit code 0 for succeeded, 1 otherwise (where it stopped or stands is printed).
 */
export async function requestDeployment(
  client: ApiClient,
  path: string,
  body: Record<string, unknown>,
  values: Values,
  /** An uploaded tarball: sent once; with --wait, the deployment is then followed by its id. */
  upload?: Blob,
): Promise<void> {
  const json = values.json === true;
  const raw = upload ? { contentType: 'application/gzip', data: upload } : undefined;
  if (values.wait !== true) {
    const answer = await client.request<DeploymentView>('POST', path, raw ? { raw } : { body });
    print(values, answer.body, () => deploymentLines(answer.body));
    return;
  }
  const deadline = Date.now() + waitTimeoutMs(values);
  // In --json mode stdout holds the JSON alone: the phases go to stderr.
  const say = (line: string) => (json ? console.error(line) : console.log(line));
  const printed = new Set<string>();
  let first = true;
  let deployment: DeploymentView | undefined;
  for (;;) {
    const round = Math.max(0, Math.min(ROUND_MS, deadline - Date.now()));
    // An upload is not sent again each round: after the first, its deployment is read back.
    const answer =
      raw && deployment
        ? await pause(round).then(() =>
            client.request<DeploymentView & { deployment?: DeploymentView }>(
              'GET',
              `deployments/${encodeURIComponent(deployment!.deploymentId)}`,
            ),
          )
        : await client.request<DeploymentView & { deployment?: DeploymentView }>('POST', path, {
            ...(raw ? { raw } : { body }),
            query: { wait: 'succeeded', timeout: round },
            accept: [502],
            timeoutMs: round + 30_000,
          });
    deployment = answer.status === 502 && answer.body.deployment ? answer.body.deployment : answer.body;
    if (first) say(`deployment ${clean(deployment.deploymentId)} of ${clean(deployment.appName)}`);
    for (const phase of deployment.phases) {
      if (phase.state !== 'done' && phase.state !== 'failed' && phase.state !== 'skipped') continue;
      const key = `${phase.phase}:${phase.state}`;
      if (printed.has(key)) continue;
      printed.add(key);
      say(phaseLine(phase));
    }
    first = false;
    if (TERMINAL.has(deployment.status) || Date.now() >= deadline) break;
  }
  if (deployment.status === 'succeeded') {
    if (json) console.log(safeJson(deployment));
    else say(`succeeded: release #${deployment.release?.number ?? '-'} of ${clean(deployment.appName)}`);
    return;
  }
  process.exitCode = 1;
  if (json) {
    console.log(safeJson(deployment));
    return;
  }
  if (TERMINAL.has(deployment.status)) {
    say(`deployment ${clean(deployment.status)}`);
    for (const line of failureLines(deployment)) say(line);
    return;
  }
  const current = deployment.phases.find((phase) => phase.state === 'current');
  say(
    `still ${clean(deployment.status)}${current ? `, working towards ${clean(current.phase)}` : ''}` +
      (deployment.deadlineAt ? ` (deadline ${clean(deployment.deadlineAt)})` : '') +
      `: stopped waiting after --timeout; the deployment goes on (cli deployments show ${clean(deployment.deploymentId)})`,
  );
}
