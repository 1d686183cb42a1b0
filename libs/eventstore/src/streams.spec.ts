import type { StreamConfig } from '@nats-io/jetstream';
import { appendOnlyStreamConfig, unsafeStreamSettings } from './streams.js';

const safe = appendOnlyStreamConfig({
  name: 'EVENTS',
  subjects: ['events.>'],
  replicas: 1,
  duplicateWindowMs: 1000,
}) as StreamConfig;

describe('unsafeStreamSettings', () => {
  it('finds nothing wrong with the append-only configuration', () => {
    expect(unsafeStreamSettings(safe, ['events.>'])).toEqual([]);
  });
  it.each<[Partial<StreamConfig>, RegExp]>([
    [{ deny_delete: false }, /deny_delete/],
    [{ deny_purge: false }, /deny_purge/],
    [{ storage: 'memory' as StreamConfig['storage'] }, /storage/],
    [{ allow_rollup_hdrs: true }, /rollup/],
    [{ max_age: 1 }, /max_age/],
    [{ max_msgs: 10 }, /max_msgs/],
    [{ max_msgs_per_subject: 1 }, /max_msgs_per_subject/],
    [{ retention: 'workqueue' as StreamConfig['retention'] }, /retention/],
    [{ subjects: ['other.>'] }, /subjects/],
  ])('reports %j', (change, problem) => {
    expect(unsafeStreamSettings({ ...safe, ...change }, ['events.>']).join('\n')).toMatch(problem);
  });
});
