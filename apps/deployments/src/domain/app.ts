import {
  DomainError,
  type Actor,
  type AppConfig,
  type DeploymentKind,
  type DomainEvent,
  type NewEvent,
  type StoredEvent,
} from '#contracts';

/**
 * The app aggregate (`events.app.<name>`): its configuration, its secrets by name and version, and the
 * lock of one active deployment per app. Pure: the service loads, decides, appends.
 */

export interface CurrentRelease {
  releaseId: string;
  number: number;
  port: number;
  commit: string | null;
}

export interface KeptRelease {
  releaseId: string;
  number: number;
  commit: string | null;
  builtAt: string;
}

export interface LiveApp {
  status: 'live';
  appName: string;
  agentId: string;
  config: AppConfig;
  /** Secret name → its latest version and when it was set. */
  secrets: Record<string, { version: number; setAt: string }>;
  /** Every deployment the app accepted, with its number. */
  accepted: Record<string, number>;
  deploymentsCount: number;
  active: string | null;
  /** When the active deployment became active: the start of its wait for a claim. */
  activeSince: string | null;
  queued: string | null;
  current: CurrentRelease | null;
  routeId: string | null;
  keptReleases: KeptRelease[];
  createdAt: string;
  updatedAt: string;
  /** The command that created it, to recognise a retry. */
  createdBy: string | null;
  /** The last secret change per name and the command that made it, to recognise a retry. */
  secretCommands: Record<string, string>;
  /** The highest version each name ever had: a removed and set again secret continues from it. */
  secretHighWater: Record<string, number>;
}
export type AppState = { status: 'absent' } | LiveApp;

export const initialAppState: AppState = { status: 'absent' };

export function evolveApp(state: AppState, event: DomainEvent): AppState {
  if (event.type === 'AppCreated') {
    if (state.status !== 'absent') return state;
    return {
      status: 'live',
      appName: event.data.appName,
      agentId: event.data.agentId,
      config: event.data.config,
      secrets: {},
      accepted: {},
      deploymentsCount: 0,
      active: null,
      activeSince: null,
      queued: null,
      current: null,
      routeId: null,
      keptReleases: [],
      createdAt: event.occurredAt,
      updatedAt: event.occurredAt,
      createdBy: event.causationId,
      secretCommands: {},
      secretHighWater: {},
    };
  }
  if (state.status !== 'live') return state;
  const next = { ...state, updatedAt: event.occurredAt };
  switch (event.type) {
    case 'AppConfigured':
      return { ...next, config: event.data.config };
    case 'AppSecretSet':
      return {
        ...next,
        secrets: {
          ...state.secrets,
          [event.data.name]: { version: event.data.version, setAt: event.occurredAt },
        },
        secretCommands: { ...state.secretCommands, [event.data.name]: event.causationId ?? '' },
        secretHighWater: {
          ...state.secretHighWater,
          [event.data.name]: Math.max(state.secretHighWater[event.data.name] ?? 0, event.data.version),
        },
      };
    case 'AppSecretRemoved': {
      const { [event.data.name]: _removed, ...secrets } = state.secrets;
      return {
        ...next,
        secrets,
        secretCommands: { ...state.secretCommands, [event.data.name]: event.causationId ?? '' },
      };
    }
    case 'DeploymentAccepted': {
      const accepted = { ...state.accepted, [event.data.deploymentId]: event.data.number };
      const counted = {
        ...next,
        accepted,
        deploymentsCount: Math.max(state.deploymentsCount, event.data.number),
      };
      return event.data.queued
        ? { ...counted, queued: event.data.deploymentId }
        : { ...counted, active: event.data.deploymentId, activeSince: event.occurredAt };
    }
    case 'DeploymentActivated':
      return {
        ...next,
        active: event.data.deploymentId,
        activeSince: event.occurredAt,
        queued: state.queued === event.data.deploymentId ? null : state.queued,
      };
    case 'DeploymentFinished':
      return {
        ...next,
        active: state.active === event.data.deploymentId ? null : state.active,
        activeSince: state.active === event.data.deploymentId ? null : state.activeSince,
        queued: state.queued === event.data.deploymentId ? null : state.queued,
        current: event.data.current,
        routeId: event.data.routeId,
        keptReleases: event.data.keptReleases,
      };
    default:
      return state;
  }
}

