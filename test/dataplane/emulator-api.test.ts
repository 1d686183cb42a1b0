/**
 * The emulator's status codes, driven with the generated client; every request and answer is checked
 * against libs/dataplane/openapi.yaml. Each test runs its own HAProxy and emulator.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { readFile, writeFile } from 'node:fs/promises';
import { DataplaneClient, DataplaneError } from '#dataplane';
import { startHaproxyStack, type HaproxyStack, type HaproxyStackOptions } from '../harness/haproxy.js';
import { waitFor } from '../harness/processes.js';
import { validationRecorder, type ValidationRecorder } from './validation.js';

let stack: HaproxyStack | undefined;
let recorder: ValidationRecorder;
let client: DataplaneClient;

async function start(options: HaproxyStackOptions = {}): Promise<HaproxyStack> {
  stack = await startHaproxyStack(options);
  recorder = validationRecorder();
  client = stack.client({ middleware: [recorder.middleware] });
  return stack;
}

afterEach(async () => {
  await stack?.stop();
  stack = undefined;
});

/** The DataplaneError a call fails with (the test fails if it succeeds). */
async function failure(pending: Promise<unknown>): Promise<DataplaneError> {
  try {
    await pending;
  } catch (error) {
    if (error instanceof DataplaneError) return error;
    throw error;
  }
  throw new Error('expected the call to fail');
}

const backend = (name: string) => ({
  name,
  mode: 'http' as const,
  balance: { algorithm: 'roundrobin' as const },
});

