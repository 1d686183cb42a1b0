import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { passHealthGate, type HealthGate } from '../../apps/agent/src/deployments/health.js';

/** The gate against a real HTTP server on loopback, answering as a release would. */
let server: Server;
let answer: (path: string, host: string | undefined) => number = () => 200;
let port = 0;

beforeAll(async () => {
  server = createServer((request, response) => {
    response.statusCode = answer(request.url ?? '/', request.headers.host);
    response.end('ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

const gate = (extra: Partial<HealthGate> = {}): HealthGate => ({
  host: '127.0.0.1',
  port,
  path: '/healthz',
  hostname: 'web.apps.example.test',
  successes: 2,
  graceMs: 0,
  timeoutMs: 3_000,
  ...extra,
});

test('passes after the answers in a row, with the app’s host name and path', async () => {
  const seen: string[] = [];
  answer = (path, host) => {
    seen.push(`${host} ${path}`);
    return 200;
  };
  const result = await passHealthGate(gate());
  expect(result).toMatchObject({ passed: true, probes: 2 });
  expect(seen).toEqual(['web.apps.example.test /healthz', 'web.apps.example.test /healthz']);
});

test('a failing answer resets the count; a release that never passes fails with the last answer', async () => {
  let calls = 0;
  answer = () => (++calls === 2 ? 500 : 200);
  expect(await passHealthGate(gate())).toMatchObject({ passed: true, probes: 4 });
  answer = () => 503;
  const failed = await passHealthGate(gate({ timeoutMs: 600 }));
  expect(failed).toMatchObject({ passed: false });
  expect(failed.passed === false && failed.reason).toMatch(/last: status 503/);
});

test('nothing listening, and the process exiting, fail it', async () => {
  const closed = await passHealthGate(gate({ port: 1, timeoutMs: 400 }));
  expect(closed.passed === false && closed.reason).toMatch(/ECONNREFUSED/);
  answer = () => 500;
  const exited = await passHealthGate(gate({ timeoutMs: 5_000 }), {
    exited: Promise.resolve('exited with code 3'),
  });
  expect(exited).toMatchObject({
    passed: false,
    reason: 'the process exited with code 3 during the health check',
  });
});
