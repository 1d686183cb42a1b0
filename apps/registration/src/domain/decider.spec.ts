import { addressPolicy, parseAddressRange } from '#contracts';
import { deciderSpec, refusal } from '#testing';
import {
  checkActive,
  checkEnrollmentAddress,
  decideBindAddress,
  decideDeregister,
  decideEnroll,
  decideHeartbeat,
  decideIssueToken,
  decideLivenessTimeout,
  decideReleaseToken,
  decideUseToken,
  foldAddressHolders,
  foldAgent,
  foldToken,
  TOKEN_REFUSED,
} from './decider.js';

const hash = 'a'.repeat(64);
const key = 'U' + 'A'.repeat(55);
const now = new Date('2030-01-01T00:00:00.000Z');
/** Documentation addresses stand in for public ones; 10.1.0.0/16 is this installation's private network. */
const policy = addressPolicy(
  ['192.0.2.0/24', '198.51.100.0/24', '203.0.113.0/24', '10.1.0.0/16'].map(parseAddressRange),
  ['198.51.100.250'],
);
const givenToken = deciderSpec(foldToken, { aggregate: { type: 'enrollment-token', id: hash }, at: now });
const givenAgent = deciderSpec(foldAgent, { aggregate: { type: 'agent', id: 'web-1' }, at: now });
const givenAddress = deciderSpec(foldAddressHolders, { aggregate: { type: 'address', id: '203.0.113.7' } });

const enrollCommand = {
  agentId: 'web-1',
  publicAddress: '203.0.113.7',
  natsPublicKey: key,
  labels: { region: 'eu' },
  enrollmentTokenId: hash,
};

describe('enrollment tokens', () => {
  const issue = { tokenHash: hash, expiresAt: '2030-01-01T01:00:00.000Z' };
  const issuedEvents = () => decideIssueToken(givenToken().state, issue, now, policy);

  test('a new token can be used once', () => {
    givenToken()
      .when((token) => decideIssueToken(token, issue, now, policy))
      .then([{ type: 'EnrollmentTokenIssued', data: issue }]);
    givenToken(issuedEvents())
      .when((token) => decideUseToken(token, 'web-1', now))
      .then([{ type: 'EnrollmentTokenUsed', data: { agentId: 'web-1' } }]);
    const error = givenToken(issuedEvents(), [{ type: 'EnrollmentTokenUsed', data: { agentId: 'web-1' } }])
      .when((used) => decideUseToken(used, 'web-2', now))
      .thenRefuses('unauthorized');
    expect(error.message).toBe(TOKEN_REFUSED);
  });

  test('unknown and expired tokens are refused with the same answer', () => {
    const unknown = givenToken()
      .when((token) => decideUseToken(token, 'web-1', now))
      .thenRefuses('unauthorized');
    expect(unknown.message).toBe(TOKEN_REFUSED);
    const later = new Date('2030-01-01T01:00:00.000Z');
    const expired = givenToken(issuedEvents())
      .when((token) => decideUseToken(token, 'web-1', later))
      .thenRefuses('unauthorized');
    expect(expired.message).toBe(TOKEN_REFUSED);
  });

  test('an expiry in the past is invalid', () => {
    givenToken()
      .when((token) =>
        decideIssueToken(token, { tokenHash: hash, expiresAt: '2029-12-31T23:59:59.000Z' }, now, policy),
      )
      .thenRefuses('invalid', 'expiresAt');
  });

  test('issuing the same token again is a retry: the same request appends nothing, another is refused', () => {
    // Later, with another expiry computed by the retry: still the first token, unchanged.
    const later = new Date('2030-01-01T00:30:00.000Z');
    const token = givenToken(issuedEvents());
    token
      .when((state) =>
        decideIssueToken(state, { tokenHash: hash, expiresAt: '2030-01-01T01:30:00.000Z' }, later, policy),
      )
      .then([]);
    token
      .when((state) => decideIssueToken(state, { ...issue, note: 'something else' }, now, policy))
      .thenRefuses('conflict', 'Idempotency-Key');
    token
      .when((state) => decideIssueToken(state, { ...issue, approvedAddresses: ['203.0.113.9'] }, now, policy))
      .thenRefuses('conflict', 'Idempotency-Key');
  });

  test('a release undoes only the use by the same agent, and makes the token usable again', () => {
    const used = givenToken(issuedEvents(), [{ type: 'EnrollmentTokenUsed', data: { agentId: 'web-1' } }]);
    used.when((token) => decideReleaseToken(token, 'other', 'x')).then([]);
    const release = decideReleaseToken(used.state, 'web-1', 'id taken');
    expect(release).toEqual([
      { type: 'EnrollmentTokenReleased', data: { agentId: 'web-1', reason: 'id taken' } },
    ]);
    givenToken(used.events, release)
      .when((token) => decideUseToken(token, 'web-2', now))
      .then([{ type: 'EnrollmentTokenUsed', data: { agentId: 'web-2' } }]);
  });
});

