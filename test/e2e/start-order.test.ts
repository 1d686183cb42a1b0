import { AgentsStack, STACK_SERVICES } from '../harness/stack.js';
import { sleep, waitFor } from '../harness/processes.js';

/**
 * Issue 14: no service exits because its broker is not there yet. Every service of the stack, as its
 * own process, is started while nats-server is down: each stays up, says what it waits for, and serves
 * once the broker comes.
 */
let stack: AgentsStack;

beforeAll(async () => {
  stack = await AgentsStack.start({ processes: true, routing: true, certificates: true });
}, 120_000);
afterAll(async () => {
  await stack?.stop();
});

test('services started before the broker wait for it, then serve', async () => {
  for (const service of [...STACK_SERVICES].reverse()) await stack.stopService(service);
  await stack.nats.stop();
  for (const service of STACK_SERVICES) stack.startService(service);

  const waiting = (service: string) =>
    /waiting for the message broker/.test(stack.processes.get(service)!.output());
  await waitFor('every service to say it waits for the broker', () => STACK_SERVICES.every(waiting), {
    timeoutMs: 30_000,
  }).catch(() => undefined);
  // A few more attempts each: nobody may have exited, and each said what it waits for.
  await sleep(2_000);
  for (const service of STACK_SERVICES) {
    const running = stack.processes.get(service)!;
    const exited = running.child.exitCode !== null ? running.output().slice(-3000) : undefined;
    expect({ service, exited, said: waiting(service) }).toEqual({ service, exited: undefined, said: true });
  }

  await stack.nats.start();
  await stack.ready(90_000);
  const token = await stack.enrollmentToken();
  expect(token).toMatch(/^clenr_/);
}, 180_000);
