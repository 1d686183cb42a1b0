/**
 * Which stored secret versions can be forgotten: a version that is not its secret's latest, and that
 * nothing in flight or serving still names. A row no event names yet (written just before its event, or
 * left by a crash between the two) is kept for `orphanGraceMs`, then forgotten too.
 */
export interface StoredVersion {
  appName: string;
  name: string;
  version: number;
  createdAt: string;
}

export interface SecretsInUse {
  /** Per app, the latest version of each secret it has (removed secrets are absent). */
  latest: ReadonlyMap<string, Readonly<Record<string, number>>>;
  /** Per app, the highest version the log ever named for each secret (removed ones included). */
  named: ReadonlyMap<string, Readonly<Record<string, number>>>;
  /** `app\0NAME\0version` of every version a deployment in flight or a serving release needs. */
  referenced: ReadonlySet<string>;
}

export const versionKey = (appName: string, name: string, version: number) =>
  `${appName}\0${name}\0${version}`;

export function collectableVersions(
  stored: readonly StoredVersion[],
  inUse: SecretsInUse,
  now: number,
  orphanGraceMs = 3_600_000,
): StoredVersion[] {
  return stored.filter((row) => {
    if (inUse.referenced.has(versionKey(row.appName, row.name, row.version))) return false;
    if (inUse.latest.get(row.appName)?.[row.name] === row.version) return false;
    const highestNamed = inUse.named.get(row.appName)?.[row.name] ?? 0;
    // Not named by the log yet: its event may be on its way.
    if (row.version > highestNamed) return now - Date.parse(row.createdAt) > orphanGraceMs;
    return true;
  });
}
