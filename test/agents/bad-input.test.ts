import { AgentsStack, agentKeys } from '../harness/stack.js';

/** Guarantee 6: bad input gets a 4xx naming the field, and appends nothing. */
let stack: AgentsStack;
let valid: {
  token: string;
  agentId: string;
  publicAddress: string;
  natsPublicKey: string;
  labels: Record<string, string>;
};

beforeAll(async () => {
  stack = await AgentsStack.start();
  valid = {
    token: await stack.enrollmentToken(),
    agentId: 'valid-agent',
    publicAddress: '127.0.0.77',
    natsPublicKey: agentKeys().publicKey,
    labels: { region: 'eu' },
  };
});
afterAll(async () => {
  await stack?.stop();
});

const user = agentKeys();
const without = (field: string) => {
  const copy: Record<string, unknown> = { ...valid };
  delete copy[field];
  return copy;
};
const withField = (field: string, value: unknown) => ({ ...valid, [field]: value });
const manyLabels = Object.fromEntries(Array.from({ length: 33 }, (_, index) => [`k${index}`, 'v']));

type Case = [
  name: string,
  path: 'agents/enroll' | 'auth/refresh',
  body: () => unknown,
  field: string | RegExp,
  raw?: string,
];

const cases: Case[] = [
  ['empty object', 'agents/enroll', () => ({}), 'token'],
  ['token missing', 'agents/enroll', () => without('token'), 'token'],
  ['token a number', 'agents/enroll', () => withField('token', 123), 'token'],
  ['token empty', 'agents/enroll', () => withField('token', ''), 'token'],
  ['token overlong', 'agents/enroll', () => withField('token', 'clenr_' + 'A'.repeat(5000)), 'token'],
  ['token with a newline', 'agents/enroll', () => withField('token', valid.token + '\n'), 'token'],
  ['token in unicode', 'agents/enroll', () => withField('token', 'clenr_' + 'é'.repeat(43)), 'token'],
  ['token null', 'agents/enroll', () => withField('token', null), 'token'],
  ['agentId upper case', 'agents/enroll', () => withField('agentId', 'Web-1'), 'agentId'],
  ['agentId leading hyphen', 'agents/enroll', () => withField('agentId', '-web'), 'agentId'],
  ['agentId 64 characters', 'agents/enroll', () => withField('agentId', 'a'.repeat(64)), 'agentId'],
  ['agentId underscore', 'agents/enroll', () => withField('agentId', 'web_1'), 'agentId'],
  ['agentId unicode', 'agents/enroll', () => withField('agentId', 'wéb'), 'agentId'],
  ['agentId with a dot (subject token)', 'agents/enroll', () => withField('agentId', 'a.b'), 'agentId'],
  ['agentId wildcard', 'agents/enroll', () => withField('agentId', '>'), 'agentId'],
  ['agentId with a newline', 'agents/enroll', () => withField('agentId', 'a\nb'), 'agentId'],
  ['agentId a number', 'agents/enroll', () => withField('agentId', 42), 'agentId'],
  ['agentId empty', 'agents/enroll', () => withField('agentId', ''), 'agentId'],
  [
    'publicAddress a host name',
    'agents/enroll',
    () => withField('publicAddress', 'localhost'),
    'publicAddress',
  ],
  [
    'publicAddress out of range',
    'agents/enroll',
    () => withField('publicAddress', '999.1.1.1'),
    'publicAddress',
  ],
  [
    'publicAddress with a newline',
    'agents/enroll',
    () => withField('publicAddress', '1.2.3.4\nbind :80'),
    'publicAddress',
  ],
  ['publicAddress an array', 'agents/enroll', () => withField('publicAddress', ['1.2.3.4']), 'publicAddress'],
  [
    'publicAddress overlong',
    'agents/enroll',
    () => withField('publicAddress', '1'.repeat(300)),
    'publicAddress',
  ],
  ['natsPublicKey missing', 'agents/enroll', () => without('natsPublicKey'), 'natsPublicKey'],
  ['natsPublicKey is a seed', 'agents/enroll', () => withField('natsPublicKey', user.seed), 'natsPublicKey'],
  [
    'natsPublicKey of an account',
    'agents/enroll',
    () => withField('natsPublicKey', 'A' + user.publicKey.slice(1)),
    'natsPublicKey',
  ],
  [
    'natsPublicKey lower case',
    'agents/enroll',
    () => withField('natsPublicKey', user.publicKey.toLowerCase()),
    'natsPublicKey',
  ],
  ['labels a string', 'agents/enroll', () => withField('labels', 'x'), 'labels'],
  ['label key not a DNS label', 'agents/enroll', () => withField('labels', { 'Bad Key': 'v' }), /^labels/],
  ['label value with NUL', 'agents/enroll', () => withField('labels', { ok: 'a\u0000b' }), 'labels.ok'],
  ['label value overlong', 'agents/enroll', () => withField('labels', { ok: 'x'.repeat(64) }), 'labels.ok'],
  ['33 labels', 'agents/enroll', () => withField('labels', manyLabels), 'labels'],
  ['an unknown field', 'agents/enroll', () => withField('admin', true), 'admin'],
  ['body an array', 'agents/enroll', () => [valid], '(root)'],
  ['body a string', 'agents/enroll', () => 'enroll me', '(root)'],
  ['body null', 'agents/enroll', () => null, '(root)', 'null'],
  ['body not JSON', 'agents/enroll', () => undefined, '(body)', '{"token": '],
  ['refresh: empty object', 'auth/refresh', () => ({}), 'refreshToken'],
  ['refresh: token a number', 'auth/refresh', () => ({ refreshToken: 5 }), 'refreshToken'],
  ['refresh: an enrollment token', 'auth/refresh', () => ({ refreshToken: valid.token }), 'refreshToken'],
  [
    'refresh: trailing space',
    'auth/refresh',
    () => ({ refreshToken: 'clref_' + 'A'.repeat(43) + ' ' }),
    'refreshToken',
  ],
  ['refresh: overlong', 'auth/refresh', () => ({ refreshToken: 'clref_' + 'A'.repeat(500) }), 'refreshToken'],
  ['refresh: emoji', 'auth/refresh', () => ({ refreshToken: '🙂'.repeat(20) }), 'refreshToken'],
  [
    'refresh: an unknown field',
    'auth/refresh',
    () => ({ refreshToken: 'clref_' + 'A'.repeat(43), agentId: 'x' }),
    'agentId',
  ],
  ['refresh: body not JSON', 'auth/refresh', () => undefined, '(body)', "{'refreshToken': 1}"],
];

