import type { Msg } from '@nats-io/transport-node';
import type { CommandReply } from '#contracts';
import { createLogger } from '#platform';
import { agentRouteRequests, MAX_IN_FLIGHT_PER_AGENT } from './agent-requests.js';
import type { RoutingCommands } from './routing.commands.js';

const routeId = '11111111-1111-5111-8111-111111111111';

/** A request as NATS delivers it; the reply is captured. */
function message(subject: string, body: unknown, replies: CommandReply[], reply = '_R_.abc.def'): Msg {
  return {
    subject,
    data: new TextEncoder().encode(JSON.stringify(body)),
    headers: undefined,
    reply,
    respond: (data: string) => {
      replies.push(JSON.parse(data) as CommandReply);
      return true;
    },
  } as unknown as Msg;
}

test('the agent comes from the subject; each agent has at most a bounded number of requests in flight', async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const seen: string[] = [];
  const commands = {
    get: async (actor: { id: string }) => {
      seen.push(actor.id);
      await gate;
      return { routeId };
    },
  } as unknown as RoutingCommands;
  const requests = agentRouteRequests({} as never, commands, createLogger('test', { level: 'error' }));
  const replies: CommandReply[] = [];
  const work = Array.from({ length: MAX_IN_FLIGHT_PER_AGENT + 3 }, () =>
    requests.handle(message('agents.a.out.req.routes.get', { routeId }, replies)),
  );
  // Another agent is not held up by the first one's backlog.
  const other = requests.handle(message('agents.b.out.req.routes.get', { routeId }, replies));
  await new Promise((resolve) => setTimeout(resolve, 10));
  expect(replies).toHaveLength(3);
  expect(replies.every((reply) => !reply.ok && reply.error.error === 'unavailable')).toBe(true);
  release();
  await Promise.all([...work, other]);
  expect(replies.filter((reply) => reply.ok)).toHaveLength(MAX_IN_FLIGHT_PER_AGENT + 1);
  expect(seen.filter((id) => id === 'a')).toHaveLength(MAX_IN_FLIGHT_PER_AGENT);
  expect(seen.filter((id) => id === 'b')).toHaveLength(1);
});

test('a subject that is not an agent request, or an unknown command, is refused naming it', async () => {
  const requests = agentRouteRequests(
    {} as never,
    {} as RoutingCommands,
    createLogger('test', { level: 'error' }),
  );
  const replies: CommandReply[] = [];
  await requests.handle(message('agents.A_B.out.req.routes.get', { routeId }, replies));
  await requests.handle(message('agents.a.out.req.routes.purge', {}, replies));
  expect(replies).toEqual([
    { ok: false, error: expect.objectContaining({ error: 'invalid', field: '(subject)' }) },
    { ok: false, error: expect.objectContaining({ error: 'not_found', field: '(subject)' }) },
  ]);
});

test('a request whose reply subject is not the sender’s own is neither run nor answered', async () => {
  const seen: string[] = [];
  const commands = {
    get: async (actor: { id: string }) => {
      seen.push(actor.id);
      return { routeId };
    },
  } as unknown as RoutingCommands;
  const requests = agentRouteRequests({} as never, commands, createLogger('test', { level: 'error' }));
  const replies: CommandReply[] = [];
  for (const reply of [
    '_INBOX_b.1',
    '_INBOX.1',
    'events.agent.b',
    '$JS.API.STREAM.DELETE.EVENTS',
    '_INBOX_ab.1',
  ]) {
    await requests.handle(message('agents.a.out.req.routes.get', { routeId }, replies, reply));
  }
  expect(seen).toEqual([]);
  expect(replies).toEqual([]);
  // Its own inbox and the server's cross-account response subjects are answered.
  await requests.handle(message('agents.a.out.req.routes.get', { routeId }, replies, '_INBOX_a.7'));
  await requests.handle(message('agents.a.out.req.routes.get', { routeId }, replies, '_R_.x.y'));
  expect(seen).toEqual(['a', 'a']);
  expect(replies).toHaveLength(2);
});
