/**
 * What one reconcile pass does: observe (the routes, and HAProxy through the Data Plane API), plan (the
 * pure `plan(desired, observed)` of libs/haproxy), execute the plan, prove it, report.
 *
 * The structure goes first and the maps are observed only after it: the sections decide which maps HAProxy
 * has, and committing them (one version-guarded transaction) reloads HAProxy, which loads the maps from
 * their files. Route changes are map entries changed at runtime and persisted to the map file, never a
 * reload. What was verified is cached with the worker's pid: a different pid (a reload or a restart of
 * HAProxy) or a different configuration version (a hand edit) makes the next pass re-read and repair
 * everything.
 */
import {
  MAPS,
  RouteCheckCache,
  desiredState,
  mapPlanSize,
  plan,
  type DesiredState,
  type MapName,
  type ObservedMap,
  type ProxyLayout,
  type StructuralChange,
} from '#haproxy';
import type { Logger } from '#platform';
import type { DataplaneGateway, StructuralOutcome } from './gateway.js';
import { MapWriter } from './map-writes.js';
import type { NodeStatus, VerifiedState } from './node-status.js';
import type { RouteAppliedReport, RouteDroppedReport, RouteFailedReport } from './reporting.js';
import type { RouteReports } from './route-reports.js';
import type { RouteSource } from './route-source.js';
import { specOf } from './route-specs.js';

export interface PassOptions {
  layout: ProxyLayout;
  /**
   * The CA's CRL: stored as the general use file `name` (at `path` on the HAProxy host) and named in the
   * TLS-to-target servers' crl-file once stored. `current()` is the newest CRL the certificates service
   * published, if one arrived yet.
   */
  crl?: { name: string; path: string; current(): string | undefined };
  /** The front certificate to keep installed (read on every full pass). */
  frontCertificate?: { name: string; read(): Promise<string> };
  /** Read each changed entry back up to this many changes; re-read the whole map above. */
  verifyEachUpTo?: number;
  /** Replace a whole runtime map at once above this many changes (when its payload is above 8 KiB). */
  bulkAbove?: number;
  /** Parallel runtime calls while applying entry by entry. */
  concurrency?: number;
  /** Append new entries in payloads (not one call each) above this many (default: concurrency). */
  appendAbove?: number;
}

export interface ReconcileResult {
  full: boolean;
  structural: StructuralChange[];
  mapChanges: Record<MapName, number>;
  applied: RouteAppliedReport[];
  failed: RouteFailedReport[];
  dropped: RouteDroppedReport[];
  configVersion: number;
  pid: number;
  routes: number;
  /** Milliseconds spent in each phase of the pass. */
  timings: Record<string, number>;
}

/** HAProxy reloaded while a pass applied runtime changes: run again at once (not a failure). */
export class ReloadedDuringPassError extends Error {
  constructor() {
    super('HAProxy reloaded during the pass');
    this.name = 'ReloadedDuringPassError';
  }
}

const MAP_NAMES: MapName[] = [MAPS.hosts, MAPS.sni];
/** A version and pid read before a source read that took longer than this are read again. */
const STALE_READ_MS = 100;

/** Adds the time since the last lap to a phase. */
function stopwatch() {
  const timings: Record<string, number> = {};
  let mark = performance.now();
  const lap = (phase: string) => {
    const at = performance.now();
    timings[phase] = (timings[phase] ?? 0) + (at - mark);
    mark = at;
  };
  return { timings, lap };
}

export class ReconcilePass {
  /** What HAProxy was verified to hold, for the worker `pid`. */
  private cache: { pid: number; maps: Record<MapName, Map<string, string>> } | undefined;
  private verifiedVersion: number | undefined;
  private readonly checks = new RouteCheckCache();
  private readonly maps: MapWriter;
  private layout: ProxyLayout;

  constructor(
    private readonly gateway: DataplaneGateway,
    private readonly source: RouteSource,
    private readonly reports: RouteReports,
    private readonly status: NodeStatus,
    private readonly options: PassOptions,
    private readonly logger: Logger,
  ) {
    const concurrency = options.concurrency ?? 8;
    this.maps = new MapWriter(gateway, {
      verifyEachUpTo: options.verifyEachUpTo ?? 64,
      bulkAbove: options.bulkAbove ?? 200,
      concurrency,
      appendAbove: options.appendAbove ?? concurrency,
    });
    this.layout = options.layout;
  }

  /** After a failure nothing is known verified: the next pass re-reads and repairs everything. */
  forget(): void {
    this.cache = undefined;
    this.verifiedVersion = undefined;
  }

  verified(): VerifiedState {
    return {
      configVersion: this.verifiedVersion ?? null,
      pid: this.cache?.pid ?? null,
      routes: this.cache ? this.cache.maps.hosts.size + this.cache.maps.sni.size : 0,
    };
  }

