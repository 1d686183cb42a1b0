import {
  Algorithms,
  decode,
  encodeAccount,
  encodeOperator,
  encodeUser,
  fmtCreds,
  type Account,
  type ClaimsData,
  type KeyPair,
  type OperatorLimits,
  type Permissions,
} from '@nats-io/jwt';
import { createPrivateKey, sign } from 'node:crypto';
import { fromPublic, fromSeed } from '@nats-io/nkeys';
import { AGENTS_STREAM, agentSubjects } from '#contracts';

/** The application account every service and agent lives in. */
export const ACCOUNT_NAME = 'CLOUDLUNACY';
export const SYSTEM_ACCOUNT_NAME = 'SYS';
export const OPERATOR_NAME = 'CLOUDLUNACY';

const UNLIMITED_CORE = {
  subs: -1,
  data: -1,
  payload: -1,
  imports: -1,
  exports: -1,
  wildcards: true,
  conn: -1,
  leaf: -1,
} satisfies OperatorLimits;

/** JetStream is enabled for an account by giving it storage limits; -1 is "no account limit". */
const ACCOUNT_LIMITS: OperatorLimits = {
  ...UNLIMITED_CORE,
  mem_storage: -1,
  disk_storage: -1,
  streams: -1,
  consumer: -1,
};

/** The key pairs an installation's NATS identities are made of (seeds as strings, `S…`). */
export interface NatsKeys {
  operator: KeyPair;
  operatorSigning: KeyPair;
  systemAccount: KeyPair;
  account: KeyPair;
  accountSigning: KeyPair;
}

function bindAll(pair: KeyPair): KeyPair {
  return { seal: pair.seal.bind(pair), open: pair.open.bind(pair) } as unknown as KeyPair;
}

/** PKCS#8 DER prefix of an Ed25519 private key; the 32-byte seed follows it. */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/**
 * A key pair from a seed whose `sign` uses Node's native Ed25519 (OpenSSL) instead of the pure-JS
 * implementation in nkeys: signing a user JWT drops from ~20 ms to well under 1 ms, which is what
 * enrollment throughput was bound by. Signatures are identical (Ed25519 is deterministic).
 */
export function keyFromSeed(seed: string): KeyPair {
  const pair = fromSeed(new TextEncoder().encode(seed.trim()));
  const raw = (pair as KeyPair & { getRawSeed(): Uint8Array }).getRawSeed();
  const privateKey = createPrivateKey({
    key: Buffer.concat([ED25519_PKCS8_PREFIX, Buffer.from(raw)]),
    format: 'der',
    type: 'pkcs8',
  });
  return {
    ...bindAll(pair),
    getPublicKey: () => pair.getPublicKey(),
    getPrivateKey: () => pair.getPrivateKey(),
    getSeed: () => pair.getSeed(),
    sign: (data: Uint8Array) => new Uint8Array(sign(null, data, privateKey)),
    verify: (data: Uint8Array, signature: Uint8Array) => pair.verify(data, signature),
    clear: () => pair.clear(),
  };
}

export function seedOf(key: KeyPair): string {
  return new TextDecoder().decode(key.getSeed());
}

export function operatorJwt(keys: Pick<NatsKeys, 'operator' | 'operatorSigning' | 'systemAccount'>) {
  return encodeOperator(
    OPERATOR_NAME,
    keys.operator,
    {
      system_account: keys.systemAccount.getPublicKey(),
      signing_keys: [keys.operatorSigning.getPublicKey()],
    },
    { algorithm: Algorithms.v2 },
  );
}

export function systemAccountJwt(keys: Pick<NatsKeys, 'operatorSigning' | 'systemAccount'>) {
  return encodeAccount(
    SYSTEM_ACCOUNT_NAME,
    keys.systemAccount,
    { limits: UNLIMITED_CORE },
    { signer: keys.operatorSigning, algorithm: Algorithms.v2 },
  );
}

/** A user's public key → the unix time (seconds) at or before which its JWTs no longer count. */
export type Revocations = Record<string, number>;

/**
 * The application account's claims. Deterministic apart from `revocations`, so registration can re-sign
 * it whenever an agent is revoked without knowing more than the installation's keys.
 */
export function accountClaims(keys: Pick<NatsKeys, 'accountSigning'>, revocations: Revocations = {}) {
  const claims: Partial<Account> = {
    limits: ACCOUNT_LIMITS,
    signing_keys: [keys.accountSigning.getPublicKey()],
  };
  if (Object.keys(revocations).length > 0) claims.revocations = { ...revocations };
  return claims;
}

export function accountJwt(
  keys: Pick<NatsKeys, 'operatorSigning' | 'account' | 'accountSigning'>,
  revocations: Revocations = {},
): Promise<string> {
  // The account's identity key is only needed as a public key: the operator signs account JWTs.
  const subject = fromPublic(keys.account.getPublicKey());
  return encodeAccount(ACCOUNT_NAME, subject, accountClaims(keys, revocations), {
    signer: keys.operatorSigning,
    algorithm: Algorithms.v2,
  });
}

