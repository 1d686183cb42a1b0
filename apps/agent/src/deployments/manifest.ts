import { buildManifest, issuesOf, type AppConfig, type BuildManifest, type EventData } from '#contracts';

/** How a release is built and started, and where that came from (recorded in DeploymentBuilt). */
export type ResolvedManifest = EventData<'DeploymentBuilt'>['manifest'];

/** A source that cannot be built as it is: the deployment fails at `built` with this message. */
export class ManifestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ManifestError';
  }
}

export const MANIFEST_FILE = 'cloudlunacy.json';

/** `cloudlunacy.json` as the source has it; every refusal names the field. */
export function parseManifest(text: string): BuildManifest {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ManifestError(`${MANIFEST_FILE} is not JSON: ${(error as Error).message}`);
  }
  const parsed = buildManifest.safeParse(json);
  if (!parsed.success) {
    const issues = issuesOf(parsed.error).map((issue) => `${issue.field || '(root)'}: ${issue.message}`);
    throw new ManifestError(`${MANIFEST_FILE}: ${issues.join('; ')}`);
  }
  return parsed.data;
}

/** The directory the build runs in, relative to the source: the app's setting wins over the manifest's. */
export function buildRoot(manifest: BuildManifest | null, app: AppConfig['build']): string {
  return app.root ?? manifest?.root ?? '.';
}

/** What the agent read of a Node project at the build root (package.json and its neighbours). */
export interface NodeProject {
  packageJson: string;
  hasLockfile: boolean;
  hasServerJs: boolean;
}

interface PackageJson {
  scripts?: Record<string, unknown>;
  dependencies?: Record<string, unknown>;
  devDependencies?: Record<string, unknown>;
}

/**
 * The build: the app's settings first, then `cloudlunacy.json`, then the defaults of a Node project
 * (`npm ci` with a lockfile, else `npm install`, skipped without dependencies; `npm run build` when there
 * is a build script; `npm start`). Nothing to go on is an error that says what to add.
 */
export function resolveManifest(input: {
  manifest: BuildManifest | null;
  app: AppConfig['build'];
  /** The app's health check path, unless the manifest names one. */
  healthPath: string;
  node: NodeProject | null;
}): ResolvedManifest {
  const { manifest, app, node } = input;
  const defaults = node ? nodeDefaults(node) : null;
  const start = app.start ?? manifest?.start ?? defaults?.start;
  if (start === undefined) {
    throw new ManifestError(
      `no ${MANIFEST_FILE} and no package.json: say how to build and start it (a ${MANIFEST_FILE} with "start", or the app's build.start)`,
    );
  }
  const install =
    app.install !== undefined
      ? app.install
      : manifest?.install !== undefined
        ? manifest.install
        : (defaults?.install ?? null);
  const fromApp =
    app.start !== null || app.install !== undefined || app.build !== null || app.portEnv !== null;
  return {
    origin: fromApp ? 'app' : manifest ? 'cloudlunacy.json' : 'node-default',
    root: buildRoot(manifest, app),
    install,
    build: app.build ?? manifest?.build ?? defaults?.build ?? [],
    start,
    portEnv: app.portEnv ?? manifest?.portEnv ?? 'PORT',
    healthPath: manifest?.healthCheck?.path ?? input.healthPath,
  };
}

function nodeDefaults(node: NodeProject): { install: string | null; build: string[]; start: string } {
  let pkg: PackageJson;
  try {
    pkg = JSON.parse(node.packageJson) as PackageJson;
  } catch (error) {
    throw new ManifestError(`package.json is not JSON: ${(error as Error).message}`);
  }
  if (typeof pkg !== 'object' || pkg === null) throw new ManifestError('package.json must be an object');
  const scripts = typeof pkg.scripts === 'object' && pkg.scripts !== null ? pkg.scripts : {};
  const hasDependencies =
    Object.keys(pkg.dependencies ?? {}).length > 0 || Object.keys(pkg.devDependencies ?? {}).length > 0;
  if (typeof scripts.start !== 'string' && !node.hasServerJs) {
    throw new ManifestError(
      'package.json has no "start" script and there is no server.js: add one, or say how to start it in ' +
        MANIFEST_FILE,
    );
  }
  return {
    install: hasDependencies ? (node.hasLockfile ? 'npm ci' : 'npm install') : null,
    build: typeof scripts.build === 'string' ? ['npm run build'] : [],
    start: directNodeStart(scripts) ?? 'npm start',
  };
}

/** A plain `node <file> [args]`: words of letters, digits and `_ . / @ : = + -` only. */
const PLAIN_NODE_COMMAND = /^node(?: +[A-Za-z0-9_./@:=+-]+)+$/;

/**
 * The start script itself when it is a plain `node …` and npm would add nothing around it (no
 * prestart/poststart hooks): npm costs half a second at every start and restart, and stands between
 * the app and its signals. npm also runs `node server.js` when there is no start script. Anything
 * else (other commands, shell syntax, hooks) stays `npm start`.
 */
function directNodeStart(scripts: Record<string, unknown>): string | null {
  if (scripts.prestart !== undefined || scripts.poststart !== undefined) return null;
  if (scripts.start === undefined) return 'node server.js';
  return typeof scripts.start === 'string' && PLAIN_NODE_COMMAND.test(scripts.start.trim())
    ? scripts.start.trim()
    : null;
}