  /** `full` re-reads everything; `minSequence` waits until the route source has that event. */
  async run(full: boolean, minSequence: number | undefined): Promise<ReconcileResult> {
    const { timings, lap } = stopwatch();
    // The configuration version and the worker pid are read while the source is read (both are reads
    // before any write of this pass), and again if the source kept the pass waiting.
    const readVersionAndPid = () => Promise.all([this.gateway.version(), this.gateway.workerPid()]);
    let versionAndPid = readVersionAndPid();
    versionAndPid.catch(() => undefined);
    const sourceStarted = performance.now();
    const sourced = await this.source.listRoutes({ full, minSequence });
    if (performance.now() - sourceStarted > STALE_READ_MS) {
      versionAndPid = readVersionAndPid();
      // Awaited below; until then a failure must not be an unhandled rejection (it would end the process).
      versionAndPid.catch(() => undefined);
    }
    lap('source');
    this.reports.sourced(sourced);
    if (full && this.options.crl) await this.ensureCrl(this.options.crl);
    const desired = desiredState(sourced.map(specOf), this.layout, this.checks);
    lap('desired');

    const [currentVersion, pidBefore] = await versionAndPid;
    const { version, changes: structural } = await this.reconcileStructure(desired, full, currentVersion);
    if (full && this.options.frontCertificate)
      await this.ensureFrontCertificate(this.options.frontCertificate);
    lap('structure');

    // The pid read with the version is current unless this pass just reloaded HAProxy.
    const pid =
      this.cache === undefined || structural.length > 0 ? await this.gateway.workerPid() : pidBefore;
    lap('pid');
    // Maps: observed (read back, or as verified last), planned, changed at runtime, persisted, proven.
    const reread = full || !this.cache || this.cache.pid !== pid;
    const planned = plan(desired, { maps: await this.observeMaps(reread) });
    lap('diff');
    const mapChanges = { hosts: 0, sni: 0 } as Record<MapName, number>;
    for (const name of MAP_NAMES) {
      const wanted = desired.maps[name];
      const change = planned.maps[name];
      mapChanges[name] = mapPlanSize(change);
      if (mapChanges[name] > 0) await this.maps.apply(name, change, wanted);
      lap('apply');
      if (mapChanges[name] > 0 || reread) await this.maps.persist(name, wanted, mapChanges[name] > 0);
      lap('persist');
      if (mapChanges[name] > 0) await this.maps.verify(name, change, wanted);
      lap('verify');
    }
    if ((await this.gateway.workerPid()) !== pid) throw new ReloadedDuringPassError();
    lap('pid');
    this.cache = {
      pid,
      maps: { hosts: new Map(desired.maps.hosts), sni: new Map(desired.maps.sni) },
    };

    const reported = await this.reports.report(desired, sourced, version);
    const result: ReconcileResult = {
      full,
      structural,
      mapChanges,
      ...reported,
      configVersion: version,
      pid,
      routes: desired.bindings.length,
      timings,
    };
    lap('report');
    await this.status.succeeded(result, desired.rejected.length);
    lap('record');
    this.logger.debug('reconcile pass', {
      full,
      routes: result.routes,
      changes: mapChanges.hosts + mapChanges.sni,
      timings,
    });
    return result;
  }

  /**
   * The sections, observed only when the configuration version moved (a commit, a hand edit) or on a full
   * pass. A correct HAProxy costs no transaction and no version; otherwise one transaction commits them.
   */
  private async reconcileStructure(
    desired: DesiredState,
    full: boolean,
    version: number,
  ): Promise<Pick<StructuralOutcome, 'version' | 'changes'>> {
    if (!full && version === this.verifiedVersion) return { version, changes: [] };
    const observedVersion = await this.gateway.version();
    const planned = plan(desired, { structure: await this.gateway.readStructure() });
    const outcome: StructuralOutcome =
      planned.structural.length > 0
        ? await this.gateway.commitStructure(desired.structure)
        : { changes: [], version: observedVersion, committed: false };
    if (outcome.committed) {
      this.cache = undefined;
      this.logger.warn('repaired the HAProxy configuration', {
        version: outcome.version,
        changes: outcome.changes.map((change) => `${change.action} ${change.section} ${change.name}`),
      });
    }
    this.verifiedVersion = outcome.version;
    return outcome;
  }

  private async observeMaps(reread: boolean): Promise<Record<MapName, ObservedMap>> {
    const cache = this.cache;
    if (!reread && cache) return { hosts: { verified: cache.maps.hosts }, sni: { verified: cache.maps.sni } };
    const observed = {} as Record<MapName, ObservedMap>;
    for (const name of MAP_NAMES) observed[name] = { entries: await this.gateway.readMap(name) };
    return observed;
  }

  private async ensureFrontCertificate(certificate: NonNullable<PassOptions['frontCertificate']>) {
    const done = await this.gateway.ensureCertificate(certificate.name, await certificate.read());
    if (done !== 'unchanged') {
      this.logger.info('front certificate uploaded', { name: certificate.name, done });
      // The first upload reloads HAProxy: the runtime maps are its files again.
      if (done === 'installed') this.cache = undefined;
    }
  }

  /** Stores the newest CRL; once stored, the layout names it (a structural change the pass makes). */
  private async ensureCrl(crl: NonNullable<PassOptions['crl']>): Promise<void> {
    const pem = crl.current();
    if (pem === undefined) return;
    const done = await this.gateway.ensureCrl(crl.name, pem);
    if (done !== 'unchanged') this.logger.info('CRL stored', { name: crl.name, done });
    if (this.layout.crlFile !== crl.path) this.layout = { ...this.layout, crlFile: crl.path };
    // A replaced CRL reloads HAProxy.
    if (done === 'replaced') this.cache = undefined;
  }
}
