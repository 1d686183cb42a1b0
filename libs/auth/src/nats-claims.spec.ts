import { decode, type User } from '@nats-io/jwt';
import { createAccount, createOperator, createUser, fromPublic } from '@nats-io/nkeys';
import { randomBytes } from 'node:crypto';
import {
  accountClaims,
  agentAccountClaims,
  agentAccountKey,
  agentPermissions,
  agentUserJwt,
  keyFromSeed,
  seedOf,
} from './nats-claims.js';

test('the native Ed25519 signer signs exactly like nkeys', () => {
  const original = createAccount();
  const native = keyFromSeed(seedOf(original));
  const data = new TextEncoder().encode('claims to sign');
  expect(native.getPublicKey()).toBe(original.getPublicKey());
  expect(Buffer.from(native.sign(data)).toString('hex')).toBe(
    Buffer.from(original.sign(data)).toString('hex'),
  );
  expect(fromPublic(original.getPublicKey()).verify(data, native.sign(data))).toBe(true);
});

test("an agent's permissions name only its own subjects and consumer, and no consumer creation", () => {
  const permissions = agentPermissions('web-1');
  expect(permissions).toEqual({
    pub: {
      allow: [
        'agents.web-1.out.>',
        '$CL.JS.API.CONSUMER.INFO.AGENTS.agent-web-1',
        '$CL.JS.API.CONSUMER.MSG.NEXT.AGENTS.agent-web-1',
        '$JS.ACK.AGENTS.agent-web-1.>',
      ],
    },
    sub: { allow: ['_INBOX_web-1.>'] },
  });
  expect(JSON.stringify(permissions)).not.toMatch(/CREATE|STREAM|\*/);
});

test("an agent user JWT is a user of the agent's own account, signed by the agent signing key", async () => {
  const agentSigning = keyFromSeed(seedOf(createAccount()));
  const agentAccounts = randomBytes(32);
  const agent = createUser();
  const token = await agentUserJwt({
    agentId: 'web-1',
    publicKey: agent.getPublicKey(),
    ttlSeconds: 60,
    keys: { agentSigning, agentAccounts },
  });
  const claims = decode<User>(token);
  expect(claims.sub).toBe(agent.getPublicKey());
  expect(claims.iss).toBe(agentSigning.getPublicKey());
  expect(claims.nats.issuer_account).toBe(agentAccountKey('web-1', agentAccounts).getPublicKey());
  // The library stamps iat itself, possibly in the next second after exp was computed.
  expect(claims.exp! - claims.iat).toBeGreaterThanOrEqual(59);
  expect(claims.exp! - claims.iat).toBeLessThanOrEqual(60);
  expect(claims.nats.pub?.allow).toContain('agents.web-1.out.>');
  await expect(
    agentUserJwt({
      agentId: 'x',
      publicKey: createOperator().getPublicKey(),
      ttlSeconds: 0,
      keys: { agentSigning, agentAccounts },
    }),
  ).rejects.toThrow(/not a NATS user public key/);
});

test('agent account keys are derived per agent and installation, and are account keys', () => {
  const secret = randomBytes(32);
  const web1 = agentAccountKey('web-1', secret).getPublicKey();
  expect(web1).toMatch(/^A[A-Z2-7]{55}$/);
  expect(agentAccountKey('web-1', secret).getPublicKey()).toBe(web1);
  expect(agentAccountKey('web-2', secret).getPublicKey()).not.toBe(web1);
  expect(agentAccountKey('web-1', randomBytes(32)).getPublicKey()).not.toBe(web1);
});

test("an agent's account imports only its own subjects from the services' account, and exports nothing", () => {
  const services = createAccount().getPublicKey();
  const claims = agentAccountClaims('web-1', {
    servicesAccountPublicKey: services,
    agentSigningPublicKey: createAccount().getPublicKey(),
  });
  expect(claims.exports).toBeUndefined();
  expect(claims.limits).toMatchObject({ exports: 0, leaf: 0, disallow_bearer: true });
  expect(claims.limits).not.toHaveProperty('disk_storage');
  expect(
    claims.imports?.map(({ subject, local_subject, account, type }) => [
      subject,
      local_subject,
      account,
      type,
    ]),
  ).toEqual([
    ['agents.web-1.out.>', undefined, services, 'service'],
    [
      '$JS.API.CONSUMER.INFO.AGENTS.agent-web-1',
      '$CL.JS.API.CONSUMER.INFO.AGENTS.agent-web-1',
      services,
      'service',
    ],
    [
      '$JS.API.CONSUMER.MSG.NEXT.AGENTS.agent-web-1',
      '$CL.JS.API.CONSUMER.MSG.NEXT.AGENTS.agent-web-1',
      services,
      'service',
    ],
    ['$JS.ACK.AGENTS.agent-web-1.>', undefined, services, 'service'],
  ]);
  const revoked = agentAccountClaims('web-1', {
    servicesAccountPublicKey: services,
    agentSigningPublicKey: createAccount().getPublicKey(),
    revokedAt: 1_800_000_000,
  });
  expect(revoked.revocations).toEqual({ '*': 1_800_000_000 });
  expect(revoked.limits?.conn).toBe(0);
});

test("the services' account exports agents' subjects as services only (replies lead back to the requester)", () => {
  const claims = accountClaims({ accountSigning: createAccount() });
  expect(claims.exports?.map(({ subject, type, response_type }) => [subject, type, response_type])).toEqual([
    ['agents.*.out.>', 'service', 'Singleton'],
    ['$JS.API.CONSUMER.INFO.AGENTS.*', 'service', 'Singleton'],
    ['$JS.API.CONSUMER.MSG.NEXT.AGENTS.*', 'service', 'Stream'],
    ['$JS.ACK.AGENTS.*.>', 'service', 'Singleton'],
  ]);
  expect(JSON.stringify(claims.exports)).not.toMatch(/events|cmd\.|STREAM|"stream"/);
});
