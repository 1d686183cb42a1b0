import {
  Algorithms,
  decode,
  encodeAccount,
  encodeOperator,
  encodeUser,
  fmtCreds,
  type Account,
  type ClaimsData,
  type Export,
  type KeyPair,
  type OperatorLimits,
  type Permissions,
} from '@nats-io/jwt';
import { createHmac, createPrivateKey, sign } from 'node:crypto';
import { fromPublic, fromSeed, Prefix } from '@nats-io/nkeys';
// The library's own seed encoder: nkeys makes seeds only from random bytes in its public API.
import { Codec } from '@nats-io/nkeys/lib/codec.js';
import { AGENTS_STREAM, agentSubjects } from '#contracts';

/** The services' account: JetStream (the EVENTS and AGENTS streams) and every service user live here. */
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
  /** The services' account and the key that signs service users. */
  account: KeyPair;
  accountSigning: KeyPair;
  /** Signs agent users; listed as a signing key of every agent's own account. */
  agentSigning: KeyPair;
  /** Secret from which each agent's account identity is derived (see `agentAccountKey`). */
  agentAccounts: Uint8Array;
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
    exports: servicesAccountExports(),
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
 * What the services' account offers agents' accounts. Every agent lives in an account of its own
 * (`agentAccountClaims`) and reaches the services only through these exports, imported for its own
 * subjects alone. They are service exports on purpose: the server rewrites the reply subject of a
 * request that crosses into this account to a one-off `_R_.…` subject that leads back to the
 * requester's account only, so nothing an agent names as a reply can make JetStream or a service
 * publish into this account (the EVENTS and AGENTS streams, `cmd.>`) or into another agent's account.
 */
export function servicesAccountExports(): Export[] {
  return [
    {
      name: 'agents-out',
      subject: agentSubjects.allOutbound(),
      type: 'service',
      response_type: 'Singleton',
      description: 'what agents publish: heartbeats, reports and requests, each from its own account',
    },
    {
      name: 'agents-consumer-info',
      subject: `$JS.API.CONSUMER.INFO.${AGENTS_STREAM}.*`,
      type: 'service',
      response_type: 'Singleton',
    },
    {
      name: 'agents-consumer-next',
      subject: `$JS.API.CONSUMER.MSG.NEXT.${AGENTS_STREAM}.*`,
      type: 'service',
      // A pull answers with many messages (and status messages) to one reply subject.
      response_type: 'Stream',
    },
    {
      name: 'agents-consumer-ack',
      subject: `$JS.ACK.${AGENTS_STREAM}.*.>`,
      type: 'service',
      response_type: 'Singleton',
    },
  ];
}

/** Connections, subscriptions and message size one agent's account may use: a hostile agent's reach. */
export const AGENT_ACCOUNT_LIMITS: OperatorLimits = {
  conn: 8,
  subs: 256,
  payload: 256 * 1024,
  data: -1,
  leaf: 0,
  imports: 8,
  exports: 0,
  wildcards: false,
  disallow_bearer: true,
};

/**
 * The identity of an agent's own account, derived from the installation's `agent-accounts` secret and
 * the agent id: registration can (re)make any agent's account at any time without keeping a key per
 * agent. Only the public key is ever used (the operator signs account JWTs).
 */
export function agentAccountKey(agentId: string, secret: Uint8Array): KeyPair {
  const raw = createHmac('sha256', secret).update(`agent-account:${agentId}`).digest();
  return fromSeed(Codec.encodeSeed(Prefix.Account, new Uint8Array(raw)));
}

export interface AgentAccountOptions {
  servicesAccountPublicKey: string;
  agentSigningPublicKey: string;
  /** Deregistered at (unix seconds): every user of the account is revoked and no connection is allowed. */
  revokedAt?: number;
}

/**
 * An agent's own account: no JetStream of its own, no exports, and four imports from the services'
 * account, each for this agent's subjects only — its outbound subjects, and the info, pull and ack
 * subjects of its own durable consumer. The JetStream API is imported under a local prefix
 * (`agentSubjects.jsApiPrefix`) because an account's own `$JS.API` is answered by the server itself.
 */