/** Revocations written in an account JWT (as read back from the server). */
export function revocationsOf(accountToken: string): Revocations {
  const claims = decode<Account>(accountToken) as ClaimsData<Account>;
  return { ...(claims.nats.revocations ?? {}) };
}

/**
 * What an agent may do on the broker, and nothing else (nats-server 2.9):
 * - publish under its own `agents.<id>.out.>` (heartbeats, reports, requests);
 * - look up its own durable consumer (`CONSUMER.INFO`), pull from it (`CONSUMER.MSG.NEXT`) and
 *   acknowledge what it got (`$JS.ACK.AGENTS.agent-<id>.>`, the reply subject of each delivery);
 * - subscribe only to its own inbox prefix `_INBOX_<id>.>`, where pulled messages, request replies and
 *   JetStream API answers arrive.
 * No CONSUMER.CREATE/DURABLE.CREATE (it could make a consumer filtering another agent's subjects), no
 * STREAM.* and no direct subscription to `agents.>`: what it receives comes through its own consumer.
 */
export function agentPermissions(agentId: string): Permissions {
  const consumer = agentSubjects.consumer(agentId);
  return {
    pub: {
      allow: [
        agentSubjects.outbound(agentId),
        `$JS.API.CONSUMER.INFO.${AGENTS_STREAM}.${consumer}`,
        `$JS.API.CONSUMER.MSG.NEXT.${AGENTS_STREAM}.${consumer}`,
        `$JS.ACK.${AGENTS_STREAM}.${consumer}.>`,
      ],
    },
    sub: { allow: [`${agentSubjects.inboxPrefix(agentId)}.>`] },
  };
}

export interface AgentUserOptions {
  agentId: string;
  /** The agent's own user public key (`U…`); its seed never leaves the agent. */
  publicKey: string;
  /** Lifetime in seconds; 0 for none. */
  ttlSeconds: number;
  keys: Pick<NatsKeys, 'account' | 'accountSigning'>;
}

/** Signs the user JWT an agent connects with, scoped to its own subjects. */
export async function agentUserJwt(options: AgentUserOptions): Promise<string> {
  if (!/^U[A-Z2-7]{55}$/.test(options.publicKey)) throw new Error('not a NATS user public key');
  const now = Math.floor(Date.now() / 1000);
  return encodeUser(
    `agent-${options.agentId}`,
    fromPublic(options.publicKey),
    fromPublic(options.keys.account.getPublicKey()),
    { ...agentPermissions(options.agentId), tags: [`agent:${options.agentId}`] },
    {
      signer: options.keys.accountSigning,
      algorithm: Algorithms.v2,
      ...(options.ttlSeconds > 0 ? { exp: now + options.ttlSeconds } : {}),
    },
  );
}

/** A service user in the application account: full access to the account's subjects. */
export async function serviceUserCreds(
  keys: Pick<NatsKeys, 'account' | 'accountSigning'>,
  user: KeyPair,
  name = 'services',
): Promise<Uint8Array> {
  const token = await encodeUser(
    name,
    user,
    fromPublic(keys.account.getPublicKey()),
    {},
    {
      signer: keys.accountSigning,
      algorithm: Algorithms.v2,
    },
  );
  return fmtCreds(token, user);
}

/** A user of the system account: can push account updates (`$SYS.REQ.CLAIMS.UPDATE`). */
export async function systemUserCreds(keys: Pick<NatsKeys, 'systemAccount'>, user: KeyPair) {
  const token = await encodeUser('system', user, keys.systemAccount, {}, { algorithm: Algorithms.v2 });
  return fmtCreds(token, user);
}

/**
 * The include file for nats-server: trusted operator, system account, and a full resolver whose
 * account JWTs can be updated at run time (that is how revocations reach the server immediately).
 */
export function natsAuthConfig(options: {
  operatorJwt: string;
  systemAccountPublicKey: string;
  accountPublicKey: string;
  systemAccountJwt: string;
  accountJwt: string;
  resolverDir: string;
}): string {
  return [
    '# Generated by `cli init`: decentralized JWT auth for CloudLunacy. Include it from nats-server.conf.',
    `operator: ${options.operatorJwt}`,
    `system_account: ${options.systemAccountPublicKey}`,
    'resolver {',
    '  type: full',
    `  dir: ${JSON.stringify(options.resolverDir)}`,
    // Deleting an account would drop every agent's identity at once; nobody needs it.
    '  allow_delete: false',
    '  interval: "2m"',
    '}',
    // Seeds the resolver on first start; later updates (revocations) are newer and win over these.
    'resolver_preload {',
    `  ${options.systemAccountPublicKey}: ${options.systemAccountJwt}`,
    `  ${options.accountPublicKey}: ${options.accountJwt}`,
    '}',
    '',
  ].join('\n');
}
