/**
 * withTransaction against the emulator: two clients racing on one version (one commits, the other gets
 * 409 or 406 and succeeds after re-planning), cleanup of transactions on every error, bounded retries.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { DataplaneClient, DataplaneError, withTransaction, type TransactionContext } from '#dataplane';
import { startHaproxyStack, type HaproxyStack } from '../harness/haproxy.js';
import { validationRecorder, type ValidationRecorder } from './validation.js';

let stack: HaproxyStack | undefined;

afterEach(async () => {
  await stack?.stop();
  stack = undefined;
});

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((done) => (resolve = done));
  return { promise, resolve };
}

/** Plans "add backend <name>" from what the transaction sees: skips it when already there. */
async function addBackend(client: DataplaneClient, tx: TransactionContext, name: string): Promise<string[]> {
  const existing = await client.unwrap(
    client.api.GET('/services/haproxy/configuration/backends', {
      params: { query: { transaction_id: tx.id } },
    }),
  );
  const names = existing.data.map((backend) => backend.name);
  if (!names.includes(name)) {
    await client.unwrap(
      client.api.POST('/services/haproxy/configuration/backends', {
        params: { query: { transaction_id: tx.id } },
        body: { name, mode: 'http', balance: { algorithm: 'roundrobin' } },
      }),
    );
  }
  return names;
}

async function backendNames(client: DataplaneClient): Promise<string[]> {
  const { data } = await client.unwrap(client.api.GET('/services/haproxy/configuration/backends'));
  return data.map((backend) => backend.name).sort();
}

describe('withTransaction', () => {
  it('two clients race on one version: one commits, the other gets 409 and succeeds after re-planning', async () => {
    stack = await startHaproxyStack();
    const recordA = validationRecorder();
    const recordB = validationRecorder();
    const a = stack.client({ middleware: [recordA.middleware] });
    // B reads the version, then its POST /transactions waits until A has committed: a stale start.
    const aCommitted = deferred();
    let held = false;
    const b = stack.client({
      middleware: [
        recordB.middleware,
        {
          async onRequest({ request }) {
            if (
              !held &&
              request.method === 'POST' &&
              new URL(request.url).pathname.endsWith('/transactions')
            ) {
              held = true;
              await aCommitted.promise;
            }
            return request;
          },
        },
      ],
    });
    const both = await Promise.all([
      withTransaction(a, (tx) => addBackend(a, tx, 'be_a')).then((outcome) => {
        aCommitted.resolve();
        return outcome;
      }),
      withTransaction(b, (tx) => addBackend(b, tx, 'be_b')),
    ]);
    expect(both[0].attempts).toBe(1);
    expect(both[1].attempts).toBe(2);
    const conflicts = recordB.exchanges.filter((exchange) => exchange.status === 409);
    expect(conflicts).toEqual([
      expect.objectContaining({ method: 'POST', path: '/services/haproxy/transactions' }),
    ]);
    // B re-planned on the fresh version: it saw A's backend.
    expect(both[1].result).toContain('be_a');
    expect(await backendNames(a)).toEqual([
      'be_a',
      'be_b',
      'be_dyn_http',
      'be_dyn_https',
      'be_dyn_tcp',
      'be_no_route',
      'be_no_route_tcp',
      'st_targets',
    ]);
    expect(await a.getVersion()).toBe(3);
    expect(await a.listTransactions()).toEqual([]);
    expect([...recordA.problems, ...recordB.problems]).toEqual([]);
  });

  it('two open transactions on one version: the later commit gets 406 (outdated) and succeeds after re-planning', async () => {
    stack = await startHaproxyStack();
    const recordB = validationRecorder();
    const a = stack.client();
    const b = stack.client({ middleware: [recordB.middleware] });
    const bPlanned = deferred();
    const aCommitted = deferred();
    const both = await Promise.all([
      (async () => {
        await bPlanned.promise;
        const outcome = await withTransaction(a, (tx) => addBackend(a, tx, 'be_a'));
        aCommitted.resolve();
        return outcome;
      })(),
      withTransaction(b, async (tx) => {
        const seen = await addBackend(b, tx, 'be_b');
        if (tx.attempt === 1) {
          bPlanned.resolve();
          await aCommitted.promise;
        }
        return seen;
      }),
    ]);
    expect(both[1].attempts).toBe(2);
    expect(recordB.exchanges).toContainEqual(
      expect.objectContaining({
        method: 'PUT',
        status: 406,
        path: expect.stringMatching(/^\/services\/haproxy\/transactions\//),
      }),
    );
    // The outdated transaction was deleted by the helper.
    expect(recordB.exchanges).toContainEqual(expect.objectContaining({ method: 'DELETE', status: 204 }));
    expect(both[1].result).toContain('be_a');
    expect(await backendNames(a)).toEqual([
      'be_a',
      'be_b',
      'be_dyn_http',
      'be_dyn_https',
      'be_dyn_tcp',
      'be_no_route',
      'be_no_route_tcp',
      'st_targets',
    ]);
    expect(await a.listTransactions()).toEqual([]);
    expect(recordB.problems).toEqual([]);
  });

  it('deletes its transaction when the work or the commit fails, and gives up after maxAttempts', async () => {
    stack = await startHaproxyStack();
    const recorder: ValidationRecorder = validationRecorder();
    const client = stack.client({ middleware: [recorder.middleware] });
    await expect(
      withTransaction(client, async () => {
        throw new Error('planning failed');
      }),
    ).rejects.toThrow('planning failed');
    const refused = await withTransaction(client, async (tx) => {
      await client.unwrap(
        client.api.PUT('/services/haproxy/configuration/frontends/{name}', {
          params: { path: { name: 'fe_http' }, query: { transaction_id: tx.id } },
          body: { name: 'fe_http', mode: 'http', default_backend: 'be_missing' },
        }),
      );
    }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(DataplaneError);
    expect((refused as DataplaneError).status).toBe(400);
    // Someone else commits during every attempt: the helper stops after maxAttempts with the last 406.
    const other = stack.client();
    let attempts = 0;
    const exhausted = await withTransaction(
      client,
      async (tx) => {
        attempts++;
        await addBackend(client, tx, 'be_never');
        const version = await other.getVersion();
        await other.unwrap(
          other.api.POST('/services/haproxy/configuration/backends', {
            params: { query: { version } },
            body: { name: `be_other_${attempts}`, mode: 'http' },
          }),
        );
      },
      { maxAttempts: 3, retryDelayMs: 1 },
    ).catch((error: unknown) => error);
    expect(attempts).toBe(3);
    expect((exhausted as DataplaneError).status).toBe(406);
    expect(await client.listTransactions()).toEqual([]);
    expect(await backendNames(client)).not.toContain('be_never');
    expect(recorder.problems).toEqual([]);
  });
});
