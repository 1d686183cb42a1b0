/**
 * The level-triggered reconcile loop: desired = f(routes), actual = read(Data Plane API),
 * plan = diff(desired, actual), apply(plan). The same pass runs on start, on every trigger (coalesced:
 * triggers during a pass cause exactly one more pass) and on a timer; failures retry with backoff.
 *
 * Structural changes (the sections of the layout) go in one version-guarded transaction with a reload;
 * route changes are map entries changed at runtime and persisted to the map file, never a reload. What
 * was verified is cached with the worker's pid: a different pid (a reload or a restart of HAProxy)
 * or a different configuration version (a hand edit) makes the next pass re-read and repair everything.
 */
import { DataplaneError } from '#dataplane';
import {
  MAPS,
  RouteCheckCache,
  desiredState,
  diffKnownMap,
  diffMap,
  mapPlanSize,
  renderMapFile,
  type MapName,
  type MapPlan,
  type ProxyLayout,
  type RouteSpec,
  type StructuralChange,
} from '#haproxy';
import type { Logger } from '#platform';
import type { DataplaneGateway } from './gateway.js';
import type {
  ProxyNodeRecord,
  ProxyNodeReporter,
  ProxyNodeStatus,
  RouteAppliedReport,
  RouteDroppedReport,
  RouteFailedReport,
  RouteStatusReporter,
} from './reporting.js';
import { safeDetail } from './reporting.js';
import type { RouteSource, SourcedRoute } from './route-source.js';

/** How often the node's status in the log is read back (see record()). */
const LOGGED_STATUS_CHECK_MS = 5_000;

/** The change a rendered route came from, as its source told (the lib sees only its spec). */
const sources = new WeakMap<RouteSpec, SourcedRoute>();
function causeOf(spec: RouteSpec): Pick<SourcedRoute, 'cause'> {
  const cause = sources.get(spec)?.cause;
  return cause ? { cause } : {};
}

export interface ReconcilerOptions {
  node: string;
  layout: ProxyLayout;
  /**
   * The CA's CRL: stored as the general use file `name` (at `path` on the HAProxy host) and named in the
   * TLS-to-target servers' crl-file once stored. `current()` is the newest CRL the certificates service
   * published, if one arrived yet.
   */
  crl?: { name: string; path: string; current(): string | undefined };
  /** Full reconcile (re-read everything) this often. */
  intervalMs: number;
  backoffMinMs: number;
  backoffMaxMs: number;
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
  /** Delete transactions left open (by a killed proxy-sync) when starting. */
  abandonOpenTransactions?: boolean;
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

export type ReconcileOutcome = { ok: true; result: ReconcileResult } | { ok: false; error: unknown };

/** HAProxy reloaded while a pass applied runtime changes: run again at once (not a failure). */
class ReloadedDuringPass extends Error {}

/** Runtime verification did not find what was just written. */
class NotVerified extends Error {}

const MAP_NAMES: MapName[] = [MAPS.hosts, MAPS.sni];
const ATOMIC_REPLACE_BYTES = 8192;
/** A version and pid read before a source read that took longer than this are read again. */
const STALE_READ_MS = 100;

async function inParallel<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      for (let index = next++; index < items.length; index = next++) await work(items[index]);
    }),
  );
}

/** Only the fields of the contract (the source may add its own). Non-objects pass through to be refused. */
const specs = new WeakMap<object, RouteSpec>();
function specOf(route: SourcedRoute): RouteSpec {
  if (!route || typeof route !== 'object') return route as RouteSpec;
  const known = specs.get(route);
  if (
    known &&
    known.routeId === route.routeId &&
    known.revision === route.revision &&
    known.agentId === route.agentId &&
    known.kind === route.kind &&
    known.hostname === route.hostname &&
    known.target === route.target &&
    known.options === route.options
  ) {
    return known;
  }
  const { routeId, revision, agentId, kind, hostname, target, options } = route;
  const spec = { routeId, revision, agentId, kind, hostname, target, options };
  specs.set(route, spec);
  sources.set(spec, route);
  return spec;
}

