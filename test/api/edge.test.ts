import { createLogger } from '#platform';
import { AgentsStack } from '../harness/stack.js';

/**
 * Issue 13.4: the API's edge. Bodies are UTF-8 JSON sent uncompressed: another charset or any content
 * encoding is 415 naming the header, and appends nothing. Every response carries an X-Request-Id, and a
 * 5xx is logged with it.
 */
let stack: AgentsStack;
let admin: string;
const logLines: string[] = [];

beforeAll(async () => {
  stack = await AgentsStack.start({
    logger: createLogger('test', { level: 'warn', write: (line) => logLines.push(line) }),
  });
  admin = stack.adminToken('alice');
});
afterAll(async () => {
  await stack?.stop();
});

const tokenBody = JSON.stringify({ note: 'edge' });

function issue(headers: Record<string, string>, rawBody = tokenBody) {
  return stack.request('POST', 'enrollment-tokens', { token: admin, rawBody, headers });
}

test.each([
  ['application/json; charset=latin1', 'Content-Type'],
  ['application/json; charset=utf-7', 'Content-Type'],
  ['application/json; charset="utf-16"', 'Content-Type'],
  ['application/json; charset=', 'Content-Type'],
])('Content-Type %s is 415 naming %s, and appends nothing', async (contentType, field) => {
  const before = await stack.lastEventSequence();
  const refused = await issue({ 'content-type': contentType });
  expect(refused).toMatchObject({ status: 415, body: { error: 'unsupported', field } });
  expect(await stack.lastEventSequence()).toBe(before);
});

test.each(['gzip', 'br', 'deflate', 'x-unknown', 'gzip, identity'])(
  'Content-Encoding %s is 415 naming Content-Encoding, and appends nothing',
  async (encoding) => {
    const before = await stack.lastEventSequence();
    // Not compressed at all: the API must not try to inflate it, nor fail with a 500.
    const refused = await issue({ 'content-type': 'application/json', 'content-encoding': encoding });
    expect(refused).toMatchObject({ status: 415, body: { field: 'Content-Encoding' } });
    expect(await stack.lastEventSequence()).toBe(before);
  },
);

test.each([
  ['application/json', {}],
  ['application/json; charset=utf-8', {}],
  ['application/json; charset="UTF-8"', {}],
  ['application/json', { 'content-encoding': 'identity' }],
])('%s %j is accepted (the checks refuse only what they name)', async (contentType, extra) => {
  const accepted = await issue({ 'content-type': contentType, ...extra });
  expect(accepted.status).toBe(201);
});

test('every answer carries an X-Request-Id; a plain one from a proxy is kept, anything else replaced', async () => {
  const url = `${stack.baseUrl}/api/v1`;
  const answers = await Promise.all([
    fetch(`${url}/agents`, { headers: { authorization: `Bearer ${admin}` } }), // 200
    fetch(`${url}/agents`), // 401
    fetch(`${url}/no-such-thing`), // 404
    fetch(`${url}/enrollment-tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: '{"ttlSeconds":',
    }), // 400 from the body parser
    fetch(`${stack.baseUrl}/`), // the dashboard
  ]);
  const ids = answers.map((answer) => answer.headers.get('x-request-id'));
  expect(answers.map((answer) => answer.status)).toEqual([200, 401, 404, 400, 200]);
  for (const id of ids) expect(id).toMatch(/^[0-9a-f-]{36}$/);
  expect(new Set(ids).size).toBe(ids.length);

  const kept = await fetch(`${url}/agents`, { headers: { 'x-request-id': 'lb-1234.abc' } });
  expect(kept.headers.get('x-request-id')).toBe('lb-1234.abc');
  const replaced = await fetch(`${url}/agents`, { headers: { 'x-request-id': 'x'.repeat(200) } });
  expect(replaced.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  const spaced = await fetch(`${url}/agents`, { headers: { 'x-request-id': 'two words' } });
  expect(spaced.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
});

test('a 5xx is logged with the request id the response carries', async () => {
  await stack.stopRegistration();
  try {
    const response = await fetch(`${stack.baseUrl}/api/v1/enrollment-tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(response.status).toBeGreaterThanOrEqual(500);
    const id = response.headers.get('x-request-id')!;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const logged = logLines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(logged).toContainEqual(
      expect.objectContaining({ requestId: id, method: 'POST', path: '/api/v1/enrollment-tokens' }),
    );
  } finally {
    await stack.startRegistration();
  }
});

test('the dashboard is served at its own pages only; any other path is a JSON 404', async () => {
  for (const path of ['/', '/agents', '/agents/web-1', '/routes', '/replay/views/asof_12']) {
    const page = await fetch(`${stack.baseUrl}${path}`);
    expect({ path, status: page.status, type: page.headers.get('content-type') }).toEqual({
      path,
      status: 200,
      type: expect.stringContaining('text/html'),
    });
  }
  for (const path of [
    '/metrics',
    '/health',
    '/api/docs',
    '/api',
    '/api/v1/nope',
    '/agents/web-1/x',
    '/nope.js',
  ]) {
    const missing = await fetch(`${stack.baseUrl}${path}`);
    expect({ path, status: missing.status, type: missing.headers.get('content-type') }).toEqual({
      path,
      status: 404,
      type: expect.stringContaining('application/json'),
    });
    expect(((await missing.json()) as { error: string }).error).toBe('not_found');
  }
});
