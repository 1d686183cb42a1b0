import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { jetstream } from '@nats-io/jetstream';
import type { AgentsStack, EnrolledAgent } from '../harness/stack.js';
import { repoRoot } from '../harness/apps.js';
import { waitFor } from '../harness/processes.js';
import { openStore, startRoutesStack } from '../routes/helpers.js';

/**
 * Issue 14: one bad message becomes a dead letter per consumer that met it. An admin sees them grouped
 * by message, dismisses one or all of a message (an audited event, with a reason), and the CLI does the
 * same from a shell: list, show, retry, dismiss.
 */
let stack: AgentsStack;
let admin: string;
let agent: EnrolledAgent;

beforeAll(async () => {
  stack = await startRoutesStack();
  admin = stack.adminToken('letters-admin');
  agent = await stack.enroll('letters-agent');
});

afterAll(async () => {
  await stack?.stop();
});

const run = promisify(execFile);
const cli = (args: string[]) =>
  run(process.execPath, [join(repoRoot, 'dist/apps/cli/src/main.js'), ...args], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', ...stack.env },
  });

interface Letter {
  id: string;
  consumer: string;
  status: string;
}

/** Bytes that are not an event on a route's subject: every reader of routes dead-letters them. */
async function poison(suffix: string): Promise<{ sequence: number; letters: Letter[] }> {
  const ack = await jetstream(stack.service).publish(
    `events.route.00000000-0000-4000-8000-00000000${suffix}`,
    '[]',
  );
  // The route projections and routing each record one; wait until they stop arriving.
  let seen = 0;
  const letters = await waitFor(
    `the dead letters of sequence ${ack.seq}`,
    async () => {
      const rows: Letter[] = await stack.db.dataSource.query(
        `SELECT id::text AS id, consumer, status FROM dead_letters WHERE sequence = $1 ORDER BY id`,
        [ack.seq],
      );
      const settled = rows.length >= 2 && rows.length === seen;
      seen = rows.length;
      return settled ? rows : undefined;
    },
    { intervalMs: 1_000, timeoutMs: 30_000 },
  );
  return { sequence: ack.seq, letters };
}

test('the letters of one message are shown together, and dismissing them all is one audited event', async () => {
  const { sequence, letters } = await poison('00a1');
  expect(new Set(letters.map((letter) => letter.consumer)).size).toBe(letters.length);
  expect(letters.map((letter) => letter.consumer)).toEqual(
    expect.arrayContaining(['projection:event_log', 'projection:routes', 'projection:hostnames']),
  );

  const grouped = await stack.request('GET', 'admin/dead-letters/messages?status=open', { token: admin });
  expect(grouped.status).toBe(200);
  const message = (grouped.body.messages as { sequence: number }[]).find(
    (item) => item.sequence === sequence,
  );
  expect(message).toMatchObject({
    sequence,
    subject: 'events.route.00000000-0000-4000-8000-0000000000a1',
    waiting: letters.length,
  });
  expect((message as unknown as { letters: Letter[] }).letters.map((letter) => letter.id).sort()).toEqual(
    letters.map((letter) => letter.id).sort(),
  );

  // Refusals change nothing and append nothing.
  const before = await stack.lastEventSequence();
  const byAgent = await stack.request('POST', `admin/dead-letters/${letters[0]!.id}/dismiss`, {
    token: agent.accessToken,
    body: { reason: 'not yours' },
  });
  expect(byAgent.status).toBe(403);
  const noReason = await stack.request('POST', `admin/dead-letters/${letters[0]!.id}/dismiss`, {
    token: admin,
    body: { scope: 'message' },
  });
  expect(noReason).toMatchObject({ status: 400, body: { field: 'reason' } });
  const badScope = await stack.request('POST', `admin/dead-letters/${letters[0]!.id}/dismiss`, {
    token: admin,
    body: { reason: 'x', scope: 'everything' },
  });
  expect(badScope).toMatchObject({ status: 400, body: { field: 'scope' } });
  const missing = await stack.request('POST', 'admin/dead-letters/999999999/dismiss', {
    token: admin,
    body: { reason: 'nothing there' },
  });
  expect(missing.status).toBe(404);
  expect(await stack.lastEventSequence()).toBe(before);

  const dismissed = await stack.request('POST', `admin/dead-letters/${letters[0]!.id}/dismiss`, {
    token: admin,
    body: { reason: 'bytes written before agents had accounts', scope: 'message' },
  });
  expect(dismissed).toMatchObject({ status: 200, body: { sequence, changed: true } });
  expect(dismissed.body.dismissed).toHaveLength(letters.length);
  const rows: { status: string }[] = await stack.db.dataSource.query(
    'SELECT status FROM dead_letters WHERE sequence = $1',
    [sequence],
  );
  expect(rows.map((row) => row.status)).toEqual(letters.map(() => 'dismissed'));

  const store = await openStore(stack);
  const history = await store.readAggregate('dead-letter', String(sequence));
  expect(history.events).toHaveLength(1);
  expect(history.events[0]).toMatchObject({
    type: 'DeadLettersDismissed',
    actor: { kind: 'admin', id: 'letters-admin' },
    data: {
      stream: 'EVENTS',
      sequence,
      consumers: letters.map((letter) => letter.consumer),
      reason: 'bytes written before agents had accounts',
    },
  });

  // Again: nothing waits any more, nothing is appended; a dismissed letter cannot be retried.
  const again = await stack.request('POST', `admin/dead-letters/${letters[1]!.id}/dismiss`, {
    token: admin,
    body: { reason: 'twice', scope: 'message' },
  });
  expect(again).toMatchObject({ status: 200, body: { changed: false, dismissed: [] } });
  expect((await store.readAggregate('dead-letter', String(sequence))).events).toHaveLength(1);
  const retry = await stack.request('POST', `admin/dead-letters/${letters[1]!.id}/retry`, { token: admin });
  expect(retry.status).toBe(409);
  const open = await stack.request('GET', 'admin/dead-letters/messages?status=open', { token: admin });
  expect((open.body.messages as { sequence: number }[]).some((item) => item.sequence === sequence)).toBe(
    false,
  );
});

