import {
  addressPolicy,
  parseAddressRange,
  type DomainError,
  type NewEvent,
  type StoredEvent,
} from '#contracts';
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
let sequence = 0;

function stored(events: NewEvent[], at = now): StoredEvent[] {
  return events.map((event) => ({
    id: `e${++sequence}`,
    type: event.type,
    schemaVersion: 1,
    aggregate: { type: 'agent', id: 'x' },
    occurredAt: at.toISOString(),
    actor: { kind: 'system', id: 'test' },
    correlationId: 'c',
    causationId: null,
    data: event.data,
    sequence,
    subject: 'events.agent.x',
  }));
}

function refusal(run: () => unknown): DomainError {
  try {
    run();
  } catch (error) {
    return error as DomainError;
  }
  throw new Error('expected a refusal');
}

const enrollCommand = {
  agentId: 'web-1',
  publicAddress: '203.0.113.7',
  natsPublicKey: key,
  labels: { region: 'eu' },
  enrollmentTokenId: hash,
};

describe('enrollment tokens', () => {
  const issued = () =>
    foldToken(
      stored(
        decideIssueToken(
          foldToken([]),
          { tokenHash: hash, expiresAt: '2030-01-01T01:00:00.000Z' },
          now,
          policy,
        ),
      ),
    );

  test('a new token can be used once', () => {
    const token = issued();
    expect(decideUseToken(token, 'web-1', now)).toEqual([
      { type: 'EnrollmentTokenUsed', data: { agentId: 'web-1' } },
    ]);
    const used = foldToken([
      ...stored(
        decideIssueToken(
          foldToken([]),
          { tokenHash: hash, expiresAt: '2030-01-01T01:00:00.000Z' },
          now,
          policy,
        ),
      ),
      ...stored(decideUseToken(token, 'web-1', now)),
    ]);
    const error = refusal(() => decideUseToken(used, 'web-2', now));
    expect([error.code, error.message]).toEqual(['unauthorized', TOKEN_REFUSED]);
  });

  test('unknown and expired tokens are refused with the same answer', () => {
    expect(refusal(() => decideUseToken(foldToken([]), 'web-1', now)).message).toBe(TOKEN_REFUSED);
    const later = new Date('2030-01-01T01:00:00.000Z');
    expect(refusal(() => decideUseToken(issued(), 'web-1', later)).code).toBe('unauthorized');
  });

  test('an expiry in the past is invalid', () => {
    const error = refusal(() =>
      decideIssueToken(
        foldToken([]),
        { tokenHash: hash, expiresAt: '2029-12-31T23:59:59.000Z' },
        now,
        policy,
      ),
    );
    expect([error.code, error.field]).toEqual(['invalid', 'expiresAt']);
  });

  test('issuing the same token again is a retry: the same request appends nothing, another is refused', () => {
    // Later, with another expiry computed by the retry: still the first token, unchanged.
    const later = new Date('2030-01-01T00:30:00.000Z');
    expect(
      decideIssueToken(issued(), { tokenHash: hash, expiresAt: '2030-01-01T01:30:00.000Z' }, later, policy),
    ).toEqual([]);
    const other = refusal(() =>
      decideIssueToken(
        issued(),
        { tokenHash: hash, expiresAt: '2030-01-01T01:00:00.000Z', note: 'something else' },
        now,
        policy,
      ),
    );
    expect([other.code, other.field]).toEqual(['conflict', 'Idempotency-Key']);
    const approving = refusal(() =>
      decideIssueToken(
        issued(),
        { tokenHash: hash, expiresAt: '2030-01-01T01:00:00.000Z', approvedAddresses: ['203.0.113.9'] },
        now,
        policy,
      ),
    );
    expect(approving.field).toBe('Idempotency-Key');
  });

  test('a release undoes only the use by the same agent, and makes the token usable again', () => {
    const history = [
      ...stored(
        decideIssueToken(
          foldToken([]),
          { tokenHash: hash, expiresAt: '2030-01-01T01:00:00.000Z' },
          now,
          policy,
        ),
      ),
      ...stored([{ type: 'EnrollmentTokenUsed', data: { agentId: 'web-1' } }]),
    ];
    expect(decideReleaseToken(foldToken(history), 'other', 'x')).toEqual([]);
    const released = [...history, ...stored(decideReleaseToken(foldToken(history), 'web-1', 'id taken'))];
    expect(decideUseToken(foldToken(released), 'web-2', now)).toHaveLength(1);
  });
});

