/**
 * The difference between the desired state and what the Data Plane API reports, split into structural
 * changes (configuration sections: one version-guarded transaction, a reload) and runtime changes (map
 * entries: runtime API plus the persisted map file, no reload).
 */
import type { DesiredState } from './desired.js';
import type { BackendSection, FrontendSection, MapName, Structure } from './layout.js';

/** A section to write with `full_section=true` (POST when missing, PUT when different). */
export interface StructuralChange {
  action: 'create' | 'replace';
  section: 'frontend' | 'backend';
  name: string;
  body: FrontendSection | BackendSection;
  /** Which top-level fields differ (for logs). */
  differences: string[];
}

export interface MapEntry {
  key: string;
  value: string;
}

/** Runtime changes of one map. Apply `del` first, then `add` and `set`. */
export interface MapPlan {
  add: MapEntry[];
  set: MapEntry[];
  /** Keys to remove (every entry of that key). */
  del: string[];
}

/** A runtime map as observed: read from HAProxy (duplicate keys possible), or as verified last (none). */
export type ObservedMap = { entries: readonly MapEntry[] } | { verified: ReadonlyMap<string, string> };

/**
 * What was observed of HAProxy. A part left out was not observed, and nothing is planned for it: the
 * sections while they are as verified at the current configuration version, the maps until the sections
 * are as desired (the sections decide which maps HAProxy has, and committing them reloads HAProxy, which
 * loads the maps from their files). `structure` lists every section; unknown ones are left alone.
 */
export interface ActualState {
  structure?: { frontends: unknown[]; backends: unknown[] };
  maps?: Record<MapName, ObservedMap>;
}

/** What to change. Empty `structural` means no configuration write and no reload. */
export interface ReconcilePlan {
  structural: StructuralChange[];
  /** Absent when the maps were not observed. */
  maps?: Record<MapName, MapPlan>;
}

/**
 * Drops what carries no information, so that an object read back equals the one written: null,
 * undefined, false, '' and empty lists and maps (the API omits or defaults them), and `index`/`metadata`.
 */
export function normalize(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(normalize);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      if (key === 'index' || key === 'metadata') continue;
      const child = normalize((value as Record<string, unknown>)[key]);
      if (child === undefined || child === null || child === false || child === '') continue;
      if (Array.isArray(child) && child.length === 0) continue;
      if (typeof child === 'object' && !Array.isArray(child) && Object.keys(child as object).length === 0)
        continue;
      out[key] = child;
    }
    return out;
  }
  return value;
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(normalize({ value: a })) === JSON.stringify(normalize({ value: b }));
}

function differences(desired: object, actual: Record<string, unknown>): string[] {
  const keys = new Set([...Object.keys(desired), ...Object.keys(actual)]);
  return [...keys]
    .filter((key) => key !== 'index' && key !== 'metadata')
    .filter((key) => !same((desired as Record<string, unknown>)[key], actual[key]))
    .sort();
}

function nameOf(section: unknown): string | undefined {
  return section && typeof section === 'object' && typeof (section as { name?: unknown }).name === 'string'
    ? (section as { name: string }).name
    : undefined;
}

/** Sections to create or replace so that every section of `desired` exists exactly as desired. */
export function diffStructure(
  desired: Structure,
  actual: { frontends: unknown[]; backends: unknown[] },
): StructuralChange[] {
  const changes: StructuralChange[] = [];
  const kinds = [
    ['backend', desired.backends, actual.backends],
    ['frontend', desired.frontends, actual.frontends],
  ] as const;
  // Backends first: frontends name them.
  for (const [section, wanted, present] of kinds) {
    const byName = new Map(present.map((object) => [nameOf(object), object as Record<string, unknown>]));
    for (const body of wanted) {
      const current = byName.get(body.name);
      if (!current) {
        changes.push({ action: 'create', section, name: body.name, body, differences: ['missing'] });
        continue;
      }
      const differing = differences(body, current);
      if (differing.length > 0)
        changes.push({ action: 'replace', section, name: body.name, body, differences: differing });
    }
  }
  return changes;
}

/** Runtime operations that make a map hold exactly `desired`. Duplicate keys are removed and re-added. */
export function diffMap(desired: ReadonlyMap<string, string>, actual: readonly MapEntry[]): MapPlan {
  const seen = new Map<string, string[]>();
  for (const entry of actual) {
    const values = seen.get(entry.key) ?? [];
    values.push(entry.value);
    seen.set(entry.key, values);
  }
  const plan: MapPlan = { add: [], set: [], del: [] };
  for (const [key, values] of seen) {
    const wanted = desired.get(key);
    if (wanted === undefined) plan.del.push(key);
    else if (values.length > 1) {
      plan.del.push(key);
      plan.add.push({ key, value: wanted });
    } else if (values[0] !== wanted) plan.set.push({ key, value: wanted });
  }
  for (const [key, value] of desired) if (!seen.has(key)) plan.add.push({ key, value });
  const byKey = (a: MapEntry, b: MapEntry) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
  plan.add.sort(byKey);
  plan.set.sort(byKey);
  plan.del.sort();
  return plan;
}

/** diffMap for an actual map known to have no duplicate keys (what proxy-sync verified last). */
export function diffKnownMap(
  desired: ReadonlyMap<string, string>,
  actual: ReadonlyMap<string, string>,
): MapPlan {
  const plan: MapPlan = { add: [], set: [], del: [] };
  for (const [key, value] of desired) {
    const current = actual.get(key);
    if (current === undefined) plan.add.push({ key, value });
    else if (current !== value) plan.set.push({ key, value });
  }
  for (const key of actual.keys()) if (!desired.has(key)) plan.del.push(key);
  return plan;
}

export function mapPlanSize(plan: MapPlan): number {
  return plan.add.length + plan.set.length + plan.del.length;
}

/** The runtime operations that make an observed map hold exactly `desired`. */
export function planMap(desired: ReadonlyMap<string, string>, observed: ObservedMap): MapPlan {
  return 'verified' in observed
    ? diffKnownMap(desired, observed.verified)
    : diffMap(desired, observed.entries);
}

/**
 * The whole plan from the desired state and what was observed: pure, so a pass and a preview of its
 * changes are the same computation.
 */
export function plan(
  desired: DesiredState,
  actual: ActualState & Required<Pick<ActualState, 'maps'>>,
): Required<ReconcilePlan>;
export function plan(desired: DesiredState, actual: ActualState): ReconcilePlan;
export function plan(desired: DesiredState, actual: ActualState): ReconcilePlan {
  const structural = actual.structure ? diffStructure(desired.structure, actual.structure) : [];
  if (!actual.maps) return { structural };
  return {
    structural,
    maps: {
      hosts: planMap(desired.maps.hosts, actual.maps.hosts),
      sni: planMap(desired.maps.sni, actual.maps.sni),
    },
  };
}

export function isEmptyPlan(reconcile: ReconcilePlan): boolean {
  return (
    reconcile.structural.length === 0 &&
    (reconcile.maps === undefined ||
      (mapPlanSize(reconcile.maps.hosts) === 0 && mapPlanSize(reconcile.maps.sni) === 0))
  );
}
