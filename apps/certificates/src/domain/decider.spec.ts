import type { NewEvent, StoredEvent } from '#contracts';
import { deciderSpec, refusal, stored } from '#testing';
import {
  checkAgentUsable,
  checkIssue,
  checkRequester,
  decideConfirm,
  decideIssue,
  decideRecordFront,
  decideRevoke,
  decideRevokeAll,
  foldAgentLife,
  foldHolder,
  foldHostnameHolder,
  ownedNames,
  type IssuedData,
} from './decider.js';

const now = new Date('2030-01-01T00:00:00.000Z');
const later = (seconds: number) => new Date(now.getTime() + seconds * 1000).toISOString();
const holder = { aggregate: { type: 'certificate' as const, id: 'db-1' }, at: now };
const givenHolder = deciderSpec(foldHolder, holder);
const givenAgent = deciderSpec(foldAgentLife, { aggregate: { type: 'agent', id: 'db-1' }, at: now });
const givenHostname = deciderSpec(foldHostnameHolder, {
  aggregate: { type: 'hostname', id: 'a.example.com' },
});

const pem = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
function certificate(
  serial: string,
  key: string,
  names = ['db-1.mongodb.example.com'],
  notAfter = later(3600),
): IssuedData {
  return {
    serial,
    agentId: 'db-1',
    names,
    notBefore: now.toISOString(),
    notAfter,
    fingerprint: serial.padEnd(64, '0'),
    publicKeyFingerprint: key.padEnd(64, 'a'),
    issuerFingerprint: 'c'.repeat(64),
    certificatePem: pem,
    chainPem: pem,
  };
}

/** A holder's history built by deciding, as the service does. */
class History {
  events: StoredEvent[] = [];
  get state() {
    return givenHolder(this.events).state;
  }
  add(events: NewEvent[]): NewEvent[] {
    this.events.push(...stored(events, holder));
    return events;
  }
  /** Given this history, when `decide`: `.then(events)` or `.thenRefuses(code, field)`. */
  when<R>(decide: (state: History['state']) => R) {
    return givenHolder(this.events).when(decide);
  }
}

