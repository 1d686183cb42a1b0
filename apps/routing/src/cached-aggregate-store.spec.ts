import { DomainError } from '#contracts';
import { asUnavailable, isTransientNatsError, retryTransient } from './cached-aggregate-store.js';

const busy = Object.assign(new Error('jetstream is not enabled'), { name: 'JetStreamNotEnabled' });

test('broker trouble is transient; a refusal or a bug is not', () => {
  expect(isTransientNatsError(busy)).toBe(true);
  expect(isTransientNatsError(Object.assign(new Error('timeout'), { name: 'TimeoutError' }))).toBe(true);
  expect(isTransientNatsError(new Error('503 no responders available'))).toBe(true);
  expect(isTransientNatsError(new DomainError('conflict', 'taken'))).toBe(false);
  expect(isTransientNatsError(new TypeError('x is undefined'))).toBe(false);
  expect(asUnavailable(busy)).toMatchObject({ code: 'unavailable' });
  const other = new Error('bug');
  expect(asUnavailable(other)).toBe(other);
});

test('transient failures are retried a bounded number of times; others at once fail', async () => {
  let calls = 0;
  await expect(
    retryTransient(async () => {
      if (++calls < 3) throw busy;
      return 'ok';
    }, [1, 1, 1]),
  ).resolves.toBe('ok');
  expect(calls).toBe(3);
  calls = 0;
  await expect(
    retryTransient(async () => {
      calls++;
      throw busy;
    }, [1, 1]),
  ).rejects.toBe(busy);
  expect(calls).toBe(3);
  calls = 0;
  await expect(
    retryTransient(async () => {
      calls++;
      throw new Error('bug');
    }, [1, 1]),
  ).rejects.toThrow('bug');
  expect(calls).toBe(1);
});
