/**
 * Why a front's HAProxy does not hold exactly the projection's routes; undefined when it does. The same
 * comparison as test/proxy-sync/helpers.ts `divergence` (runtime maps, map files, the layout's sections,
 * no open transaction), with what that one does not know yet: once the certificates service published a
 * CRL, proxy-sync stores it in the general storage directory and names it in be_dyn_https (crl-file), so
 * the expected layout has it and the stored file must be that CRL.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { desiredState, desiredStructure, diffStructure, renderMapFile } from '#haproxy';
import { layoutOf } from '../../apps/proxy-sync/src/config.js';
import { DataplaneGateway } from '../../apps/proxy-sync/src/gateway.js';
import type { SourcedRoute } from '../../apps/proxy-sync/src/route-source.js';
import type { HaproxyStack } from '../harness/haproxy.js';
import { proxyConfig, runtimeMap } from '../proxy-sync/helpers.js';

export async function frontDivergence(
  front: HaproxyStack,
  routes: readonly SourcedRoute[],
  /** The CRL the certificates service published last (KV bucket `crl`, key `current`), if any. */
  crl: string | undefined,
): Promise<string | undefined> {
  const config = proxyConfig(front);
  const crlFile = join(config.CL_PROXY_GENERAL_DIR, config.CL_PROXY_CRL_NAME);
  const layout = { ...layoutOf(config), ...(crl !== undefined ? { crlFile } : {}) };
  const desired = desiredState([...routes], layout);
  const lines = (map: Map<string, string>) => [...map].map(([key, value]) => `${key} ${value}`).sort();
  for (const name of ['hosts', 'sni'] as const) {
    const runtime = await runtimeMap(front, name);
    const want = lines(desired.maps[name]);
    if (JSON.stringify(runtime) !== JSON.stringify(want)) {
      const missing = want.filter((entry) => !runtime.includes(entry));
      const extra = runtime.filter((entry) => !want.includes(entry));
      return `runtime ${name}.map: missing ${JSON.stringify(missing)}, extra ${JSON.stringify(extra)}`;
    }
    // The file as a set of lines: HAProxy looks entries up by key, so their order means nothing (and the
    // projection's rows come in no particular order); a key twice would.
    const file = await readFile(name === 'hosts' ? front.paths.hostsMap : front.paths.sniMap, 'utf8');
    const have = file.split('\n').filter((entry) => entry !== '' && !entry.startsWith('#'));
    const rendered = renderMapFile(desired.maps[name])
      .split('\n')
      .filter((entry) => entry !== '' && !entry.startsWith('#'));
    if (JSON.stringify([...have].sort()) !== JSON.stringify([...rendered].sort())) {
      const missing = rendered.filter((entry) => !have.includes(entry));
      const extra = have.filter((entry) => !rendered.includes(entry));
      const keys = have.map((entry) => entry.split(' ')[0]);
      const twice = keys.filter((key, index) => keys.indexOf(key) !== index);
      return `${name}.map file: missing ${JSON.stringify(missing)}, extra ${JSON.stringify(extra)}, twice ${JSON.stringify(twice)}`;
    }
  }
  if (crl !== undefined) {
    const stored = await readFile(crlFile, 'utf8').catch(() => undefined);
    if (stored !== crl) return `the stored CRL (${crlFile}) is not the published one`;
  }
  const client = front.client();
  const changes = diffStructure(desiredStructure(layout), await new DataplaneGateway(client).readStructure());
  if (changes.length > 0)
    return `sections differ: ${changes.map((change) => `${change.action} ${change.name}`).join(', ')}`;
  const open = await client.listTransactions('in_progress');
  if (open.length > 0) return `${open.length} transaction(s) open`;
  return undefined;
}