export function foldApp(events: readonly StoredEvent[]): AppState {
  return (events as DomainEvent[]).reduce(evolveApp, initialAppState);
}

/** Admins (and the system) act on any app; an agent only on its own. The same answer whether it exists. */
export function checkAppActor(actor: Actor, app: AppState, appName: string): asserts app is LiveApp {
  if (app.status === 'absent' || (actor.kind === 'agent' && actor.id !== app.agentId)) {
    if (actor.kind === 'agent') {
      throw new DomainError('forbidden', `agent ${actor.id} has no app ${appName}`, 'appName');
    }
    throw new DomainError('not_found', `no app ${appName}`, 'appName');
  }
}

export interface CreateApp {
  actor: Actor;
  appName: string;
  agentId: string;
  config: AppConfig;
  commandId: string;
}

/** A new app: its name is claimed by appending at sequence 0, so it exists once. */
export function decideCreateApp(app: AppState, command: CreateApp): NewEvent[] {
  if (command.actor.kind === 'agent' && command.actor.id !== command.agentId) {
    throw new DomainError('forbidden', 'an agent can only create apps for itself', 'agentId');
  }
  if (app.status === 'live') {
    if (app.createdBy === command.commandId && app.agentId === command.agentId) return [];
    throw new DomainError('conflict', `an app named ${command.appName} exists already`, 'name');
  }
  return [
    {
      type: 'AppCreated',
      data: { appName: command.appName, agentId: command.agentId, config: command.config },
    },
    ...command.config.secrets.map((secret): NewEvent => ({
      type: 'AppSecretSet',
      data: { appName: command.appName, name: secret.name, version: secret.version },
    })),
  ];
}

export function decideConfigure(app: LiveApp, config: AppConfig): NewEvent[] {
  if (config.hostname !== app.config.hostname) {
    throw new DomainError('invalid', 'the host name cannot be changed after creation', 'hostname');
  }
  // Secrets change only through set and remove: a configuration never names versions the store lacks.
  const next = { ...config, secrets: app.config.secrets };
  if (JSON.stringify(next) === JSON.stringify(app.config)) return [];
  return [{ type: 'AppConfigured', data: { appName: app.appName, config: next } }];
}

/** The version a new value of the secret gets; a retry of the same command gets the same one. */
export function nextSecretVersion(app: LiveApp, name: string, commandId: string): number {
  const latest = app.secrets[name]?.version;
  if (latest !== undefined && app.secretCommands[name] === commandId) return latest;
  return (app.secretHighWater[name] ?? 0) + 1;
}

export function decideSetSecret(app: LiveApp, name: string, version: number, commandId: string): NewEvent[] {
  if (app.secretCommands[name] === commandId && app.secrets[name]?.version === version) return [];
  const config = withSecret(app.config, name, version);
  return [
    { type: 'AppSecretSet', data: { appName: app.appName, name, version } },
    { type: 'AppConfigured', data: { appName: app.appName, config } },
  ];
}

export function decideRemoveSecret(app: LiveApp, name: string): NewEvent[] {
  if (app.secrets[name] === undefined) return [];
  const config = { ...app.config, secrets: app.config.secrets.filter((secret) => secret.name !== name) };
  return [
    { type: 'AppSecretRemoved', data: { appName: app.appName, name } },
    { type: 'AppConfigured', data: { appName: app.appName, config } },
  ];
}

function withSecret(config: AppConfig, name: string, version: number): AppConfig {
  const others = config.secrets.filter((secret) => secret.name !== name);
  return { ...config, secrets: [...others, { name, version }].sort((a, b) => a.name.localeCompare(b.name)) };
}

/**
 * The app takes a deployment: it runs at once when none is active, else it waits behind the active one and
 * replaces the one already waiting (only the newest request matters). A retry changes nothing.
 */
