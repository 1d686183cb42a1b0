import { open, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { agentSubjects, dnsLabel } from '#contracts';

/** What the agent keeps between runs. The NATS seed is made here and never sent anywhere. */
export const identitySchema = z.strictObject({
  agentId: dnsLabel,
  natsSeed: z.string().regex(/^SU[A-Z2-7]{56}$/),
  natsPublicKey: z.string().regex(/^U[A-Z2-7]{55}$/),
  natsJwt: z.string().min(1),
  natsUrl: z.string().min(1),
  accessToken: z.string().min(1),
  accessTokenExpiresAt: z.string(),
  refreshToken: z.string().min(1),
  refreshTokenExpiresAt: z.string(),
  subjects: z.object({
    stream: z.string(),
    consumer: z.string(),
    inbound: z.string(),
    outbound: z.string(),
    heartbeat: z.string(),
    inboxPrefix: z.string(),
    // Identities stored before agents had accounts of their own lack it: the default is the same prefix.
    jsApiPrefix: z.string().default(agentSubjects.jsApiPrefix),
  }),
});
export type Identity = z.output<typeof identitySchema>;

const pendingKeySchema = z.strictObject({ natsSeed: z.string().regex(/^SU[A-Z2-7]{56}$/) });

export function identityPath(stateDir: string): string {
  return join(stateDir, 'identity.json');
}
function pendingKeyPath(stateDir: string): string {
  return join(stateDir, 'pending-key.json');
}

/** Writes a file atomically with mode 0600: temp file, fsync, rename. */
export async function writeSecretFile(path: string, content: string): Promise<void> {
  const temporary = `${path}.${process.pid}.tmp`;
  const handle = await open(temporary, 'w', 0o600);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temporary, path);
}

async function readJson(path: string): Promise<unknown | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read ${path}: ${(error as Error).message}`);
  }
}

export async function loadIdentity(stateDir: string): Promise<Identity | undefined> {
  const raw = await readJson(identityPath(stateDir));
  if (raw === undefined) return undefined;
  const parsed = identitySchema.safeParse(raw);
  if (!parsed.success) throw new Error(`${identityPath(stateDir)} is damaged; restore it or enroll again`);
  return parsed.data;
}

export async function saveIdentity(stateDir: string, identity: Identity): Promise<void> {
  await writeSecretFile(identityPath(stateDir), JSON.stringify(identity, null, 2) + '\n');
}

/** The key made before enrolling, kept so a retry after a crash sends the same public key. */
export async function loadPendingSeed(stateDir: string): Promise<string | undefined> {
  const raw = await readJson(pendingKeyPath(stateDir));
  return raw === undefined ? undefined : pendingKeySchema.parse(raw).natsSeed;
}

export async function savePendingSeed(stateDir: string, natsSeed: string): Promise<void> {
  await writeSecretFile(pendingKeyPath(stateDir), JSON.stringify({ natsSeed }) + '\n');
}

export async function removePendingSeed(stateDir: string): Promise<void> {
  await unlink(pendingKeyPath(stateDir)).catch(() => undefined);
}
