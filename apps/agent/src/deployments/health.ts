import { request } from 'node:http';

export interface HealthGate {
  /** Where the release listens (the address the front reaches it on). */
  host: string;
  port: number;
  path: string;
  /** The app's host name, as the Host header (apps may route on it). */
  hostname: string;
  /** Answers of 200–399 in a row that pass the gate. */
  successes: number;
  /** Wait before the first probe. */
  graceMs: number;
  /** The whole gate, grace included. */
  timeoutMs: number;
  /**
   * A probe of another protocol (a database's: TLS, auth and PING), which resolves when it passed,
   * instead of the HTTP GET; `what` says what it asks, for the failure's reason.
   */
  check?: { what: string; run: () => Promise<void> };
}

export type GateResult =
  | { passed: true; probes: number; durationMs: number }
  | { passed: false; probes: number; durationMs: number; reason: string };

const REQUEST_TIMEOUT_MS = 2_000;
/** Fast probes while a release usually comes up, slower after. */
const pauseAfter = (elapsedMs: number) => (elapsedMs < 2_000 ? 50 : 500);

function probe(gate: HealthGate): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: gate.host,
        port: gate.port,
        path: gate.path,
        method: 'GET',
        headers: { host: gate.hostname },
        agent: false,
        timeout: REQUEST_TIMEOUT_MS,
      },
      (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode ?? 0));
        response.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer in ${REQUEST_TIMEOUT_MS} ms`)));
    // The socket timeout is for idleness: an app trickling a byte now and then would hold the probe
    // (and the gate) forever. This one ends the whole request.
    const deadline = setTimeout(
      () => req.destroy(new Error(`no whole answer in ${REQUEST_TIMEOUT_MS} ms`)),
      REQUEST_TIMEOUT_MS,
    );
    req.on('close', () => clearTimeout(deadline));
    req.on('error', reject);
    req.end();
  });
}

/**
 * The health gate of a new release, before any traffic goes to it: `successes` good answers in a row on
 * the address the front will use, within the time. The process exiting (`exited` settles) fails it at once.
 */
export async function passHealthGate(
  gate: HealthGate,
  options: { exited?: Promise<string>; signal?: AbortSignal } = {},
): Promise<GateResult> {
  const started = Date.now();
  const elapsed = () => Date.now() - started;
  let exited: string | null = null;
  void options.exited?.then((why) => (exited = why));
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  let probes = 0;
  let inARow = 0;
  let last = 'no probe yet';
  await sleep(gate.graceMs);
  while (elapsed() < gate.timeoutMs) {
    if (exited !== null)
      return {
        passed: false,
        probes,
        durationMs: elapsed(),
        reason: `the process ${exited} during the health check`,
      };
    if (options.signal?.aborted) return { passed: false, probes, durationMs: elapsed(), reason: 'cancelled' };
    probes++;
    try {
      if (gate.check) {
        await gate.check.run();
        last = 'passed';
        inARow++;
      } else {
        const status = await probe(gate);
        last = `status ${status}`;
        inARow = status >= 200 && status < 400 ? inARow + 1 : 0;
      }
    } catch (error) {
      last = (error as Error).message;
      inARow = 0;
    }
    if (inARow >= gate.successes) return { passed: true, probes, durationMs: elapsed() };
    await sleep(pauseAfter(elapsed()));
  }
  return {
    passed: false,
    probes,
    durationMs: elapsed(),
    reason: `${gate.check ? `${gate.check.what} did not pass` : `GET ${gate.path} did not answer 200–399`} ${gate.successes} times in a row in ${Math.round(gate.timeoutMs / 1000)} s (last: ${last})`,
  };
}
