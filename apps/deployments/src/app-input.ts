import {
  DATABASE_ZONES,
  databaseHostname,
  DomainError,
  envEntries,
  parseOrThrow,
  type AppConfig,
  type BuildOverrides,
  type ConfigureAppInput,
  type CreateAppInput,
  type EnvEntry,
  type SourceInput,
} from '#contracts';

/**
 * From what a user sends to what the log keeps: the configuration with plain values only, and the secret
 * values apart (they go to the secret store, and the log names them by version).
 */
export function configOf(
  input: CreateAppInput,
  agentId: string,
  domain: string,
): { config: AppConfig; secretValues: Record<string, string> } {
  const { plain, secretValues } = splitEnv(input.env);
  const credentials = input.source.type === 'git' ? input.source.credentials : undefined;
  // The agent may have come from the requester rather than the body: its namespace is checked again.
  if (input.source.type === 'database' && input.hostname !== null) {
    const suffix = `.${DATABASE_ZONES[input.source.engine]}.${domain}`;
    if (input.hostname !== `${agentId}${suffix}` && !input.hostname.endsWith(`.${agentId}${suffix}`))
      throw new DomainError(
        'invalid',
        `must be in the agent's own namespace: ${agentId}${suffix} or <name>.${agentId}${suffix}`,
        'hostname',
      );
  }
  if (credentials && secretValues[credentials.secret] === undefined) {
    throw new DomainError(
      'invalid',
      `the source's credentials name ${credentials.secret}: give it as a secret env entry`,
      'source.credentials.secret',
    );
  }
  return {
    config: {
      hostname:
        input.hostname ??
        (input.source.type === 'database'
          ? databaseHostname(input.name, agentId, input.source.engine, domain)
          : `${input.name}.apps.${domain}`),
      source: sourceOf(input.source),
      build: buildOf(input.build),
      healthCheck: input.healthCheck,
      env: plain,
      secrets: Object.keys(secretValues)
        .sort()
        .map((name) => ({ name, version: 1 })),
      drain: input.drain,
      limits: input.limits,
      releasesKept: input.releasesKept,
      runtime: input.runtime,
    },
    secretValues,
  };
}

/**
 * A patch over the current configuration. Secret values are set one by one (`PUT …/secrets/NAME`), so
 * that each gets its version; a patch carries plain values only and keeps the secrets as they are.
 */
export function patchedConfig(current: AppConfig, patch: ConfigureAppInput): AppConfig {
  if (patch.env?.some((entry) => entry.secret)) {
    const index = patch.env.findIndex((entry) => entry.secret);
    throw new DomainError(
      'invalid',
      'set secret values with PUT /api/v1/apps/{name}/secrets/{NAME}',
      `env[${index}].secret`,
    );
  }
  if (current.source.type === 'database' || patch.source?.type === 'database') {
    if (patch.source && patch.source.type !== current.source.type)
      throw new DomainError(
        'invalid',
        'an app and a database cannot become one another: create a new one',
        'source.type',
      );
    for (const field of ['build', 'env'] as const)
      if (patch[field] !== undefined)
        throw new DomainError(
          'invalid',
          `a database takes no ${field}: the agent configures the engine itself`,
          field,
        );
  }
  const build = patch.build ? buildOf(patch.build) : current.build;
  const env = patch.env ? splitEnv(patch.env).plain : current.env;
  // The port variable may have changed with the build settings: the env is checked against the result.
  const portEnv = build.portEnv ?? 'PORT';
  parseOrThrow(
    envEntries(portEnv),
    Object.entries(env).map(([name, value]) => ({ name, value })),
    'env',
  );
  if (current.secrets.some((secret) => secret.name === portEnv)) {
    throw new DomainError(
      'invalid',
      `${portEnv} is a secret of this app; it cannot be the port variable`,
      'build.portEnv',
    );
  }
  return {
    ...current,
    source: patch.source ? sourceOf(patch.source) : current.source,
    build,
    healthCheck: patch.healthCheck ?? current.healthCheck,
    env,
    drain: patch.drain ?? current.drain,
    limits: patch.limits ?? current.limits,
    releasesKept: patch.releasesKept ?? current.releasesKept,
  };
}

function splitEnv(entries: readonly EnvEntry[]) {
  const plain: Record<string, string> = {};
  const secretValues: Record<string, string> = {};
  for (const entry of entries) (entry.secret ? secretValues : plain)[entry.name] = entry.value;
  return { plain, secretValues };
}

function sourceOf(source: SourceInput): AppConfig['source'] {
  if (source.type === 'upload') return { type: 'upload' };
  if (source.type === 'database') return { type: 'database', engine: source.engine };
  if (source.type === 'image') return { type: 'image', image: source.image };
  return {
    type: 'git',
    url: source.url,
    ref: source.ref ?? null,
    credentials: source.credentials
      ? {
          secret: source.credentials.secret,
          kind: source.credentials.kind,
          knownHosts: source.credentials.knownHosts ?? null,
        }
      : null,
  };
}

function buildOf(build: BuildOverrides | undefined): AppConfig['build'] {
  return {
    root: build?.root ?? null,
    ...(build?.install !== undefined ? { install: build.install } : {}),
    build: build?.build ?? null,
    start: build?.start ?? null,
    portEnv: build?.portEnv ?? null,
    timeoutSeconds: build?.timeoutSeconds ?? null,
  };
}
