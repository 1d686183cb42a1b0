import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { appendFile, mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { logBatch, Redactor, type LogBatch, type LogLine } from '#contracts';
import { FileTail, LogShipper, ROTATE_BYTES } from './log-shipper.js';

const DEPLOYMENT = '6f1d2c3b-4a5e-4f60-8b7a-9c8d7e6f5a41';

const lines = (count: number, from = 0): LogLine[] =>
  Array.from({ length: count }, (_, index) => ({
    t: '2030-01-01T00:00:00.000Z',
    s: 'out' as const,
    x: `line ${from + index}`,
  }));

function recorder() {
  const published: { topic: string; body: LogBatch }[] = [];
  const publish = (topic: string, body: LogBatch) => {
    published.push({ topic, body: structuredClone(body) });
  };
  return {
    published,
    publish,
    texts: () => published.flatMap(({ body }) => body.lines.map((line) => line.x)),
  };
}

describe('LogShipper', () => {
  beforeEach(() => {
    jest.useFakeTimers();
  });
  afterEach(() => {
    jest.useRealTimers();
  });

  it('publishes on logs.<deploymentId> after the interval, one batch for what was queued', () => {
    const { published, publish, texts } = recorder();
    const shipper = new LogShipper(DEPLOYMENT, publish, 1_000);
    shipper.push(lines(2));
    jest.advanceTimersByTime(500);
    shipper.push(lines(1, 2));
    jest.advanceTimersByTime(499);
    expect(published).toEqual([]);
    jest.advanceTimersByTime(1);
    expect(published.map(({ topic }) => topic)).toEqual([`logs.${DEPLOYMENT}`]);
    expect(texts()).toEqual(['line 0', 'line 1', 'line 2']);
    for (const { body } of published) expect(logBatch.safeParse(body).success).toBe(true);
    // Nothing queued: no empty batch later.
    jest.advanceTimersByTime(10_000);
    expect(published).toHaveLength(1);
  });

  it('never reuses a batch number, even across shippers of one deployment (the relay drops repeats)', () => {
    const { published, publish } = recorder();
    const first = new LogShipper(DEPLOYMENT, publish, 1_000);
    first.push(lines(2));
    first.flush();
    first.push(lines(1));
    first.flush();
    // The release restarted: its output goes on through a new shipper for the same deployment.
    const second = new LogShipper(DEPLOYMENT, publish, 1_000);
    second.push(lines(1));
    second.flush();
    const keys = published.map(({ body }) => {
      const batch = body as { boot: string; seq: number };
      return `${batch.boot}:${batch.seq}`;
    });
    expect(keys).toHaveLength(3);
    expect(new Set(keys).size).toBe(3);
  });

  it('flushes at once when 64 lines are waiting', () => {
    const { published, publish } = recorder();
    const shipper = new LogShipper(DEPLOYMENT, publish, 60_000);
    shipper.push(lines(63));
    expect(published).toEqual([]);
    shipper.push(lines(1, 63));
    expect(published).toHaveLength(1);
    expect(published[0].body.lines).toHaveLength(64);
    // The flush cancelled the timer: the next line waits for a new interval.
    shipper.push(lines(1, 64));
    jest.advanceTimersByTime(59_999);
    expect(published).toHaveLength(1);
    jest.advanceTimersByTime(1);
    expect(published).toHaveLength(2);
  });

  it('numbers batches with an increasing seq under one boot id', () => {
    const { published, publish } = recorder();
    const first = new LogShipper(DEPLOYMENT, publish, 100);
    first.push(lines(600));
    first.sys('health check passed');
    jest.advanceTimersByTime(100);
    first.push(lines(1));
    first.flush();
    const seqs = published.map(({ body }) => body.seq);
    expect(seqs).toEqual([0, 1, 2, 3, 4].map((i) => seqs[0] + i));
    const boots = new Set(published.map(({ body }) => body.boot));
    expect(boots.size).toBe(1);
    const [boot] = boots;
    expect(boot).toMatch(/^[A-Za-z0-9_-]{12}$/);
    // Another deployment of the same agent process: the same boot, the numbers go on.
    const other = recorder();
    const second = new LogShipper('7a2e3d4c-5b6f-4071-9c8b-0d9e8f7a6b52', other.publish, 100);
    second.sys('started');
    second.flush();
    expect(other.published.map(({ topic, body }) => [topic, body.boot, body.seq])).toEqual([
      ['logs.7a2e3d4c-5b6f-4071-9c8b-0d9e8f7a6b52', boot, seqs[0] + 5],
    ]);
    expect(other.published[0].body.lines[0]).toMatchObject({ s: 'sys', x: 'started' });
  });

  it('counts lines past the queue limit as dropped and says so in one sys line', () => {
    const { published, publish, texts } = recorder();
    const shipper = new LogShipper(DEPLOYMENT, publish, 1_000);
    shipper.push(lines(5_010));
    const all = texts();
    expect(all).toHaveLength(5_001);
    expect(all.slice(0, 5_000)).toEqual(lines(5_000).map((line) => line.x));
    expect(all.filter((text) => text.includes('dropped'))).toEqual(['10 lines dropped (too many at once)']);
    expect(published.at(-1)?.body.lines.at(-1)?.s).toBe('sys');
    for (const { body } of published) expect(logBatch.safeParse(body).success).toBe(true);
    // The count starts again: the next flush says nothing about dropped lines.
    shipper.push(lines(3));
    jest.advanceTimersByTime(1_000);
    expect(texts().slice(5_001)).toEqual(['line 0', 'line 1', 'line 2']);
  });

  it('keeps going when publishing fails (disconnected)', () => {
    let fail = false;
    const published: LogBatch[] = [];
    const shipper = new LogShipper(
      DEPLOYMENT,
      (_topic, body) => {
        if (fail) throw new Error('disconnected');
        published.push(body);
      },
      1_000,
    );
    shipper.sys('before');
    shipper.flush();
    const before = published[0].seq;
    fail = true;
    shipper.push(lines(64));
    fail = false;
    shipper.push(lines(64, 64));
    expect(published.slice(1).map((body) => [body.seq, body.lines[0].x])).toEqual([[before + 2, 'line 64']]);
  });
});

describe('FileTail', () => {
  let dir: string;
  let path: string;
  let got: LogLine[];
  const sink = (batch: LogLine[]) => {
    got.push(...batch);
  };
  const texts = () => got.map((line) => line.x);
  const tails: FileTail[] = [];
  const tail = (redactor = new Redactor({}), pollMs = 60_000) => {
    const made = new FileTail(path, 'err', redactor, sink, pollMs);
    tails.push(made);
    return made;
  };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cl-tail-'));
    path = join(dir, 'release.err');
    got = [];
  });
  afterEach(async () => {
    for (const made of tails.splice(0)) await made.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('reads appended lines; a partial line waits for its end', async () => {
    await writeFile(path, 'one\ntwo\nthr');
    const follower = await tail().start();
    await follower.read();
    expect(got.map((line) => [line.s, line.x])).toEqual([
      ['err', 'one'],
      ['err', 'two'],
    ]);
    await follower.read();
    expect(texts()).toEqual(['one', 'two']);
    await appendFile(path, 'ee\nfour\n');
    await follower.read();
    expect(texts()).toEqual(['one', 'two', 'three', 'four']);
  });

  it('polls the file on its own once started', async () => {
    await writeFile(path, '');
    await tail(new Redactor({}), 10).start();
    await appendFile(path, 'polled\n');
    for (let waited = 0; got.length === 0 && waited < 1_000; waited += 10)
      await new Promise((resolve) => setTimeout(resolve, 10));
    expect(texts()).toEqual(['polled']);
  });

  it('redacts secrets before lines leave', async () => {
    await writeFile(path, 'token=supersecretvalue ok\n');
    const follower = await tail(new Redactor({ S: 'supersecretvalue' })).start();
    await follower.read();
    expect(texts()).toEqual(['token=[secret:S] ok']);
    expect(JSON.stringify(got)).not.toContain('supersecretvalue');
  });

  it('starts from the end when asked (an adopted process)', async () => {
    await writeFile(path, 'old one\nold two\n');
    const follower = await tail().start(true);
    await follower.read();
    expect(got).toEqual([]);
    await appendFile(path, 'new\n');
    await follower.read();
    expect(texts()).toEqual(['new']);
  });

  it('starting from the end of a file that does not exist yet reads it from the top', async () => {
    const follower = await tail().start(true);
    await follower.read();
    await writeFile(path, 'first\n');
    await follower.read();
    expect(texts()).toEqual(['first']);
  });

  it('starts again at the top of a file that was cut', async () => {
    await writeFile(path, 'a fairly long first line\nand a second one\n');
    const follower = await tail().start();
    await follower.read();
    await truncate(path, 0);
    await appendFile(path, 'after\n');
    await follower.read();
    expect(texts()).toEqual(['a fairly long first line', 'and a second one', 'after']);
  });

  it('stop reads what is left, including a last line without a newline', async () => {
    await writeFile(path, 'one\n');
    const follower = await tail().start();
    await follower.read();
    await appendFile(path, 'two\nlast');
    await follower.stop();
    expect(texts()).toEqual(['one', 'two', 'last']);
  });

  it('a file that goes away is not an error', async () => {
    await writeFile(path, 'one\n');
    const follower = await tail().start();
    await follower.read();
    await rm(path);
    await expect(follower.read()).resolves.toBeUndefined();
    expect(texts()).toEqual(['one']);
  });

  it('rotates a file past ROTATE_BYTES to .1 once read, and follows the cut file', async () => {
    const line = `${'x'.repeat(1_023)}\n`;
    const count = ROTATE_BYTES / line.length + 1;
    let seen = 0;
    const follower = new FileTail(path, 'out', new Redactor({}), (batch) => (seen += batch.length), 60_000);
    // Written 1 MiB at a time and read as it grows (a tail far behind skips ahead: the next test).
    const perWrite = 1024;
    for (let written = 0; written < count; written += perWrite) {
      await appendFile(path, line.repeat(Math.min(perWrite, count - written)));
      if (written + 2 * perWrite < count) await follower.read();
    }
    expect((await stat(path)).size).toBeGreaterThan(0);
    // Reads are at most 1 MiB each: the rotation comes with the read that reaches the end.
    for (let reads = 0; reads < 20 && (await stat(path)).size > 0; reads++) await follower.read();
    expect(seen).toBe(count);
    expect((await stat(path)).size).toBe(0);
    expect((await stat(`${path}.1`)).size).toBe(ROTATE_BYTES + line.length);
    await appendFile(path, 'after rotation\n');
    const after: string[] = [];
    const next = new FileTail(path, 'out', new Redactor({}), (batch) => after.push(...batch.map((l) => l.x)));
    await next.read();
    expect(after).toEqual(['after rotation']);
    // The rotating tail goes on from the top of the cut file too.
    const before = seen;
    await follower.read();
    expect(seen).toBe(before + 1);
    await follower.stop();
    expect(await readFile(path, 'utf8')).toBe('after rotation\n');
  }, 30_000);

  it('skips ahead, saying how much, when a process writes faster than its lines are shipped', async () => {
    const line = `${'y'.repeat(1_023)}\n`;
    await writeFile(path, line.repeat(9 * 1024)); // 9 MiB, more than a tail may fall behind
    const lines: string[] = [];
    const follower = new FileTail(path, 'out', new Redactor({}), (batch) =>
      lines.push(...batch.map((l) => l.x)),
    );
    await follower.read();
    expect(lines[0]).toBe(`${8 * 1024 * 1024} bytes of output skipped (written too fast to ship)`);
    expect(lines.length).toBe(1 + 1024);
  });
});