test('one letter can be dismissed alone; the rest of its message keeps waiting', async () => {
  const { sequence, letters } = await poison('00a2');
  const one = letters.find((letter) => letter.consumer === 'projection:agents')!;
  const dismissed = await stack.request('POST', `admin/dead-letters/${one.id}/dismiss`, {
    token: admin,
    body: { reason: 'the agents projection never needs this one' },
  });
  expect(dismissed.body).toMatchObject({
    changed: true,
    dismissed: [{ id: one.id, consumer: 'projection:agents' }],
  });
  const grouped = await stack.request('GET', 'admin/dead-letters/messages', { token: admin });
  const message = (grouped.body.messages as { sequence: number; waiting: number }[]).find(
    (item) => item.sequence === sequence,
  );
  expect(message?.waiting).toBe(letters.length - 1);
});

test('the CLI lists, shows, retries and dismisses, with only its output on stdout', async () => {
  const { sequence, letters } = await poison('00a3');
  const listed = JSON.parse(
    (await cli(['dead-letters', 'list', '--by-message', '--status', 'open', '--json'])).stdout,
  ) as { sequence: number; letters: Letter[] }[];
  const message = listed.find((item) => item.sequence === sequence);
  expect(message?.letters).toHaveLength(letters.length);

  const flat = JSON.parse(
    (await cli(['dead-letters', 'list', '--consumer', 'projection:routes', '--json'])).stdout,
  ) as Letter[];
  expect(flat.every((letter) => letter.consumer === 'projection:routes')).toBe(true);
  const routing = letters.find((letter) => letter.consumer === 'projection:routes')!;
  expect(flat.some((letter) => letter.id === routing.id)).toBe(true);

  const shown = JSON.parse((await cli(['dead-letters', 'show', routing.id])).stdout);
  expect(shown).toMatchObject({ id: routing.id, sequence, consumer: 'projection:routes', status: 'open' });

  // A projection's letter is retried by a rebuild, which meets the undecodable bytes again: the CLI
  // waits for the rebuild, says so, and the letter waits again.
  const retried = await cli(['dead-letters', 'retry', routing.id]).catch(
    (error: { stdout: string; code: number }) => error,
  );
  expect((retried as { code?: number }).code).toBe(1);
  expect(JSON.parse(retried.stdout)).toMatchObject({ outcome: 'rebuilding', deadLetter: { status: 'open' } });
  expect((await stack.request('GET', `admin/dead-letters/${routing.id}`, { token: admin })).body.status).toBe(
    'open',
  );

  await expect(cli(['dead-letters', 'dismiss', routing.id])).rejects.toMatchObject({ code: 2 });
  const dismissed = JSON.parse(
    (await cli(['dead-letters', 'dismiss', routing.id, '--message', '--reason', 'cleared from the CLI']))
      .stdout,
  );
  expect(dismissed).toMatchObject({ sequence, changed: true });
  expect(dismissed.dismissed).toHaveLength(letters.length);
  const store = await openStore(stack);
  const [event] = (await store.readAggregate('dead-letter', String(sequence))).events;
  expect(event).toMatchObject({ type: 'DeadLettersDismissed', actor: { kind: 'admin' } });
  expect((event!.actor as { id: string }).id).toMatch(/^cli:/);
});
