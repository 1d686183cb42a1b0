import type { DataSource } from 'typeorm';
import { deleteSecretValues, listSecretVersions, nonTerminalDeployments } from '#persistence';
import type { Logger } from '#platform';
import type { DeploymentDecisions } from './decisions.js';
import { collectableVersions, versionKey } from './domain/secret-gc.js';

/**
 * Forgets secret versions nothing needs any more (`domain/secret-gc.ts`): a rotated value leaves the
 * store once no deployment in flight and no serving release names it. Decided on states folded from the
 * log, so a lagging projection can only delay a deletion, never cause a wrong one.
 */
export class SecretCollector {
  constructor(
    private readonly decisions: DeploymentDecisions,
    private readonly dataSource: DataSource,
    private readonly logger: Logger,
  ) {}

  async collect(now = Date.now()): Promise<number> {
    const stored = await listSecretVersions(this.dataSource);
    if (stored.length === 0) return 0;
    const latest = new Map<string, Record<string, number>>();
    const named = new Map<string, Record<string, number>>();
    const referenced = new Set<string>();
    const reference = (appName: string, secrets: readonly { name: string; version: number }[]) => {
      for (const secret of secrets) referenced.add(versionKey(appName, secret.name, secret.version));
    };
    for (const appName of new Set(stored.map((row) => row.appName))) {
      const app = await this.decisions.app(appName);
      if (app.status !== 'live') continue;
      latest.set(
        appName,
        Object.fromEntries(Object.entries(app.secrets).map(([name, s]) => [name, s.version])),
      );
      named.set(appName, app.secretHighWater);
      if (app.current) {
        const serving = await this.decisions.deployment(app.current.releaseId);
        if (serving.status !== 'absent') reference(appName, serving.config.secrets);
      }
    }
    for (const running of await nonTerminalDeployments(this.dataSource)) {
      const deployment = await this.decisions.deployment(running.deploymentId);
      if (deployment.status !== 'absent') reference(deployment.appName, deployment.config.secrets);
    }
    const gone = collectableVersions(stored, { latest, named, referenced }, now);
    const byApp = new Map<string, { name: string; version: number }[]>();
    for (const row of gone) byApp.set(row.appName, [...(byApp.get(row.appName) ?? []), row]);
    let deleted = 0;
    for (const [appName, versions] of byApp)
      deleted += await deleteSecretValues(this.dataSource, appName, versions);
    if (deleted > 0) this.logger.info('forgot secret versions nothing uses', { deleted });
    return deleted;
  }
}