describe('issuing', () => {
  test('a new key is issued; the same key and names again is the same certificate, nothing decided', () => {
    const history = new History();
    const first = certificate('01', 'k1');
    const request = { publicKeyFingerprint: first.publicKeyFingerprint, names: first.names };
    expect(checkIssue(history.state, request, now)).toBeUndefined();
    expect(history.add(decideIssue(history.state, request, first, now))).toEqual([
      { type: 'CertificateIssued', data: first },
    ]);
    expect(checkIssue(history.state, request, now)?.serial).toBe('01');
    history.when((state) => decideIssue(state, request, certificate('02', 'k1'), now)).then([]);
    // Other names for the same key, or the same key after expiry: a new certificate.
    const otherNames = { ...request, names: ['db-1.mongodb.example.com', 'x.db-1.mongodb.example.com'] };
    expect(checkIssue(history.state, otherNames, now)).toBeUndefined();
    expect(checkIssue(history.state, request, new Date(now.getTime() + 7_200_000))).toBeUndefined();
  });

  test('a renewal names what it replaces; unknown, revoked or superseded ones are refused', () => {
    const history = new History();
    const first = certificate('01', 'k1');
    history.add(
      decideIssue(
        history.state,
        { publicKeyFingerprint: first.publicKeyFingerprint, names: first.names },
        first,
        now,
      ),
    );
    const renewal = certificate('02', 'k2');
    const request = {
      publicKeyFingerprint: renewal.publicKeyFingerprint,
      names: renewal.names,
      replaces: '01',
    };
    history
      .when((state) => decideIssue(state, request, renewal, now))
      .then([{ type: 'CertificateRenewed', data: { ...renewal, replaces: '01' } }]);
    history
      .when((state) => checkIssue(state, { ...request, replaces: '99' }, now))
      .thenRefuses('not_found', 'replaces');

    history.add(decideIssue(history.state, request, renewal, now));
    history.add(decideConfirm(history.state, '02', { status: 'none' }));
    const replacedAgain = history
      .when((state) =>
        checkIssue(
          state,
          { publicKeyFingerprint: 'k3'.padEnd(64, 'a'), names: renewal.names, replaces: '01' },
          now,
        ),
      )
      .thenRefuses('conflict', 'replaces');
    expect(replacedAgain.message).toMatch(/already replaced by 02/);

    history.add(decideRevoke(history.state, '02', 'keyCompromise', 'test'));
    history
      .when((state) =>
        checkIssue(
          state,
          { publicKeyFingerprint: 'k4'.padEnd(64, 'a'), names: renewal.names, replaces: '02' },
          now,
        ),
      )
      .thenRefuses('conflict', 'replaces');
  });

  test('a key whose certificate was revoked is never certified again', () => {
    const history = new History();
    const first = certificate('01', 'k1');
    const request = { publicKeyFingerprint: first.publicKeyFingerprint, names: first.names };
    history.add(decideIssue(history.state, request, first, now));
    history.add(decideRevoke(history.state, '01', 'keyCompromise', 'leaked'));
    history.when((state) => checkIssue(state, request, now)).thenRefuses('conflict', 'csr');
  });

  test('requester, agent and names policies', () => {
    expect(refusal(() => checkRequester({ kind: 'agent', id: 'db-2' }, 'db-1')).field).toBe('agentId');
    expect(() => checkRequester({ kind: 'agent', id: 'db-1' }, 'db-1')).not.toThrow();
    expect(() => checkRequester({ kind: 'admin', id: 'alice' }, 'db-1')).not.toThrow();

    givenAgent()
      .when((agent) => checkAgentUsable(agent, 'db-1'))
      .thenRefuses('not_found', 'agentId');
    const enrolled: NewEvent[] = [
      {
        type: 'AgentEnrolled',
        data: {
          agentId: 'db-1',
          publicAddress: '192.0.2.1',
          labels: {},
          natsPublicKey: 'U' + 'A'.repeat(55),
          enrollmentTokenId: 'x',
        },
      },
    ];
    expect(() => checkAgentUsable(givenAgent(enrolled).state, 'db-1')).not.toThrow();
    givenAgent(enrolled, [{ type: 'AgentDeregistered', data: { agentId: 'db-1', reason: 'x' } }])
      .when((agent) => checkAgentUsable(agent, 'db-1'))
      .thenRefuses('conflict', 'agentId');

    const routeId = '3f1e2d3c-4b5a-4a69-8877-665544332211';
    const claim: NewEvent[] = [
      { type: 'HostnameClaimed', data: { hostname: 'a.example.com', routeId, agentId: 'db-1' } },
    ];
    const release: NewEvent[] = [{ type: 'HostnameReleased', data: { hostname: 'a.example.com', routeId } }];
    const holders = new Map([
      ['a.example.com', givenHostname(claim).state],
      ['b.example.com', givenHostname(claim, release).state],
      ['c.example.com', { agentId: 'db-2', routeId }],
    ]);
    expect(ownedNames('db-1', 'db-1.mongodb.example.com', holders)).toEqual([
      'db-1.mongodb.example.com',
      'a.example.com',
    ]);
  });
});

