import { decode, type User } from '@nats-io/jwt';
import { createAccount, createOperator, createUser, fromPublic } from '@nats-io/nkeys';
import { agentPermissions, agentUserJwt, keyFromSeed, seedOf } from './nats-claims.js';

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
        '$JS.API.CONSUMER.INFO.AGENTS.agent-web-1',
        '$JS.API.CONSUMER.MSG.NEXT.AGENTS.agent-web-1',
        '$JS.ACK.AGENTS.agent-web-1.>',
      ],
    },
    sub: { allow: ['_INBOX_web-1.>'] },
  });
  expect(JSON.stringify(permissions)).not.toMatch(/CREATE|STREAM|\*/);
});

test('an agent user JWT is issued by the account signing key for the agent key, with an expiry', async () => {
  const account = createAccount();
  const signing = keyFromSeed(seedOf(createAccount()));
  const agent = createUser();
  const token = await agentUserJwt({
    agentId: 'web-1',
    publicKey: agent.getPublicKey(),
    ttlSeconds: 60,
    keys: { account, accountSigning: signing },
  });
  const claims = decode<User>(token);
  expect(claims.sub).toBe(agent.getPublicKey());
  expect(claims.iss).toBe(signing.getPublicKey());
  expect(claims.nats.issuer_account).toBe(account.getPublicKey());
  // The library stamps iat itself, possibly in the next second after exp was computed.
  expect(claims.exp! - claims.iat).toBeGreaterThanOrEqual(59);
  expect(claims.exp! - claims.iat).toBeLessThanOrEqual(60);
  expect(claims.nats.pub?.allow).toContain('agents.web-1.out.>');
  await expect(
    agentUserJwt({
      agentId: 'x',
      publicKey: createOperator().getPublicKey(),
      ttlSeconds: 0,
      keys: { account, accountSigning: signing },
    }),
  ).rejects.toThrow(/not a NATS user public key/);
});