test('the table has at least 30 malformed bodies', () => {
  expect(cases.length).toBeGreaterThanOrEqual(30);
});

// One parameter only: jest would take a fifth declared parameter for a `done` callback.
test.each(cases.map((row) => [row[0], row] as const))(
  '%s → 400 naming the field, nothing appended',
  async (_name, row) => {
    const [, path, body, field, raw] = row;
    const before = await stack.lastEventSequence();
    const response = await stack.request(
      'POST',
      path,
      raw === undefined ? { body: body() } : { rawBody: raw },
    );
    expect(response.status).toBe(400);
    expect(response.body.error).toBe('invalid');
    expect(typeof response.body.message).toBe('string');
    if (typeof field === 'string') expect(response.body.field).toBe(field);
    else expect(response.body.field).toMatch(field);
    expect(await stack.lastEventSequence()).toBe(before);
  },
);

test('the same bodies made valid are accepted (the table tests the field, not a blanket refusal)', async () => {
  const response = await stack.request('POST', 'agents/enroll', { body: valid, from: valid.publicAddress });
  expect(response.status).toBe(201);
  expect(response.body.agentId).toBe('valid-agent');
  const refresh = await stack.request('POST', 'auth/refresh', {
    body: { refreshToken: 'clref_' + 'A'.repeat(43) },
  });
  expect(refresh.status).toBe(401);
});
