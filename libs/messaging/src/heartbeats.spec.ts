import type { KV } from '@nats-io/kv';
import type { Logger } from '#platform';
import { HeartbeatRecorder } from './heartbeats.js';

function recorder() {
  const puts: { key: string; value: Record<string, unknown> }[] = [];
  const kv = {
    put: async (key: string, value: string) => {
      puts.push({ key, value: JSON.parse(value) as Record<string, unknown> });
      return 1;
    },
  } as unknown as KV;
  const logger = { warn: () => undefined } as unknown as Logger;
  return { puts, recorder: new HeartbeatRecorder(kv, logger, 5_000) };
}

describe('HeartbeatRecorder', () => {
  it('writes at most once per interval, with the runtimes the agent reports', () => {
    const { puts, recorder: heartbeats } = recorder();
    heartbeats.record('a', 10_000, ['process']);
    heartbeats.record('a', 12_000, ['process']);
    heartbeats.record('a', 15_000, ['process']);
    expect(puts.map((put) => put.value)).toEqual([
      { at: new Date(10_000).toISOString(), runtimes: ['process'] },
      { at: new Date(15_000).toISOString(), runtimes: ['process'] },
    ]);
  });

  it('writes at once when what the agent can run changes, and leaves the field out when it reports none', () => {
    const { puts, recorder: heartbeats } = recorder();
    heartbeats.record('a', 10_000, ['process']);
    heartbeats.record('a', 11_000, ['process', 'container']);
    heartbeats.record('b', 11_000);
    expect(puts.map((put) => [put.key, put.value.runtimes])).toEqual([
      ['a', ['process']],
      ['a', ['process', 'container']],
      ['b', undefined],
    ]);
  });
});