describe('agents', () => {
  const enrolled = () => stored(decideEnroll(foldAgent([]), enrollCommand));

  test('enrolling a free id, then the id is taken for good', () => {
    const history = enrolled();
    expect(foldAgent(history)).toMatchObject({
      status: 'enrolled',
      agentId: 'web-1',
      labels: { region: 'eu' },
    });
    expect(refusal(() => decideEnroll(foldAgent(history), enrollCommand)).code).toBe('conflict');
    const gone = [...history, ...stored(decideDeregister(foldAgent(history), 'web-1', 'bye'))];
    const error = refusal(() => decideEnroll(foldAgent(gone), enrollCommand));
    expect([error.code, error.field]).toEqual(['conflict', 'agentId']);
  });

  test('deregistration: unknown is not found, twice decides nothing, and credentials stop', () => {
    expect(refusal(() => decideDeregister(foldAgent([]), 'nope', 'x')).code).toBe('not_found');
    const history = enrolled();
    const events = decideDeregister(foldAgent(history), 'web-1', 'bye');
    expect(events).toEqual([{ type: 'AgentDeregistered', data: { agentId: 'web-1', reason: 'bye' } }]);
    const gone = foldAgent([...history, ...stored(events)]);
    expect(decideDeregister(gone, 'web-1', 'again')).toEqual([]);
    expect(refusal(() => checkActive(gone, 'web-1')).code).toBe('unauthorized');
    expect(() => checkActive(foldAgent(history), 'web-1')).not.toThrow();
  });

  test('liveness: online on the first heartbeat, offline only after the timeout, back on a heartbeat', () => {
    let history = enrolled();
    const seen = new Date('2030-01-01T00:00:10.000Z');
    expect(
      decideLivenessTimeout(foldAgent(history), seen, new Date('2030-01-02T00:00:00.000Z'), 1_000),
    ).toEqual([]);
    const online = decideHeartbeat(foldAgent(history), seen);
    expect(online).toEqual([
      { type: 'AgentCameOnline', data: { agentId: 'web-1', seenAt: seen.toISOString() } },
    ]);
    history = [...history, ...stored(online)];
    expect(decideHeartbeat(foldAgent(history), seen)).toEqual([]);
    expect(decideLivenessTimeout(foldAgent(history), seen, new Date(seen.getTime() + 1_000), 1_000)).toEqual(
      [],
    );
    const offline = decideLivenessTimeout(foldAgent(history), seen, new Date(seen.getTime() + 1_001), 1_000);
    expect(offline).toEqual([
      { type: 'AgentWentOffline', data: { agentId: 'web-1', lastSeenAt: seen.toISOString() } },
    ]);
    history = [...history, ...stored(offline)];
    expect(foldAgent(history).status).toBe('offline');
    expect(decideHeartbeat(foldAgent(history), now)).toHaveLength(1);
    const gone = [...history, ...stored(decideDeregister(foldAgent(history), 'web-1', 'bye'))];
    expect(decideHeartbeat(foldAgent(gone), now)).toEqual([]);
  });
});

describe('addresses', () => {
  const tokenApproving = (approvedAddresses?: string[]) =>
    foldToken(
      stored(
        decideIssueToken(
          foldToken([]),
          { tokenHash: hash, expiresAt: '2030-01-01T01:00:00.000Z', approvedAddresses },
          now,
          policy,
        ),
      ),
    );

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
    const error = refusal(() =>
      decideIssueToken(
        foldToken([]),
        {
          tokenHash: hash,
          expiresAt: '2030-01-01T01:00:00.000Z',
          approvedAddresses: ['203.0.113.8', '169.254.169.254'],
        },
        now,
        policy,
      ),
    );
    expect([error.code, error.field]).toEqual(['invalid', 'approvedAddresses.1']);
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
    expect(foldAddressHolders(stored(decideBindAddress('203.0.113.7', 'web-2', ['web-1'], true)))).toEqual([
      { agentId: 'web-2', shared: true },
    ]);
  });
});