describe('agents', () => {
  const enrolled = [{ type: 'AgentEnrolled' as const, data: enrollCommand }];
  const deregistered = [{ type: 'AgentDeregistered' as const, data: { agentId: 'web-1', reason: 'bye' } }];

  test('enrolling a free id, then the id is taken for good', () => {
    givenAgent()
      .when((agent) => decideEnroll(agent, enrollCommand))
      .then(enrolled);
    expect(givenAgent(enrolled).state).toMatchObject({
      status: 'enrolled',
      agentId: 'web-1',
      labels: { region: 'eu' },
    });
    givenAgent(enrolled)
      .when((agent) => decideEnroll(agent, enrollCommand))
      .thenRefuses('conflict', 'agentId');
    givenAgent(enrolled, deregistered)
      .when((agent) => decideEnroll(agent, enrollCommand))
      .thenRefuses('conflict', 'agentId');
  });

  test('deregistration: unknown is not found, twice decides nothing, and credentials stop', () => {
    givenAgent()
      .when((agent) => decideDeregister(agent, 'nope', 'x'))
      .thenRefuses('not_found');
    givenAgent(enrolled)
      .when((agent) => decideDeregister(agent, 'web-1', 'bye'))
      .then(deregistered);
    const gone = givenAgent(enrolled, deregistered);
    gone.when((agent) => decideDeregister(agent, 'web-1', 'again')).then([]);
    gone.when((agent) => checkActive(agent, 'web-1')).thenRefuses('unauthorized');
    expect(() => checkActive(givenAgent(enrolled).state, 'web-1')).not.toThrow();
  });

  test('liveness: online on the first heartbeat, offline only after the timeout, back on a heartbeat', () => {
    const seen = new Date('2030-01-01T00:00:10.000Z');
    const online = [
      { type: 'AgentCameOnline' as const, data: { agentId: 'web-1', seenAt: seen.toISOString() } },
    ];
    const offline = [
      { type: 'AgentWentOffline' as const, data: { agentId: 'web-1', lastSeenAt: seen.toISOString() } },
    ];
    givenAgent(enrolled)
      .when((agent) => decideLivenessTimeout(agent, seen, new Date('2030-01-02T00:00:00.000Z'), 1_000))
      .then([]);
    givenAgent(enrolled)
      .when((agent) => decideHeartbeat(agent, seen))
      .then(online);
    givenAgent(enrolled, online)
      .when((agent) => decideHeartbeat(agent, seen))
      .then([]);
    givenAgent(enrolled, online)
      .when((agent) => decideLivenessTimeout(agent, seen, new Date(seen.getTime() + 1_000), 1_000))
      .then([]);
    givenAgent(enrolled, online)
      .when((agent) => decideLivenessTimeout(agent, seen, new Date(seen.getTime() + 1_001), 1_000))
      .then(offline);
    expect(givenAgent(enrolled, online, offline).state.status).toBe('offline');
    givenAgent(enrolled, online, offline)
      .when((agent) => decideHeartbeat(agent, now))
      .then([{ type: 'AgentCameOnline', data: { agentId: 'web-1', seenAt: now.toISOString() } }]);
    givenAgent(enrolled, online, offline, deregistered)
      .when((agent) => decideHeartbeat(agent, now))
      .then([]);
  });
});

