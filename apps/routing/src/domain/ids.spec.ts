import { uuidV5 } from '#platform';
import { commandKey, ROUTE_ID_NAMESPACE, routeIdFor } from './ids.js';

test('UUID v5 matches the RFC 4122 example and is deterministic', () => {
  // The DNS namespace example: uuid v5 of "www.example.com".
  expect(uuidV5('www.example.com', '6ba7b810-9dad-11d1-80b4-00c04fd430c8')).toBe(
    '2ed6657d-e927-568b-95e1-2665a8aea6a2',
  );
  expect(uuidV5('x', ROUTE_ID_NAMESPACE)).toMatch(
    /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
  );
});

test('a route id depends on the requester, the agent and the command id', () => {
  const agent = { kind: 'agent' as const, id: 'web-1' };
  const admin = { kind: 'admin' as const, id: 'alice' };
  const id = routeIdFor(agent, 'web-1', 'key-1');
  expect(routeIdFor(agent, 'web-1', 'key-1')).toBe(id);
  expect(routeIdFor(agent, 'web-1', 'key-2')).not.toBe(id);
  expect(routeIdFor(admin, 'web-1', 'key-1')).not.toBe(id);
  expect(routeIdFor(admin, 'web-2', 'key-1')).not.toBe(routeIdFor(admin, 'web-1', 'key-1'));
  expect(commandKey(agent, 'k')).toBe(commandKey(agent, 'k'));
  expect(commandKey(agent, 'k')).not.toBe(commandKey(admin, 'k'));
});
