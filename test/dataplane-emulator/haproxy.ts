/**
 * Talking to a real HAProxy: `haproxy -c`, the stats socket (runtime API) and the master CLI.
 */
import { execFile } from 'node:child_process';
import { connect } from 'node:net';

/** An error answer of HAProxy's runtime API, or a socket that could not be reached. */
export class RuntimeError extends Error {
  constructor(
    message: string,
    readonly command: string,
  ) {
    super(message);
    this.name = 'RuntimeError';
  }
}

/**
 * Sends one command on a UNIX socket in non-interactive mode and returns everything HAProxy answered
 * before closing the connection. A payload (`<<`) command must already contain its lines; the empty line
 * that ends the payload is added here.
 */
export function socketCommand(path: string, command: string, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ path });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new RuntimeError(`no answer from ${path} within ${timeoutMs} ms`, command));
    }, timeoutMs);
    socket.on('connect', () => socket.end(`${command}\n`));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(new RuntimeError(`${path}: ${error.message}`, command));
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
  });
}

export interface ProcList {
  masterPid: number;
  reloads: number;
  failedReloads: number;
  /** Current workers (not the old ones still finishing their connections). */
  workers: { pid: number; reloads: number }[];
  raw: string;
}

/** Parses the master CLI's `show proc` (HAProxy 2.6 format). */
export function parseShowProc(raw: string): ProcList {
  const result: ProcList = { masterPid: 0, reloads: 0, failedReloads: 0, workers: [], raw };
  let block = 'master';
  for (const line of raw.split('\n')) {
    const trimmed = line.trim();
    if (trimmed.startsWith('#')) {
      if (/^# workers/.test(trimmed)) block = 'workers';
      else if (/^# old workers/.test(trimmed)) block = 'old';
      else if (/^# programs/.test(trimmed)) block = 'programs';
      continue;
    }
    const parts = trimmed.split(/\s+/);
    if (parts.length < 3) continue;
    if (parts[1] === 'master') {
      result.masterPid = Number(parts[0]);
      result.reloads = Number(parts[2]);
      const failed = /\[failed:\s*(\d+)\]/.exec(trimmed);
      result.failedReloads = failed ? Number(failed[1]) : 0;
    } else if (parts[1] === 'worker' && block === 'workers') {
      result.workers.push({ pid: Number(parts[0]), reloads: Number(parts[2]) });
    }
  }
  return result;
}

export class HaproxyControl {
  constructor(
    readonly haproxyBin: string,
    readonly masterSocket: string,
    readonly statsSocket: string,
  ) {}

  /** A runtime API command; throws RuntimeError when the answer looks like an error. */
  async stats(command: string, isError?: (answer: string) => boolean): Promise<string> {
    const answer = await socketCommand(this.statsSocket, command);
    if (isError?.(answer)) throw new RuntimeError(answer.trim(), command);
    return answer;
  }

  master(command: string): Promise<string> {
    return socketCommand(this.masterSocket, command);
  }

  async showProc(): Promise<ProcList> {
    return parseShowProc(await this.master('show proc'));
  }

  /**
   * Reloads through the master CLI. HAProxy 2.6 answers nothing to `reload`, so success is confirmed with
   * `show proc`: the master's reload counter moved and a new worker runs; a grown failure counter (or no
   * new worker in time) is a failed reload.
   */
  async reload(timeoutMs = 15_000): Promise<{ ok: boolean; response: string; workers: number[] }> {
    const before = await this.showProc();
    const oldPids = new Set(before.workers.map((worker) => worker.pid));
    await this.master('reload').catch(() => '');
    const deadline = Date.now() + timeoutMs;
    let last = before;
    while (Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      try {
        last = await this.showProc();
      } catch {
        continue; // the master re-executes itself; its socket comes back shortly
      }
      if (last.failedReloads > before.failedReloads) {
        return { ok: false, response: `reload failed (show proc):\n${last.raw}`, workers: [] };
      }
      const fresh = last.workers.filter((worker) => !oldPids.has(worker.pid));
      if (last.reloads > before.reloads && fresh.length > 0) {
        const workers = fresh.map((worker) => worker.pid);
        await this.untilStatsSocketServedBy(new Set(workers), deadline);
        return { ok: true, response: last.raw, workers };
      }
    }
    return { ok: false, response: `no new worker after ${timeoutMs} ms:\n${last.raw}`, workers: [] };
  }

  /**
   * With `expose-fd listeners` the old and the new worker share the stats socket until the old one has
   * stopped listening: a runtime command sent in that window may land in the dying worker and be lost.
   * Waits until `show info` answers from a new worker several times in a row.
   */
  private async untilStatsSocketServedBy(workers: Set<number>, deadline: number): Promise<void> {
    let streak = 0;
    while (streak < 5 && Date.now() < deadline) {
      const info = await this.stats('show info').catch(() => '');
      const pid = Number(/^Pid:\s*(\d+)/m.exec(info)?.[1] ?? 0);
      streak = workers.has(pid) ? streak + 1 : 0;
      if (streak < 5) await new Promise((resolve) => setTimeout(resolve, streak > 0 ? 5 : 20));
    }
  }

  /** `haproxy -W -c -f <file>`: resolves with the alert lines when HAProxy rejects the file. */
  check(file: string): Promise<{ ok: boolean; alerts: string }> {
    return new Promise((resolve) => {
      execFile(this.haproxyBin, ['-W', '-c', '-f', file], { timeout: 60_000 }, (error, stdout, stderr) => {
        if (!error) return resolve({ ok: true, alerts: '' });
        const output = `${stdout}\n${stderr}`;
        const alerts = output
          .split('\n')
          .filter((line) => line.includes('[ALERT]'))
          .map((line) => line.replace(/^\[ALERT\]\s*\(\d+\)\s*:\s*/, '').trim())
          .join('\n');
        resolve({ ok: false, alerts: alerts || output.trim() || String(error.message) });
      });
    });
  }
}