export function decideAccept(app: LiveApp, deploymentId: string, kind: DeploymentKind): NewEvent[] {
  if (app.accepted[deploymentId] !== undefined) return [];
  const queued = app.active !== null;
  return [
    {
      type: 'DeploymentAccepted',
      data: {
        appName: app.appName,
        deploymentId,
        number: app.deploymentsCount + 1,
        kind,
        queued,
        supersedes: queued ? app.queued : null,
      },
    },
  ];
}

export interface Finish {
  deploymentId: string;
  outcome: 'succeeded' | 'failed' | 'cancelled' | 'abandoned';
  /** succeeded: the release that serves now, and when it was built. */
  release: (CurrentRelease & { builtAt: string }) | null;
  /** The route the deployment switched (or found). */
  routeId: string | null;
}

/**
 * The active (or queued) deployment ended: the app records the release that must serve from now on and
 * the releases kept for rollback, and lets the queued one run.
 */
export function decideFinish(app: LiveApp, finish: Finish): NewEvent[] {
  if (app.active !== finish.deploymentId && app.queued !== finish.deploymentId) return [];
  const release =
    finish.outcome === 'succeeded' && finish.release !== null ? knownRelease(app, finish.release) : null;
  const events: NewEvent[] = [
    {
      type: 'DeploymentFinished',
      data: {
        appName: app.appName,
        deploymentId: finish.deploymentId,
        outcome: finish.outcome,
        current: release ? releaseOnly(release) : app.current,
        routeId: finish.routeId ?? app.routeId,
        keptReleases: release ? keptAfter(app, release) : app.keptReleases,
      },
    },
  ];
  if (app.active === finish.deploymentId && app.queued !== null) {
    events.push({ type: 'DeploymentActivated', data: { appName: app.appName, deploymentId: app.queued } });
  }
  return events;
}

/**
 * A release with what the app's kept entry knows of it: a rollback starts a kept release without fetching
 * it, so the deployment alone knows neither its commit nor when it was built.
 */
export function knownRelease<R extends CurrentRelease & { builtAt: string }>(app: LiveApp, release: R): R {
  const kept = app.keptReleases.find((entry) => entry.releaseId === release.releaseId);
  if (!kept) return release;
  return { ...release, commit: release.commit ?? kept.commit, builtAt: kept.builtAt };
}

function releaseOnly(release: CurrentRelease): CurrentRelease {
  return { releaseId: release.releaseId, number: release.number, port: release.port, commit: release.commit };
}

/** The serving release first, then the others newest first, up to `releasesKept`. */
export function keptAfter(app: LiveApp, release: CurrentRelease & { builtAt: string }): KeptRelease[] {
  const existing = app.keptReleases.find((kept) => kept.releaseId === release.releaseId);
  const serving: KeptRelease = existing ?? {
    releaseId: release.releaseId,
    number: release.number,
    commit: release.commit,
    builtAt: release.builtAt,
  };
  const others = app.keptReleases
    .filter((kept) => kept.releaseId !== release.releaseId)
    .sort((a, b) => b.number - a.number);
  return [serving, ...others].slice(0, app.config.releasesKept);
}

/** The release a rollback starts: the one asked for, or the newest kept one that does not serve. */
export function rollbackTarget(app: LiveApp, release: number | string | undefined): KeptRelease {
  const candidates = app.keptReleases.filter((kept) => kept.releaseId !== app.current?.releaseId);
  if (release === undefined) {
    const newest = [...candidates].sort((a, b) => b.number - a.number)[0];
    if (!newest) throw new DomainError('conflict', `${app.appName} has no other kept release`, 'release');
    return newest;
  }
  const found = app.keptReleases.find((kept) =>
    typeof release === 'number' ? kept.number === release : kept.releaseId === release,
  );
  if (!found) {
    const kept = app.keptReleases.map((k) => k.number).join(', ') || 'none';
    throw new DomainError(
      'conflict',
      `release ${release} of ${app.appName} is not kept (kept: ${kept})`,
      'release',
    );
  }
  if (found.releaseId === app.current?.releaseId) {
    throw new DomainError('conflict', `release ${found.number} is the one serving ${app.appName}`, 'release');
  }
  return found;
}