describe('installing, superseding, revoking', () => {
  test('confirming a renewal supersedes what it replaces and its never-installed siblings; again: nothing', () => {
    const history = new History();
    const issue = (data: IssuedData, replaces?: string) =>
      history.add(
        decideIssue(
          history.state,
          { publicKeyFingerprint: data.publicKeyFingerprint, names: data.names, replaces },
          data,
          now,
        ),
      );
    issue(certificate('01', 'k1'));
    expect(history.add(decideConfirm(history.state, '01', { status: 'succeeded' }))).toEqual([
      { type: 'CertificateInstalled', data: { serial: '01', hook: 'succeeded', hookDetail: null } },
    ]);
    issue(certificate('02', 'k2'), '01'); // the agent lost this one's key
    issue(certificate('03', 'k3'), '01');
    history
      .when((state) => decideConfirm(state, '03', { status: 'failed', detail: 'exit code 1' }))
      .then([
        { type: 'CertificateInstalled', data: { serial: '03', hook: 'failed', hookDetail: 'exit code 1' } },
        { type: 'CertificateSuperseded', data: { serial: '01', by: '03' } },
        { type: 'CertificateSuperseded', data: { serial: '02', by: '03' } },
      ]);
    history.add(decideConfirm(history.state, '03', { status: 'none' }));
    history.when((state) => decideConfirm(state, '03', { status: 'none' })).then([]);
    expect(history.state.certificates.get('01')).toMatchObject({ status: 'superseded', supersededBy: '03' });
    history
      .when((state) => decideConfirm(state, '99', { status: 'none' }))
      .thenRefuses('not_found', 'serial');
  });

  test('revoking: once; a revoked certificate cannot be confirmed; deregistration revokes every valid one', () => {
    const history = new History();
    const issue = (data: IssuedData) =>
      history.add(
        decideIssue(
          history.state,
          { publicKeyFingerprint: data.publicKeyFingerprint, names: data.names },
          data,
          now,
        ),
      );
    issue(certificate('01', 'k1'));
    issue(certificate('02', 'k2', ['db-1.mongodb.example.com'], later(-10))); // already expired
    issue(certificate('03', 'k3', ['x.example.com']));
    history.add(decideRevoke(history.state, '03', 'superseded', 'test'));
    history.when((state) => decideRevoke(state, '03', 'superseded', 'again')).then([]);
    history.when((state) => decideConfirm(state, '03', { status: 'none' })).thenRefuses('conflict', 'serial');
    history.when((state) => decideRevoke(state, '99', 'unspecified', 'x')).thenRefuses('not_found', 'serial');
    const all = decideRevokeAll(history.state, now, 'cessationOfOperation', 'agent deregistered');
    expect(all).toEqual([
      {
        type: 'CertificateRevoked',
        data: { serial: '01', reason: 'cessationOfOperation', detail: 'agent deregistered' },
      },
    ]);
    history.add(all);
    history.when((state) => decideRevokeAll(state, now, 'cessationOfOperation', 'again')).then([]);
  });

  test('the front certificate is recorded once, installed at once, superseding the previous one', () => {
    const history = new History();
    const first = {
      ...certificate('01', 'k1', ['*.apps.example.com', '*.mongodb.example.com']),
      agentId: null,
    };
    expect(history.add(decideRecordFront(history.state, first)).map((event) => event.type)).toEqual([
      'CertificateIssued',
      'CertificateInstalled',
    ]);
    history.when((state) => decideRecordFront(state, first)).then([]);
    const second = { ...first, serial: '02', publicKeyFingerprint: 'k2'.padEnd(64, 'a') };
    history
      .when((state) => decideRecordFront(state, second))
      .then([
        { type: 'CertificateRenewed', data: { ...second, replaces: '01' } },
        { type: 'CertificateInstalled', data: { serial: '02', hook: 'none', hookDetail: null } },
        { type: 'CertificateSuperseded', data: { serial: '01', by: '02' } },
      ]);
  });
});

/**
 * A decision of several events is appended one event at a time: a writer that stops between two appends
 * leaves a prefix. Deciding again on the history with that prefix must give exactly the rest.
 */
function expectResumable(history: History, decide: (state: History['state']) => NewEvent[]): void {
  const whole = decide(history.state);
  expect(whole.length).toBeGreaterThan(1);
  for (let written = 1; written < whole.length; written++) {
    givenHolder(history.events, whole.slice(0, written)).when(decide).then(whole.slice(written));
  }
}

describe('a decision half written is completed by the next one', () => {
  test('recording the front certificate, first and renewed', () => {
    const history = new History();
    const first = { ...certificate('01', 'k1', ['*.apps.example.com']), agentId: null };
    expectResumable(history, (state) => decideRecordFront(state, first));
    history.add(decideRecordFront(history.state, first));
    const second = { ...first, serial: '02', publicKeyFingerprint: 'k2'.padEnd(64, 'a') };
    expectResumable(history, (state) => decideRecordFront(state, second));
  });

  test('confirming a renewal that supersedes two', () => {
    const history = new History();
    const issue = (data: IssuedData, replaces?: string) =>
      history.add(
        decideIssue(
          history.state,
          { publicKeyFingerprint: data.publicKeyFingerprint, names: data.names, replaces },
          data,
          now,
        ),
      );
    issue(certificate('01', 'k1'));
    history.add(decideConfirm(history.state, '01', { status: 'succeeded' }));
    issue(certificate('02', 'k2'), '01');
    issue(certificate('03', 'k3'), '01');
    expectResumable(history, (state) => decideConfirm(state, '03', { status: 'succeeded' }));
  });
});
