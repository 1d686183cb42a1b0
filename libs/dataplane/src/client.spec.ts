import { describe, expect, it } from '@jest/globals';
import {
  DataplaneClient,
  DataplaneError,
  DataplaneUnreachableError,
  HaproxyUnreachableError,
} from './client.js';

const client = new DataplaneClient({
  baseUrl: 'http://127.0.0.1:1/v3',
  username: 'admin',
  password: 'secret',
});

/** What openapi-fetch resolves with for an error answer. */
function answered(status: number, message: string) {
  return Promise.resolve({ error: { code: status, message }, response: new Response(null, { status }) });
}

async function failure(pending: Promise<unknown>): Promise<unknown> {
  try {
    await pending;
  } catch (error) {
    return error;
  }
  throw new Error('the call succeeded');
}

describe('errors of the Data Plane API client', () => {
  it('raises DataplaneUnreachableError when the API does not answer (refused, reset, timed out)', async () => {
    for (const cause of [new TypeError('fetch failed'), new DOMException('timed out', 'TimeoutError')]) {
      const error = await failure(client.unwrap(Promise.reject(cause)));
      expect(error).toBeInstanceOf(DataplaneUnreachableError);
      expect((error as Error).message).toBe(cause.message);
      expect((error as Error).cause).toBe(cause);
    }
  });

  it('passes other errors through as they are', async () => {
    const cause = new SyntaxError('Unexpected token < in JSON');
    expect(await failure(client.unwrap(Promise.reject(cause)))).toBe(cause);
  });

  it('raises HaproxyUnreachableError for a 5xx about the runtime socket, DataplaneError otherwise', async () => {
    const down = await failure(client.unwrap(answered(500, '/run/haproxy/stats: connect ENOENT')));
    expect(down).toBeInstanceOf(HaproxyUnreachableError);
    expect(down).toBeInstanceOf(DataplaneError);
    expect((down as DataplaneError).status).toBe(500);
    for (const [status, message] of [
      [500, 'internal error'],
      [400, 'socket option refused'],
    ] as const) {
      const other = await failure(client.unwrap(answered(status, message)));
      expect(other).toBeInstanceOf(DataplaneError);
      expect(other).not.toBeInstanceOf(HaproxyUnreachableError);
    }
    expect(
      ((await failure(client.unwrap(answered(401, 'unauthorized')))) as DataplaneError).isUnauthorized,
    ).toBe(true);
  });
});