/** Unreachable: the API or HAProxy cannot be talked to. Degraded: they answer, but the pass failed. */
export function statusOfError(error: unknown): ProxyNodeStatus {
  if (error instanceof DataplaneError) {
    if (error.status >= 500 && /socket|ENOENT|ECONNREFUSED|no answer|not answering/i.test(error.message))
      return 'unreachable';
    return error.status === 401 ? 'unreachable' : 'degraded';
  }
  if (error instanceof Error && /not answering/i.test(error.message)) return 'unreachable';
  if (
    error instanceof TypeError ||
    (error instanceof Error && /abort|timeout|fetch/i.test(error.name + error.message))
  )
    return 'unreachable';
  return 'degraded';
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export class Reconciler {
  private readonly verifyEachUpTo: number;
  private readonly bulkAbove: number;
  private readonly concurrency: number;
  private readonly appendAbove: number;

  /** What HAProxy was verified to hold, for the worker `pid`. */
  private cache: { pid: number; maps: Record<MapName, Map<string, string>> } | undefined;
  private verifiedVersion: number | undefined;
  /** routeId → the revision this process saw last, and when it first saw that revision. */
  private readonly firstSeen = new Map<string, { revision: number; at: number }>();
  private readonly reportedApplied = new Map<string, number>();
  private readonly reportedFailed = new Map<string, string>();
  /** Drops reported that the source may still list (until its projection shows them). */
  private readonly reportedDropped = new Set<string>();
  private readonly checks = new RouteCheckCache();
  private status: ProxyNodeStatus | undefined;
  private lastSuccessAt: string | null = null;
  private lastRecordAt = 0;
  private loggedStatusCheckedAt = 0;
  private lastRecordKey = '';

  private running = false;
  private dirty = false;
  private fullWanted = false;
  private requested = 0;
  /** The highest event sequence a trigger asked for: every pass reads a source at least this new. */
  private wantedSequence = 0;
  private waiters: { generation: number; resolve: (outcome: ReconcileOutcome) => void }[] = [];
  private retryTimer: NodeJS.Timeout | undefined;
  private intervalTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private stopped = false;
  private loopDone: Promise<void> = Promise.resolve();
  /** Passes run (for tests and benchmarks). */
  passes = 0;

  constructor(
    private readonly gateway: DataplaneGateway,
    private readonly source: RouteSource,
    private readonly routes: RouteStatusReporter,
    private readonly node: ProxyNodeReporter,
    private readonly options: ReconcilerOptions,
    private readonly logger: Logger,
  ) {
    this.verifyEachUpTo = options.verifyEachUpTo ?? 64;
    this.bulkAbove = options.bulkAbove ?? 200;
    this.concurrency = options.concurrency ?? 8;
    this.appendAbove = options.appendAbove ?? this.concurrency;
  }

  /**
   * Loads the node's last status, then reconciles at once and every intervalMs. `minSequence`: the event
   * log's end when starting, so the first pass reads a projection that has caught up with it.
   */
  async start(options: { minSequence?: number } = {}): Promise<void> {
    this.stopped = false;
    this.status = (await this.node.load().catch(() => undefined))?.status;
    if (this.options.abandonOpenTransactions ?? true) {
      const abandoned = await this.gateway.abandonOpenTransactions().catch(() => 0);
      if (abandoned > 0) this.logger.warn('deleted transactions left open', { count: abandoned });
    }
    this.intervalTimer = setInterval(() => void this.reconcileSoon({ full: true }), this.options.intervalMs);
    void this.reconcileSoon({ full: true, minSequence: options.minSequence });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.intervalTimer) clearInterval(this.intervalTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    await this.loopDone;
    for (const waiter of this.waiters.splice(0)) waiter.resolve({ ok: false, error: new Error('stopped') });
  }

  /**
   * Asks for a pass. Calls during a pass are coalesced into one more pass; the promise settles when a
   * pass that started after this call has ended (with its outcome). `full` re-reads everything;
   * `minSequence` (an event's sequence) makes the pass wait until the route source has that event.
   */
  reconcileSoon(options: { full?: boolean; minSequence?: number } = {}): Promise<ReconcileOutcome> {
    if (options.full) this.fullWanted = true;
    if (options.minSequence !== undefined && options.minSequence > this.wantedSequence)
      this.wantedSequence = options.minSequence;
    const generation = ++this.requested;
    const settled = new Promise<ReconcileOutcome>((resolve) => this.waiters.push({ generation, resolve }));
    this.kick();
    return settled;
  }

  private kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.dirty = true;
      return;
    }
    if (this.retryTimer) return; // backing off: the retry will pick this up
    this.running = true;
    this.loopDone = this.loop().finally(() => {
      this.running = false;
    });
  }

  private settle(generation: number, outcome: ReconcileOutcome): void {
    const remaining: typeof this.waiters = [];
    for (const waiter of this.waiters) {
      if (waiter.generation <= generation) waiter.resolve(outcome);
      else remaining.push(waiter);
    }
    this.waiters = remaining;
  }

  private async loop(): Promise<void> {
    let reloadRetries = 0;
    do {
      this.dirty = false;
      const generation = this.requested;
      const full = this.fullWanted;
      this.fullWanted = false;
      try {
        const result = await this.pass(full);
        this.failures = 0;
        reloadRetries = 0;
        this.settle(generation, { ok: true, result });
      } catch (error) {
        this.cache = undefined;
        this.verifiedVersion = undefined;
        if (error instanceof ReloadedDuringPass && reloadRetries++ < 3) {
          this.logger.info('HAProxy reloaded during a pass; repairing');
          this.dirty = true;
          continue;
        }
        this.failures++;
        this.settle(generation, { ok: false, error });
        await this.recordFailure(error);
        this.scheduleRetry();
        return;
      }
    } while (this.dirty && !this.stopped);
  }

  private scheduleRetry(): void {
    if (this.stopped) return;
    const exponential = this.options.backoffMinMs * 2 ** Math.min(this.failures - 1, 20);
    const delay = Math.min(this.options.backoffMaxMs, exponential) * (0.5 + Math.random() / 2);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.fullWanted = true;
      this.kick();
    }, delay);
  }

  // ------------------------------------------------------------------ one pass

  private async pass(full: boolean): Promise<ReconcileResult> {
    this.passes++;
    const timings: Record<string, number> = {};
    let mark = performance.now();
    const lap = (phase: string) => {
      const at = performance.now();
      timings[phase] = (timings[phase] ?? 0) + (at - mark);
      mark = at;
    };
    // The configuration version and the worker pid are read while the source is read (both are reads
    // before any write of this pass), and again if the source kept the pass waiting.
    const readVersionAndPid = () => Promise.all([this.gateway.version(), this.gateway.workerPid()]);
    let versionAndPid = readVersionAndPid();
    versionAndPid.catch(() => undefined);
    const sourceStarted = performance.now();
    const sourced = await this.source.listRoutes({
      full,
      minSequence: this.wantedSequence > 0 ? this.wantedSequence : undefined,
    });
    if (performance.now() - sourceStarted > STALE_READ_MS) {
      versionAndPid = readVersionAndPid();
      // Awaited below; until then a failure must not be an unhandled rejection (it would end the process).
      versionAndPid.catch(() => undefined);
    }
    lap('source');
    const seenAt = Date.now();
    let live = 0;
    for (const route of sourced) {
      if (!route || typeof route !== 'object') continue;
      live++;
      const known = this.firstSeen.get(route.routeId);
      if (known === undefined || known.revision !== route.revision) {
        this.firstSeen.set(route.routeId, { revision: route.revision, at: seenAt });
      }
      if (typeof route.appliedRevision === 'number' && !this.reportedApplied.has(route.routeId)) {
        this.reportedApplied.set(route.routeId, route.appliedRevision);
      }
    }
    // Every listed route has an entry now: more entries than routes means some left the source.
    if (this.firstSeen.size > live) {
      const listed = new Set<unknown>();
      for (const route of sourced) if (route && typeof route === 'object') listed.add(route.routeId);
      for (const routeId of this.firstSeen.keys()) if (!listed.has(routeId)) this.firstSeen.delete(routeId);
    }
    if (full && this.options.crl) await this.ensureCrl(this.options.crl);
    const desired = desiredState(sourced.map(specOf), this.options.layout, this.checks);
    lap('desired');

    // Structure: only when the configuration version moved (a commit, a hand edit) or on a full pass.
    const [currentVersion, pidBefore] = await versionAndPid;
    let version = currentVersion;
    let structural: StructuralChange[] = [];
    if (full || version !== this.verifiedVersion) {
      const outcome = await this.gateway.ensureStructure(desired.structure);
      structural = outcome.changes;
      version = outcome.version;
      if (outcome.committed) {
        this.cache = undefined;
        this.logger.warn('repaired the HAProxy configuration', {
          version,
          changes: outcome.changes.map((change) => `${change.action} ${change.section} ${change.name}`),
        });
      }
      this.verifiedVersion = version;
    }
    if (full && this.options.frontCertificate) {
      const certificate = this.options.frontCertificate;
      const done = await this.gateway.ensureCertificate(certificate.name, await certificate.read());
      if (done !== 'unchanged') {
        this.logger.info('front certificate uploaded', { name: certificate.name, done });
        if (done === 'installed') this.cache = undefined;
      }
    }

    lap('structure');
    // Maps: runtime changes, then the files, then proof that HAProxy holds them.
    // The pid read with the version is current unless this pass just reloaded HAProxy.
    const pid =
      this.cache === undefined || structural.length > 0 ? await this.gateway.workerPid() : pidBefore;
    lap('pid');
    const reread = full || !this.cache || this.cache.pid !== pid;
    const mapChanges = { hosts: 0, sni: 0 } as Record<MapName, number>;
    for (const name of MAP_NAMES) {
      const wanted = desired.maps[name];
      const plan = reread
        ? diffMap(wanted, await this.gateway.readMap(name))
        : diffKnownMap(wanted, (this.cache as NonNullable<typeof this.cache>).maps[name]);
      mapChanges[name] = mapPlanSize(plan);
      lap('diff');
      if (mapChanges[name] > 0) await this.applyMap(name, plan, wanted);
      lap('apply');
      if (mapChanges[name] > 0 || reread) await this.persist(name, wanted, mapChanges[name] > 0);
      lap('persist');
      if (mapChanges[name] > 0) await this.verify(name, plan, wanted);
      lap('verify');
    }
    if ((await this.gateway.workerPid()) !== pid) throw new ReloadedDuringPass();
    lap('pid');
    this.cache = {
      pid,
      maps: { hosts: new Map(desired.maps.hosts), sni: new Map(desired.maps.sni) },
    };

    // Reports: every rendered route HAProxy now routes, every refused route, once per revision.
    const doneAt = Date.now();
    const applied: RouteAppliedReport[] = desired.bindings
      .filter(({ route }) => this.reportedApplied.get(route.routeId) !== route.revision)
      .map(({ route }) => ({
        routeId: route.routeId,
        revision: route.revision,
        configVersion: version,
        propagationMs: doneAt - this.firstSeenAt(route.routeId, route.revision, doneAt),
        ...causeOf(route),
      }));
    const failed: RouteFailedReport[] = desired.rejected
      .filter(({ route }) => route && typeof route === 'object' && typeof route.routeId === 'string')
      .filter(({ route, reason }) => this.reportedFailed.get(route.routeId) !== `${route.revision}:${reason}`)
      .filter(({ route }) => Number.isInteger(route.revision) && route.revision >= 1)
      .map(({ route, reason }) => ({
        routeId: route.routeId,
        revision: route.revision,
        reason,
        ...causeOf(route),
      }));
    if (applied.length > 0) {
      await this.routes.applied(applied);
      for (const report of applied) this.reportedApplied.set(report.routeId, report.revision);
    }
    if (failed.length > 0) {
      await this.routes.failed(failed).catch((error: unknown) => {
        // A refused route whose id is not even a UUID cannot have an aggregate: log it and go on.
        this.logger.warn('could not report refused routes', { error: describe(error) });
      });
      for (const report of failed)
        this.reportedFailed.set(report.routeId, `${report.revision}:${report.reason}`);
    }
    const dropped = await this.reportDropped(sourced, version, desired.bindings.length);
    // Every rendered route is in reportedApplied now: more entries than rendered routes means stale ones.
    if (this.reportedApplied.size > desired.bindings.length) {
      const present = new Set(desired.bindings.map(({ route }) => route.routeId));
      for (const routeId of this.reportedApplied.keys())
        if (!present.has(routeId)) this.reportedApplied.delete(routeId);
    }

    const result: ReconcileResult = {
      full,
      structural,
      mapChanges,
      applied,
      failed,
      dropped,
      configVersion: version,
      pid,
      routes: desired.bindings.length,
      timings,
    };
    lap('report');
    await this.recordSuccess(result, desired.rejected.length);
    lap('record');
    this.logger.debug('reconcile pass', {
      full,
      routes: result.routes,
      changes: mapChanges.hosts + mapChanges.sni,
      timings,
    });
    return result;
  }

  private firstSeenAt(routeId: string, revision: number, otherwise: number): number {
    const known = this.firstSeen.get(routeId);
    return known !== undefined && known.revision === revision ? known.at : otherwise;
  }

  /**
   * Routes that left the source (removed) and that this node had applied: HAProxy no longer has them
   * (the pass just verified the maps). Known from this process's own reports and, across restarts, from
   * the source (removed routes whose projection row still lists this node).
   */
  private async reportDropped(
    sourced: readonly SourcedRoute[],
    version: number,
    rendered: number,
  ): Promise<RouteDroppedReport[]> {
    const listed = this.source.removedRoutes?.() ?? [];
    // Every rendered route is in reportedApplied: no more entries than that and nothing listed as
    // removed means nothing to report (without building a set of 10,000 live ids on every pass).
    if (listed.length === 0 && this.reportedApplied.size <= rendered) {
      this.reportedDropped.clear();
      return [];
    }
    const live = new Set<string>();
    for (const route of sourced) if (route && typeof route === 'object') live.add(route.routeId);
    const candidates = new Map<string, number>();
    for (const [routeId, revision] of this.reportedApplied)
      if (!live.has(routeId)) candidates.set(routeId, revision);
    for (const { routeId, revision } of listed) {
      if (!live.has(routeId) && !this.reportedDropped.has(routeId) && !candidates.has(routeId))
        candidates.set(routeId, revision);
    }
    const causes = new Map(listed.map((removed) => [removed.routeId, removed.cause]));
    const dropped = [...candidates].map(([routeId, revision]) => {
      const cause = causes.get(routeId);
      return { routeId, revision, configVersion: version, ...(cause ? { cause } : {}) };
    });
    if (dropped.length > 0) await this.routes.dropped(dropped);
    const stillListed = new Set(listed.map(({ routeId }) => routeId));
    for (const routeId of this.reportedDropped)
      if (!stillListed.has(routeId)) this.reportedDropped.delete(routeId);
    for (const { routeId } of dropped) {
      this.reportedApplied.delete(routeId);
      if (stillListed.has(routeId)) this.reportedDropped.add(routeId);
    }
    return dropped;
  }

  private async applyMap(name: MapName, plan: MapPlan, wanted: ReadonlyMap<string, string>): Promise<void> {
    const size = mapPlanSize(plan);
    const entries = [...wanted].map(([key, value]) => ({ key, value }));
    const payload = entries.reduce((bytes, entry) => bytes + entry.key.length + entry.value.length + 2, 0);
    if (size > this.bulkAbove && payload > ATOMIC_REPLACE_BYTES) {
      await this.gateway.replaceMap(name, entries);
      return;
    }
    if (size > this.bulkAbove && entries.length === 0) {
      await this.gateway.clearMap(name);
      return;
    }
    await inParallel(plan.del, this.concurrency, (key) => this.gateway.deleteEntry(name, key));
    // More adds than one round of parallel calls: appended in a few payloads instead of one call each.
    if (plan.add.length > this.appendAbove) {
      await Promise.all([
        this.gateway.appendEntries(name, plan.add),
        inParallel(plan.set, this.concurrency, (entry) => this.gateway.setEntry(name, entry)),
      ]);
      return;
    }
    await inParallel([...plan.add, ...plan.set], this.concurrency, (entry) =>
      plan.set.includes(entry) ? this.gateway.setEntry(name, entry) : this.gateway.addEntry(name, entry),
    );
  }

  /** The map file HAProxy loads at its next reload: written when it changed (or differs after a re-read). */
  private async persist(name: MapName, wanted: ReadonlyMap<string, string>, changed: boolean): Promise<void> {
    const text = renderMapFile(wanted);
    if (!changed && (await this.gateway.readMapFile(name)) === text) return;
    await this.gateway.storeMapFile(name, text);
  }

  /** Reads what was written back from the runtime: only then is a route applied. */
  private async verify(name: MapName, plan: MapPlan, wanted: ReadonlyMap<string, string>): Promise<void> {
    if (mapPlanSize(plan) <= this.verifyEachUpTo) {
      const problems: string[] = [];
      await inParallel([...plan.add, ...plan.set], this.concurrency, async (entry) => {
        if ((await this.gateway.readEntry(name, entry.key)) !== entry.value) problems.push(entry.key);
      });
      await inParallel(
        plan.del.filter((key) => !wanted.has(key)),
        this.concurrency,
        async (key) => {
          if ((await this.gateway.readEntry(name, key)) !== undefined) problems.push(key);
        },
      );
      if (problems.length > 0)
        throw new NotVerified(`${name}.map does not hold ${problems.length} change(s)`);
      return;
    }
    const left = diffMap(wanted, await this.gateway.readMap(name));
    if (mapPlanSize(left) > 0)
      throw new NotVerified(`${name}.map still differs in ${mapPlanSize(left)} entries`);
  }

  // ------------------------------------------------------------------ the CRL

  /** Stores the newest CRL; once stored, the layout names it (a structural change the pass makes). */
  private async ensureCrl(crl: NonNullable<ReconcilerOptions['crl']>): Promise<void> {
    const pem = crl.current();
    if (pem === undefined) return;
    const done = await this.gateway.ensureCrl(crl.name, pem);
    if (done !== 'unchanged') this.logger.info('CRL stored', { name: crl.name, done });
    if (this.options.layout.crlFile !== crl.path) {
      this.options.layout = { ...this.options.layout, crlFile: crl.path };
    }
    if (done === 'replaced') this.cache = undefined;
  }

  // ------------------------------------------------------------------ node status and liveness

  private async recordSuccess(result: ReconcileResult, failedRoutes: number): Promise<void> {
    this.lastSuccessAt = new Date().toISOString();
    await this.record({
      node: this.options.node,
      status: 'in-sync',
      lastSyncAt: this.lastSuccessAt,
      lastSuccessAt: this.lastSuccessAt,
      configVersion: result.configVersion,
      haproxyPid: result.pid,
      routes: result.routes,
      failedRoutes,
      detail: null,
    });
  }

  private async recordFailure(error: unknown): Promise<void> {
    const status = statusOfError(error);
    this.logger.warn('reconcile failed; retrying with backoff', {
      status,
      failures: this.failures,
      error: describe(error),
    });
    await this.record({
      node: this.options.node,
      status,
      lastSyncAt: new Date().toISOString(),
      lastSuccessAt: this.lastSuccessAt,
      configVersion: this.verifiedVersion ?? null,
      haproxyPid: this.cache?.pid ?? null,
      routes: this.cache ? this.cache.maps.hosts.size + this.cache.maps.sni.size : 0,
      failedRoutes: 0,
      detail: safeDetail(describe(error)),
    });
  }

  /** The KV record after every pass (at most once a second when nothing changed); an event on a transition. */
  private async record(record: ProxyNodeRecord): Promise<void> {
    // Routing records a node stale while it is away; what the log says is the status to move on from.
    if (this.node.loggedStatus && Date.now() - this.loggedStatusCheckedAt >= LOGGED_STATUS_CHECK_MS) {
      this.loggedStatusCheckedAt = Date.now();
      const logged = await this.node.loggedStatus().catch(() => undefined);
      if (logged !== undefined) this.status = logged;
    }
    const previous = this.status;
    if (record.status !== previous) {
      try {
        await this.node.statusChanged(record, previous);
        this.status = record.status;
        this.logger.info('proxy node status', { from: previous ?? null, to: record.status });
      } catch (error) {
        this.logger.warn('could not report the node status', { error: describe(error) });
      }
    }
    const key = `${record.status}|${record.configVersion}|${record.haproxyPid}|${record.routes}`;
    if (key === this.lastRecordKey && Date.now() - this.lastRecordAt < 1000) return;
    try {
      await this.node.record(record);
      this.lastRecordKey = key;
      this.lastRecordAt = Date.now();
    } catch (error) {
      this.logger.warn('could not write the liveness record', { error: describe(error) });
    }
  }
}