describe('addresses', () => {
  const tokenApproving = (approvedAddresses?: string[]) =>
    givenToken([
      {
        type: 'EnrollmentTokenIssued',
        data: { tokenHash: hash, expiresAt: '2030-01-01T01:00:00.000Z', approvedAddresses },
      },
    ]).state;

  test('an agent enrolls with the address it came from, in canonical form', () => {
    expect(
      checkEnrollmentAddress(
        policy,
        { publicAddress: '203.0.113.7', sourceAddress: '::ffff:203.0.113.7' },
        tokenApproving(),
      ),
    ).toBe('203.0.113.7');
  });

  test.each([
    ['127.0.0.1', 'loopback'],
    ['0.0.0.0', 'unspecified'],
    ['::', 'unspecified'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['169.254.169.254', 'link-local'],
    ['224.0.0.1', 'multicast'],
    ['10.0.0.1', 'private'],
    ['198.51.100.250', 'front'],
  ])('%s is refused (%s) even when it is where the enrollment came from', (address) => {
    const error = refusal(() =>
      checkEnrollmentAddress(policy, { publicAddress: address, sourceAddress: address }, tokenApproving()),
    );
    expect([error.code, error.field]).toEqual(['invalid', 'publicAddress']);
  });

  test('another address is forbidden unless the token approves it', () => {
    const request = { publicAddress: '203.0.113.8', sourceAddress: '203.0.113.7' };
    const error = refusal(() => checkEnrollmentAddress(policy, request, tokenApproving()));
    expect([error.code, error.field]).toEqual(['forbidden', 'publicAddress']);
    expect(checkEnrollmentAddress(policy, request, tokenApproving(['203.0.113.8']))).toBe('203.0.113.8');
    // A private address of the installation's own network may be approved; a front's never.
    expect(
      checkEnrollmentAddress(
        policy,
        { publicAddress: '10.1.2.3', sourceAddress: '203.0.113.7' },
        tokenApproving(['10.1.2.3']),
      ),
    ).toBe('10.1.2.3');
  });

  test('a token cannot approve an address the policy refuses, and names which one', () => {
    givenToken()
      .when((token) =>
        decideIssueToken(
          token,
          {
            tokenHash: hash,
            expiresAt: '2030-01-01T01:00:00.000Z',
            approvedAddresses: ['203.0.113.8', '169.254.169.254'],
          },
          now,
          policy,
        ),
      )
      .thenRefuses('invalid', 'approvedAddresses.1');
  });

  test('an address held by a live agent is refused with 409, unless the admin approved sharing it', () => {
    const error = refusal(() => decideBindAddress('203.0.113.7', 'web-2', ['web-1'], false));
    expect([error.code, error.field]).toEqual(['conflict', 'publicAddress']);
    expect(error.message).toContain('web-1');
    expect(decideBindAddress('203.0.113.7', 'web-2', ['web-1'], true)).toEqual([
      { type: 'AddressBound', data: { address: '203.0.113.7', agentId: 'web-2', shared: true } },
    ]);
    // Nobody else holds it (the earlier holder left, or it is this agent's own retry): a plain binding.
    expect(decideBindAddress('203.0.113.7', 'web-1', ['web-1'], false)).toEqual([
      { type: 'AddressBound', data: { address: '203.0.113.7', agentId: 'web-1', shared: false } },
    ]);
    expect(givenAddress(decideBindAddress('203.0.113.7', 'web-2', ['web-1'], true)).state).toEqual([
      { agentId: 'web-2', shared: true },
    ]);
  });
});
