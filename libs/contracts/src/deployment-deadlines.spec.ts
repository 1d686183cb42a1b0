import { deploymentDeadline, type DeadlineInput } from './deployment-deadlines.js';

const limits = {
  claim: 1800,
  fetch: 300,
  build: 900,
  start: 60,
  health: 40,
  switch: 60,
  verify: 20,
  drain: 45,
  cancel: 60,
  slack: 15,
};
const t0 = '2030-01-01T00:00:00.000Z';
const ms = (seconds: number) => Date.parse(t0) + seconds * 1000;
const input = (over: Partial<DeadlineInput>): DeadlineInput => ({
  status: 'requested',
  kind: 'deploy',
  enteredAt: t0,
  limits,
  cancelRequestedAt: null,
  activeSince: t0,
  ...over,
});

describe('the deadline of a deployment status', () => {
  test('each working status: entered at + its limit + slack', () => {
    const cases: [DeadlineInput['status'], string, number][] = [
      ['claimed', 'fetch', 300],
      ['fetched', 'build', 900],
      ['built', 'start', 60],
      ['started', 'health', 40],
      ['healthy', 'switch', 60],
      ['switched', 'verify', 20],
      ['reverting', 'revert', 60],
      ['verified', 'drain', 45],
      ['drained', 'drain', 45],
    ];
    for (const [status, kind, seconds] of cases) {
      expect({ status, ...deploymentDeadline(input({ status })) }).toEqual({
        status,
        at: ms(seconds + 15),
        kind,
        limitSeconds: seconds,
      });
    }
  });

  test('a claimed rollback starts a kept release: the start limit, not the fetch', () => {
    expect(deploymentDeadline(input({ status: 'claimed', kind: 'rollback' }))).toEqual({
      at: ms(75),
      kind: 'start',
      limitSeconds: 60,
    });
  });

  test('waiting for a claim counts from when it became active; a queued one has no deadline', () => {
    const activated = new Date(ms(100)).toISOString();
    expect(deploymentDeadline(input({ activeSince: activated }))).toEqual({
      at: ms(100 + 1800 + 15),
      kind: 'claim',
      limitSeconds: 1800,
    });
    // Active before it was even requested (the record is older): from the request.
    expect(deploymentDeadline(input({ activeSince: new Date(ms(-50)).toISOString() }))!.at).toBe(ms(1815));
    expect(deploymentDeadline(input({ activeSince: null }))).toBeNull();
  });

  test('a cancel request bounds a claimed deployment until it is verified', () => {
    const cancelRequestedAt = new Date(ms(500)).toISOString();
    expect(deploymentDeadline(input({ status: 'built', cancelRequestedAt }))).toEqual({
      at: ms(575),
      kind: 'cancel',
      limitSeconds: 60,
    });
    expect(deploymentDeadline(input({ status: 'verified', cancelRequestedAt }))!.kind).toBe('drain');
    expect(deploymentDeadline(input({ status: 'requested', cancelRequestedAt }))!.kind).toBe('claim');
  });

  test('terminal statuses have none', () => {
    for (const status of ['succeeded', 'failed', 'cancelled', 'abandoned'] as const) {
      expect(deploymentDeadline(input({ status }))).toBeNull();
    }
  });
});