export function agentAccountClaims(agentId: string, options: AgentAccountOptions): Partial<Account> {
  const consumer = agentSubjects.consumer(agentId);
  const account = options.servicesAccountPublicKey;
  const claims: Partial<Account> = {
    limits: options.revokedAt === undefined ? AGENT_ACCOUNT_LIMITS : { ...AGENT_ACCOUNT_LIMITS, conn: 0 },
    signing_keys: [options.agentSigningPublicKey],
    imports: [
      { name: 'out', type: 'service', account, subject: agentSubjects.outbound(agentId) },
      {
        name: 'consumer-info',
        type: 'service',
        account,
        subject: `$JS.API.CONSUMER.INFO.${AGENTS_STREAM}.${consumer}`,
        local_subject: `${agentSubjects.jsApiPrefix}.CONSUMER.INFO.${AGENTS_STREAM}.${consumer}`,
      },
      {
        name: 'consumer-next',
        type: 'service',
        account,
        subject: `$JS.API.CONSUMER.MSG.NEXT.${AGENTS_STREAM}.${consumer}`,
        local_subject: `${agentSubjects.jsApiPrefix}.CONSUMER.MSG.NEXT.${AGENTS_STREAM}.${consumer}`,
      },
      { name: 'consumer-ack', type: 'service', account, subject: `$JS.ACK.${AGENTS_STREAM}.${consumer}.>` },
    ],
  };
  if (options.revokedAt !== undefined) claims.revocations = { '*': options.revokedAt };
  return claims;
}

export function agentAccountJwt(
  agentId: string,
  keys: Pick<NatsKeys, 'operatorSigning' | 'account' | 'agentSigning' | 'agentAccounts'>,
  revokedAt?: number,
): Promise<string> {
  const subject = fromPublic(agentAccountKey(agentId, keys.agentAccounts).getPublicKey());
  return encodeAccount(
    `agent-${agentId}`,
    subject,
    agentAccountClaims(agentId, {
      servicesAccountPublicKey: keys.account.getPublicKey(),
      agentSigningPublicKey: keys.agentSigning.getPublicKey(),
      ...(revokedAt === undefined ? {} : { revokedAt }),
    }),
    { signer: keys.operatorSigning, algorithm: Algorithms.v2 },
  );
}

/**
 * What an agent user may do inside its own account (defence in depth: the account holds nothing but
 * the agent's own imports anyway):
 * - publish under its own `agents.<id>.out.>` (heartbeats, reports, requests);
 * - look up its own durable consumer, pull from it (through the local JetStream API prefix) and
 *   acknowledge what it got (`$JS.ACK.AGENTS.agent-<id>.>`, the reply subject of each delivery);
 * - subscribe only to its own inbox prefix `_INBOX_<id>.>`, where pulled messages, request replies and
 *   JetStream API answers arrive.
 */
export function agentPermissions(agentId: string): Permissions {
  const consumer = agentSubjects.consumer(agentId);
  return {
    pub: {
      allow: [
        agentSubjects.outbound(agentId),
        `${agentSubjects.jsApiPrefix}.CONSUMER.INFO.${AGENTS_STREAM}.${consumer}`,
        `${agentSubjects.jsApiPrefix}.CONSUMER.MSG.NEXT.${AGENTS_STREAM}.${consumer}`,
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
  keys: Pick<NatsKeys, 'agentSigning' | 'agentAccounts'>;
}

/** Signs the user JWT an agent connects with: a user of the agent's own account. */
export async function agentUserJwt(options: AgentUserOptions): Promise<string> {
  if (!/^U[A-Z2-7]{55}$/.test(options.publicKey)) throw new Error('not a NATS user public key');
  const now = Math.floor(Date.now() / 1000);
  const account = agentAccountKey(options.agentId, options.keys.agentAccounts).getPublicKey();
  return encodeUser(
    `agent-${options.agentId}`,
    fromPublic(options.publicKey),
    fromPublic(account),
    { ...agentPermissions(options.agentId), tags: [`agent:${options.agentId}`] },
    {
      signer: options.keys.agentSigning,
      algorithm: Algorithms.v2,
      ...(options.ttlSeconds > 0 ? { exp: now + options.ttlSeconds } : {}),
    },
  );
}

/**
 * A user of the services' account. With `permissions` (libs/auth service-permissions.ts) it may do only
 * what they list; without, everything in the account — the installation-admin user, which nothing runs as.
 */
export async function serviceUserCreds(
  keys: Pick<NatsKeys, 'account' | 'accountSigning'>,
  user: KeyPair,
  name = 'services',
  permissions: Partial<Permissions> = {},
): Promise<Uint8Array> {
  const token = await encodeUser(name, user, fromPublic(keys.account.getPublicKey()), permissions, {
    signer: keys.accountSigning,
    algorithm: Algorithms.v2,
  });
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
