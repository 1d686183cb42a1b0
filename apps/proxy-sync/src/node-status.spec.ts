import { describe, expect, it } from '@jest/globals';
import { DataplaneError, DataplaneUnreachableError, HaproxyUnreachableError } from '#dataplane';
import { NoHaproxyWorkerError } from './gateway.js';
import { NotVerifiedError } from './map-writes.js';
import { statusOfError } from './node-status.js';

const answer = (status: number, message = 'refused') =>
  new DataplaneError(status, status, message, 3, '/v3/services/haproxy/transactions/x');

describe('the status of a failed pass', () => {
  it.each<[string, unknown, 'unreachable' | 'degraded']>([
    [
      'no answer from the Data Plane API',
      new DataplaneUnreachableError(new TypeError('fetch failed')),
      'unreachable',
    ],
    [
      'HAProxy behind the API not answering',
      new HaproxyUnreachableError(
        500,
        500,
        'connect ECONNREFUSED',
        undefined,
        '/v3/services/haproxy/runtime/info',
      ),
      'unreachable',
    ],
    ['no worker pid', new NoHaproxyWorkerError('no pid'), 'unreachable'],
    ['credentials refused', answer(401), 'unreachable'],
    ['a change refused by haproxy -c', answer(400, 'validation error: haproxy -c failed'), 'degraded'],
    ['a 5xx that is not about HAProxy', answer(500, 'internal error'), 'degraded'],
    [
      'maps not holding what was written',
      new NotVerifiedError('hosts.map does not hold 1 change(s)'),
      'degraded',
    ],
    [
      'any other error, whatever its message says',
      new Error('timeout waiting for the projection'),
      'degraded',
    ],
  ])('%s: %s', (_, error, status) => {
    expect(statusOfError(error)).toBe(status);
  });
});