describe('Data Plane API emulator: status codes', () => {
  it('answers 401 with WWW-Authenticate and the {code, message} body without valid credentials', async () => {
    const { dataplaneUrl } = await start();
    const wrong = stack!.client({ password: 'not-the-password', middleware: [recorder.middleware] });
    const error = await failure(wrong.getVersion());
    expect(error.status).toBe(401);
    expect(error.code).toBe(401);
    expect(error.message).toContain('unauthorized');
    for (const headers of [
      {} as Record<string, string>,
      { authorization: 'Bearer abc' },
      { authorization: 'Basic ' + btoa('admin:') },
    ]) {
      const response = await fetch(`${dataplaneUrl}/services/haproxy/configuration/version`, { headers });
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toBe('Basic realm="API"');
      expect(response.headers.get('configuration-version')).toBe('1');
      expect(await response.clone().json()).toEqual({ code: 401, message: 'unauthorized' });
      await recorder.checkRaw('GET', response.url, response);
    }
    expect(recorder.problems).toEqual([]);
  });

  it('runs a transaction: 201 start, 202 edits, 202 commit with Reload-ID, version +1 per commit, 404 afterwards', async () => {
    const { paths } = await start();
    expect(await client.getVersion()).toBe(1);
    const transaction = await client.startTransaction(1);
    expect(transaction).toEqual({ _version: 1, id: expect.any(String), status: 'in_progress' });
    const id = transaction.id!;
    const query = { transaction_id: id };
    const created = await client.unwrap(
      client.api.POST('/services/haproxy/configuration/backends', {
        params: { query },
        body: backend('be_app'),
      }),
    );
    expect(created.status).toBe(202);
    expect(created.reloadId).toBeUndefined();
    expect(created.data).toEqual(backend('be_app'));
    const server = await client.unwrap(
      client.api.POST('/services/haproxy/configuration/backends/{parent_name}/servers', {
        params: { path: { parent_name: 'be_app' }, query },
        body: { name: 'web1', address: '127.0.0.1', port: 9 },
      }),
    );
    expect(server.status).toBe(202);
    // Visible inside the transaction only.
    const inside = await client.unwrap(
      client.api.GET('/services/haproxy/configuration/backends/{name}', {
        params: { path: { name: 'be_app' }, query },
      }),
    );
    expect(inside.data).toEqual(backend('be_app'));
    expect(
      (
        await failure(
          client.unwrap(
            client.api.GET('/services/haproxy/configuration/backends/{name}', {
              params: { path: { name: 'be_app' } },
            }),
          ),
        )
      ).status,
    ).toBe(404);
    expect(await client.listTransactions('in_progress')).toEqual([transaction]);
    expect(await client.getTransaction(id)).toEqual(transaction);

    const committed = await client.commitTransaction(id);
    expect(committed.status).toBe(202);
    expect(committed.reloadId).toMatch(/^\d{4}-\d{2}-\d{2}-\d+$/);
    expect(committed.configurationVersion).toBe(2);
    expect(committed.data).toEqual({ _version: 1, id, status: 'success' });
    expect(await client.getVersion()).toBe(2);
    expect((await failure(client.getTransaction(id))).status).toBe(404);

    const text = await readFile(paths.config, 'utf8');
    expect(text.split('\n')[0]).toBe('# _version=2');
    expect(text).toContain(
      'backend be_app\n    mode http\n    balance roundrobin\n    server web1 127.0.0.1:9\n',
    );

    const before = await stack!.showProc();
    await waitFor(
      'the reload',
      async () => (await client.getReload(committed.reloadId!)).status === 'succeeded',
    );
    const after = await stack!.showProc();
    expect(after.reloads).toBe(before.reloads + 1);
    expect(await client.getReloads()).toContainEqual(
      expect.objectContaining({ id: committed.reloadId, status: 'succeeded' }),
    );
    expect(recorder.problems).toEqual([]);
  });

  it('answers 409 for a stale version (start and ?version= writes) and for an object that already exists', async () => {
    await start();
    await client.unwrap(
      client.api.POST('/services/haproxy/configuration/backends', {
        params: { query: { version: 1 } },
        body: backend('be_a'),
      }),
    );
    expect(await client.getVersion()).toBe(2);
    const stale = await failure(client.startTransaction(1));
    expect(stale.status).toBe(409);
    expect(stale.message).toBe('version mismatch: version in configuration file is 2, given version is 1');
    expect(stale.configurationVersion).toBe(2);
    const staleWrite = await failure(
      client.unwrap(
        client.api.POST('/services/haproxy/configuration/backends', {
          params: { query: { version: 1 } },
          body: backend('be_b'),
        }),
      ),
    );
    expect(staleWrite.status).toBe(409);
    const duplicate = await failure(
      client.unwrap(
        client.api.POST('/services/haproxy/configuration/backends', {
          params: { query: { version: 2 } },
          body: backend('be_a'),
        }),
      ),
    );
    expect(duplicate.status).toBe(409);
    const id = (await client.startTransaction(2)).id!;
    const duplicateInTransaction = await failure(
      client.unwrap(
        client.api.POST('/services/haproxy/configuration/frontends/{parent_name}/binds', {
          params: { path: { parent_name: 'fe_http' }, query: { transaction_id: id } },
          body: { name: 'http', port: 81 },
        }),
      ),
    );
    expect(duplicateInTransaction.status).toBe(409);
    expect(await client.getVersion()).toBe(2);
    expect(recorder.problems).toEqual([]);
  });

  it('answers 406 when committing a transaction that another commit made outdated', async () => {
    await start();
    const first = (await client.startTransaction(1)).id!;
    const second = (await client.startTransaction(1)).id!;
    await client.unwrap(
      client.api.POST('/services/haproxy/configuration/backends', {
        params: { query: { transaction_id: first } },
        body: backend('be_one'),
      }),
    );
    await client.unwrap(
      client.api.POST('/services/haproxy/configuration/backends', {
        params: { query: { transaction_id: second } },
        body: backend('be_two'),
      }),
    );
    expect((await client.commitTransaction(first)).status).toBe(202);
    expect((await client.getTransaction(second)).status).toBe('outdated');
    const outdated = await failure(client.commitTransaction(second));
    expect(outdated.status).toBe(406);
    expect(outdated.message).toBe(`transaction ${second} is outdated and cannot be committed`);
    await client.deleteTransaction(second);
    expect(await client.getVersion()).toBe(2);
    expect(recorder.problems).toEqual([]);
  });

  it('answers 400 for an unknown transaction on an edit and for neither, both or force_reload with a transaction', async () => {
    const { dataplaneUrl, credentials } = await start();
    const unknown = await failure(
      client.unwrap(
        client.api.POST('/services/haproxy/configuration/backends', {
          params: { query: { transaction_id: '7f0c6f4e-0000-4000-8000-000000000000' } },
          body: backend('be_x'),
        }),
      ),
    );
    expect(unknown.status).toBe(400);
    expect(unknown.message).toBe('transaction does not exist: 7f0c6f4e-0000-4000-8000-000000000000');
    const neither = await failure(
      client.unwrap(
        client.api.POST('/services/haproxy/configuration/backends', {
          params: { query: {} },
          body: backend('be_x'),
        }),
      ),
    );
    expect(neither.status).toBe(400);
    expect(neither.message).toMatch(/version or transaction not specified/);
    const id = (await client.startTransaction(1)).id!;
    const both = await failure(
      client.unwrap(
        client.api.DELETE('/services/haproxy/configuration/backends/{name}', {
          params: { path: { name: 'be_no_route' }, query: { transaction_id: id, version: 1 } },
        }),
      ),
    );
    expect(both.status).toBe(400);
    const forced = await failure(
      client.unwrap(
        client.api.DELETE('/services/haproxy/configuration/backends/{name}', {
          params: { path: { name: 'be_no_route' }, query: { transaction_id: id, force_reload: true } },
        }),
      ),
    );
    expect(forced.status).toBe(400);
    expect(forced.message).toBe('Both force_reload and transaction specified, specify only one');
    // A query parameter of the wrong type is a 400 as well (checked against the document).
    const auth = { authorization: 'Basic ' + btoa(`${credentials.username}:${credentials.password}`) };
    const badType = await fetch(`${dataplaneUrl}/services/haproxy/transactions?version=abc`, {
      method: 'POST',
      headers: auth,
    });
    expect(badType.status).toBe(400);
    await recorder.checkRaw('POST', badType.url, badType);
    expect(recorder.problems).toEqual([]);
  });

  it('answers 422 for a body outside the schema, and 404/405 for unknown paths and methods', async () => {
    const { dataplaneUrl, credentials } = await start();
    const headers = {
      authorization: 'Basic ' + btoa(`${credentials.username}:${credentials.password}`),
      'content-type': 'application/json',
    };
    const unknownField = await fetch(`${dataplaneUrl}/services/haproxy/configuration/backends?version=1`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ name: 'be_x', quic: true }),
    });
    expect(unknownField.status).toBe(422);
    expect((await unknownField.clone().json()).code).toBe(422);
    await recorder.checkRaw('POST', unknownField.url, unknownField);
    const newline = await fetch(`${dataplaneUrl}/services/haproxy/configuration/backends?version=1`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ name: 'be_x\nbackend evil' }),
    });
    expect(newline.status).toBe(422);
    const unknownPath = await fetch(`${dataplaneUrl}/services/haproxy/nothing`, { headers });
    expect(unknownPath.status).toBe(404);
    expect(await unknownPath.json()).toEqual({
      code: 404,
      message: 'path /v3/services/haproxy/nothing was not found',
    });
    const wrongMethod = await fetch(`${dataplaneUrl}/services/haproxy/configuration/version`, {
      method: 'DELETE',
      headers,
    });
    expect(wrongMethod.status).toBe(405);
    expect(await client.getVersion()).toBe(1);
    expect(recorder.problems).toEqual([]);
  });

  it('answers 400 when haproxy -c rejects a commit, marks the transaction failed (406 on retry) and leaves haproxy.cfg alone', async () => {
    const { paths } = await start();
    const before = await readFile(paths.config, 'utf8');
    const id = (await client.startTransaction(1)).id!;
    await client.unwrap(
      client.api.PUT('/services/haproxy/configuration/frontends/{name}', {
        params: { path: { name: 'fe_http' }, query: { transaction_id: id } },
        body: { name: 'fe_http', mode: 'http', default_backend: 'be_does_not_exist' },
      }),
    );
    const rejected = await failure(client.commitTransaction(id));
    expect(rejected.status).toBe(400);
    expect(rejected.message).toMatch(/^validation error: exit status 1: err transactionId=/);
    expect(rejected.message).toContain('be_does_not_exist');
    expect((await client.getTransaction(id)).status).toBe('failed');
    expect((await failure(client.commitTransaction(id))).status).toBe(406);
    expect(await readFile(paths.config, 'utf8')).toBe(before);
    expect(await client.getVersion()).toBe(1);
    // The same through ?version=: 400 and nothing written.
    const implicit = await failure(
      client.unwrap(
        client.api.PUT('/services/haproxy/configuration/frontends/{name}', {
          params: { path: { name: 'fe_http' }, query: { version: 1 } },
          body: { name: 'fe_http', mode: 'http', default_backend: 'be_does_not_exist' },
        }),
      ),
    );
    expect(implicit.status).toBe(400);
    expect(await readFile(paths.config, 'utf8')).toBe(before);
    expect(recorder.problems).toEqual([]);
  });

  it('answers 404 for missing objects, transactions and reloads', async () => {
    await start();
    const get = (path: Promise<unknown>) => failure(path).then((error) => error.status);
    expect(
      await get(
        client.unwrap(
          client.api.GET('/services/haproxy/configuration/frontends/{name}', {
            params: { path: { name: 'nope' } },
          }),
        ),
      ),
    ).toBe(404);
    expect(
      await get(
        client.unwrap(
          client.api.GET('/services/haproxy/configuration/backends/{parent_name}/servers/{name}', {
            params: { path: { parent_name: 'be_no_route', name: 'nope' } },
          }),
        ),
      ),
    ).toBe(404);
    expect(
      await get(
        client.unwrap(
          client.api.GET('/services/haproxy/configuration/frontends/{parent_name}/acls/{index}', {
            params: { path: { parent_name: 'fe_https', index: 3 } },
          }),
        ),
      ),
    ).toBe(404);
    expect(
      await get(
        client.unwrap(
          client.api.DELETE('/services/haproxy/configuration/backends/{name}', {
            params: { path: { name: 'nope' }, query: { version: 1 } },
          }),
        ),
      ),
    ).toBe(404);
    expect(await get(client.getTransaction('nope'))).toBe(404);
    expect(await get(client.commitTransaction('nope'))).toBe(404);
    expect(await get(client.deleteTransaction('nope'))).toBe(404);
    expect(await get(client.getReload('2999-01-01-5'))).toBe(404);
    expect(recorder.problems).toEqual([]);
  });

  it('answers 429 past max_open_transactions; failed and outdated transactions do not count; 204 on delete', async () => {
    await start({ maxOpenTransactions: 3 });
    const ids = [];
    for (let index = 0; index < 3; index++) ids.push((await client.startTransaction(1)).id!);
    const refused = await failure(client.startTransaction(1));
    expect(refused.status).toBe(429);
    expect(refused.message).toBe(
      'cannot start a new transaction, reached the maximum amount of 3 active transactions available',
    );
    const deleted = await client.unwrap(
      client.api.DELETE('/services/haproxy/transactions/{id}', { params: { path: { id: ids[0] } } }),
    );
    expect(deleted.status).toBe(204);
    expect(deleted.data).toBeUndefined();
    const fourth = (await client.startTransaction(1)).id!;
    // A commit outdates the other three: they stop counting.
    await client.commitTransaction(fourth);
    for (let index = 0; index < 3; index++) await client.startTransaction(2);
    expect((await failure(client.startTransaction(2))).status).toBe(429);
    expect(await client.listTransactions('in_progress')).toHaveLength(3);
    expect(recorder.problems).toEqual([]);
  });

  it('reloads synchronously with force_reload: 200 on commit, 201 on create, 200 on replace, 204 on delete', async () => {
    await start({ reloadDelayMs: 60_000 });
    const reloads = async () => (await stack!.showProc()).reloads;
    const start0 = await reloads();
    const id = (await client.startTransaction(1)).id!;
    await client.unwrap(
      client.api.POST('/services/haproxy/configuration/backends', {
        params: { query: { transaction_id: id } },
        body: backend('be_f'),
      }),
    );
    const commit = await client.commitTransaction(id, { forceReload: true });
    expect(commit.status).toBe(200);
    expect(commit.reloadId).toBeUndefined();
    expect(await reloads()).toBe(start0 + 1);
    const created = await client.unwrap(
      client.api.POST('/services/haproxy/configuration/backends', {
        params: { query: { version: 2, force_reload: true } },
        body: backend('be_g'),
      }),
    );
    expect(created.status).toBe(201);
    expect(await reloads()).toBe(start0 + 2);
    const replaced = await client.unwrap(
      client.api.PUT('/services/haproxy/configuration/backends/{name}', {
        params: { path: { name: 'be_g' }, query: { version: 3, force_reload: true } },
        body: { ...backend('be_g'), server_timeout: 60_000 },
      }),
    );
    expect(replaced.status).toBe(200);
    const removed = await client.unwrap(
      client.api.DELETE('/services/haproxy/configuration/backends/{name}', {
        params: { path: { name: 'be_f' }, query: { version: 4, force_reload: true } },
      }),
    );
    expect(removed.status).toBe(204);
    expect(await reloads()).toBe(start0 + 4);
    expect(await client.getVersion()).toBe(5);
    expect(recorder.problems).toEqual([]);
  });

  it('coalesces the commits of one reload_delay window into one Reload-ID and one reload', async () => {
    // dataplaneapi's default window: wide enough for two commits even on a loaded machine.
    await start({ reloadDelayMs: 5000 });
    const before = (await stack!.showProc()).reloads;
    const first = await client.unwrap(
      client.api.POST('/services/haproxy/configuration/backends', {
        params: { query: { version: 1 } },
        body: backend('be_1'),
      }),
    );
    const second = await client.unwrap(
      client.api.POST('/services/haproxy/configuration/backends', {
        params: { query: { version: 2 } },
        body: backend('be_2'),
      }),
    );
    expect(first.status).toBe(202);
    expect(second.reloadId).toBe(first.reloadId);
    expect(await client.getReloads()).toContainEqual({ id: first.reloadId, status: 'in_progress' });
    await waitFor(
      'the coalesced reload',
      async () => (await client.getReload(first.reloadId!)).status === 'succeeded',
    );
    expect((await stack!.showProc()).reloads).toBe(before + 1);
    const third = await client.unwrap(
      client.api.POST('/services/haproxy/configuration/backends', {
        params: { query: { version: 3 } },
        body: backend('be_3'),
      }),
    );
    expect(third.reloadId).not.toBe(first.reloadId);
    expect(recorder.problems).toEqual([]);
  });

  it('edits binds and indexed rules (insert at index, replace one or all, delete) and reads full sections', async () => {
    await start();
    const id = (await client.startTransaction(1)).id!;
    const query = { transaction_id: id };
    const path = { parent_name: 'fe_https' };
    await client.unwrap(
      client.api.POST('/services/haproxy/configuration/frontends/{parent_name}/acls/{index}', {
        params: { path: { ...path, index: 0 }, query },
        body: { acl_name: 'is_admin', criterion: 'src', value: '10.0.0.0/8' },
      }),
    );
    await client.unwrap(
      client.api.POST(
        '/services/haproxy/configuration/frontends/{parent_name}/backend_switching_rules/{index}',
        {
          params: { path: { ...path, index: 0 }, query },
          body: { name: 'be_no_route', cond: 'if', cond_test: 'is_admin' },
        },
      ),
    );
    const outOfRange = await failure(
      client.unwrap(
        client.api.POST(
          '/services/haproxy/configuration/frontends/{parent_name}/http_request_rules/{index}',
          {
            params: { path: { ...path, index: 9 }, query },
            body: { type: 'deny' },
          },
        ),
      ),
    );
    expect(outOfRange.status).toBe(400);
    await client.unwrap(
      client.api.PUT('/services/haproxy/configuration/frontends/{parent_name}/http_request_rules', {
        params: { path, query },
        body: [
          { type: 'set-header', hdr_name: 'X-Forwarded-Proto', hdr_format: 'https' },
          { type: 'deny', deny_status: 403, cond: 'if', cond_test: '{ path_beg /private }' },
        ],
      }),
    );
    await client.unwrap(
      client.api.PUT('/services/haproxy/configuration/frontends/{parent_name}/binds/{name}', {
        params: { path: { ...path, name: 'https' }, query },
        body: {
          name: 'https',
          address: '127.0.0.1',
          port: stack!.ports.https,
          ssl: true,
          ssl_certificate: stack!.paths.sslDir + '/',
          strict_sni: false,
        },
      }),
    );
    const removed = await client.unwrap(
      client.api.DELETE('/services/haproxy/configuration/frontends/{parent_name}/acls/{index}', {
        params: { path: { parent_name: 'fe_https', index: 0 }, query },
      }),
    );
    expect(removed.status).toBe(202);
    const full = await client.unwrap(
      client.api.GET('/services/haproxy/configuration/frontends/{name}', {
        params: { path: { name: 'fe_https' }, query: { ...query, full_section: true } },
      }),
    );
    expect(full.data.binds?.https).toEqual(
      expect.objectContaining({ name: 'https', ssl: true, port: stack!.ports.https }),
    );
    expect(full.data.backend_switching_rule_list?.[0]).toEqual({
      name: 'be_no_route',
      cond: 'if',
      cond_test: 'is_admin',
    });
    expect(full.data.http_request_rule_list).toHaveLength(2);
    // The ACL the use_backend rule needs is gone: haproxy -c refuses the commit.
    expect((await failure(client.commitTransaction(id))).status).toBe(400);

    const again = (await client.startTransaction(1)).id!;
    await client.unwrap(
      client.api.PUT('/services/haproxy/configuration/frontends/{parent_name}/acls', {
        params: { path, query: { transaction_id: again } },
        body: [{ acl_name: 'is_admin', criterion: 'src', value: '10.0.0.0/8' }],
      }),
    );
    await client.unwrap(
      client.api.POST(
        '/services/haproxy/configuration/frontends/{parent_name}/backend_switching_rules/{index}',
        {
          params: { path: { ...path, index: 0 }, query: { transaction_id: again } },
          body: { name: 'be_no_route', cond: 'if', cond_test: 'is_admin' },
        },
      ),
    );
    expect((await client.commitTransaction(again)).status).toBe(202);
    const rules = await client.unwrap(
      client.api.GET('/services/haproxy/configuration/frontends/{parent_name}/backend_switching_rules', {
        params: { path },
      }),
    );
    expect(rules.data.map((rule) => rule.name)).toEqual(['be_no_route', '%[var(txn.route),word(1,|)]']);
    const acls = await client.unwrap(
      client.api.GET('/services/haproxy/configuration/frontends/{parent_name}/acls', {
        params: { path, query: { acl_name: 'is_admin' } },
      }),
    );
    expect(acls.data).toEqual([{ acl_name: 'is_admin', criterion: 'src', value: '10.0.0.0/8' }]);
    expect(recorder.problems).toEqual([]);
  });

  it('adopts a hand edit of haproxy.cfg like the inotify watcher: version + 1, no reload', async () => {
    const { paths } = await start();
    const transaction = await client.startTransaction(1);
    const before = await stack!.showProc();
    const edited = (await readFile(paths.config, 'utf8')).replace(
      'backend be_dyn_tcp\n    mode tcp\n',
      'backend be_dyn_tcp\n    mode tcp\n    timeout server 2m\n',
    );
    await writeFile(paths.config, edited);
    await waitFor('the hand edit to be adopted', async () => (await client.getVersion()) === 2);
    const backendRead = await client.unwrap(
      client.api.GET('/services/haproxy/configuration/backends/{name}', {
        params: { path: { name: 'be_dyn_tcp' }, query: {} },
      }),
    );
    expect(backendRead.data.server_timeout).toBe(120_000);
    const text = await readFile(paths.config, 'utf8');
    expect(text.split('\n')[0]).toBe('# _version=2');
    expect(text).toContain('    timeout server 2m\n');
    // A client that planned on version 1 must re-read.
    expect((await failure(client.commitTransaction(transaction.id!))).status).toBe(409);
    expect(await stack!.showProc()).toEqual(expect.objectContaining({ reloads: before.reloads }));
    expect(recorder.problems).toEqual([]);
  });

  it('replaces a runtime map atomically when the payload is above 8 KiB, in pieces the CLI accepts', async () => {
    await start();
    const path = { parent_name: 'hosts' };
    await client.unwrap(
      client.api.POST('/services/haproxy/runtime/maps/{parent_name}/entries', {
        params: { path },
        body: { key: 'old.apps.test', value: 'be_no_route' },
      }),
    );
    const entries = Array.from({ length: 3000 }, (_, index) => ({
      key: `host-${index}.apps.test`,
      value: `be_dyn_http|10.0.${Math.floor(index / 250)}.${index % 250}|8080`,
    }));
    const replaced = await client.unwrap(
      client.api.PUT('/services/haproxy/runtime/maps/{name}', {
        params: { path: { name: 'hosts' } },
        body: entries,
      }),
    );
    expect(replaced.status).toBe(201);
    const read = await client.unwrap(
      client.api.GET('/services/haproxy/runtime/maps/{parent_name}/entries', { params: { path } }),
    );
    expect(read.data).toHaveLength(3000);
    expect(read.data.some((entry) => entry.key === 'old.apps.test')).toBe(false);
    expect(read.data.at(-1)).toEqual(expect.objectContaining(entries[entries.length - 1]));
    expect(recorder.problems).toEqual([]);
  });

  it('reports health, API info and the running worker', async () => {
    await start();
    expect((await client.unwrap(client.api.GET('/health'))).data).toEqual({ haproxy: 'unknown' });
    const info = await client.unwrap(client.api.GET('/info'));
    expect(info.data.api?.version).toContain('emulator');
    const processInfo = await client.getProcessInfo();
    const proc = await stack!.showProc();
    expect(processInfo.info?.pid).toBe(proc.workers[0].pid);
    expect(processInfo.info?.version).toMatch(/^2\.6\./);
    expect(recorder.problems).toEqual([]);
  });
});
