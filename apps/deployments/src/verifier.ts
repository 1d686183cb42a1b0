import { readFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { connect as tlsConnect } from 'node:tls';
import type { FrontProbe } from './domain/deployment.js';

export interface VerifyTarget {
  /** `http`: a GET through each front's HTTPS entry; `tls-sni`: a TLS handshake through its SNI listener. */
  kind: 'http' | 'tls-sni';
  hostname: string;
  path: string;
  /** Responses in a row, on every front, that make the release verified. */
  successes: number;
  /** The whole verification's time. */
  timeoutMs: number;
}

export type Verification =
  | { passed: true; fronts: FrontProbe[]; skipped: string | null }
  | { passed: false; fronts: FrontProbe[]; reason: string };

const REQUEST_TIMEOUT_MS = 2_000;
const PAUSE_MS = 100;

/**
 * The front's own look at a new release, after the switch and before the old one is drained: requests
 * through each front's HAProxy with the app's real host name (SNI and Host), as a user's would go. The
 * agent's health gate probed the release directly; this proves the route leads to it.
 */
export class Verifier {
  private ca?: Promise<Buffer | undefined>;

  constructor(
    private readonly urls: readonly string[],
    private readonly caFile: string,
    /** The fronts' SNI listeners (`host:port`), where databases are reached. */
    private readonly sniAddresses: readonly string[] = [],
  ) {}

  private caBundle(): Promise<Buffer | undefined> {
    this.ca ??= this.caFile ? readFile(this.caFile) : Promise.resolve(undefined);
    return this.ca;
  }

  async verify(target: VerifyTarget, signal?: AbortSignal): Promise<Verification> {
    const sni = target.kind === 'tls-sni';
    const urls = sni ? this.sniAddresses.map((address) => `tls://${address}`) : this.urls;
    if (urls.length === 0)
      return {
        passed: true,
        fronts: [],
        skipped: sni ? 'no CL_DEPLOY_VERIFY_SNI_ADDRESSES' : 'no CL_DEPLOY_VERIFY_URLS',
      };
    const deadline = Date.now() + target.timeoutMs;
    const fronts = await Promise.all(urls.map((url) => this.probeFront(url, target, deadline, signal)));
    const failed = fronts.filter((front) => !front.passed);
    const probes = fronts.map(({ passed: _passed, ...probe }) => probe);
    if (failed.length === 0) return { passed: true, fronts: probes, skipped: null };
    const reason = failed
      .map((front) => `${front.url}: ${front.error ?? `status ${front.status}`}`)
      .join('; ')
      .slice(0, 500);
    const what = sni
      ? 'the database did not present its certificate through the front'
      : 'the app did not answer through the front';
    return { passed: false, fronts: probes, reason: `${what}: ${reason}` };
  }

  private async probeFront(
    url: string,
    target: VerifyTarget,
    deadline: number,
    signal?: AbortSignal,
  ): Promise<FrontProbe & { passed: boolean }> {
    let inARow = 0;
    let attempts = 0;
    let status: number | null = null;
    let error: string | null = null;
    while (Date.now() < deadline && !signal?.aborted) {
      attempts++;
      try {
        const timeoutMs = Math.min(REQUEST_TIMEOUT_MS, Math.max(1, deadline - Date.now()));
        if (target.kind === 'tls-sni') {
          await this.handshake(url, target.hostname, timeoutMs);
          inARow++;
        } else {
          status = await this.get(url, target, timeoutMs);
          inARow = status >= 200 && status < 400 ? inARow + 1 : 0;
        }
        error = null;
      } catch (failure) {
        status = null;
        error = (failure as Error).message.slice(0, 300);
        inARow = 0;
      }
      if (inARow >= target.successes) return { url, status, error: null, attempts, passed: true };
      await new Promise((resolve) => setTimeout(resolve, PAUSE_MS));
    }
    return {
      url,
      status,
      error: error ?? (status === null ? 'no answer in time' : null),
      attempts,
      passed: false,
    };
  }

  /**
   * A client's TLS handshake through the front by SNI: the route leads to a server holding a certificate
   * of the CA for exactly this name (the agent's, which only it can hold).
   */
  private async handshake(url: string, hostname: string, timeoutMs: number): Promise<void> {
    const { hostname: host, port } = new URL(url);
    const ca = await this.caBundle();
    await new Promise<void>((resolve, reject) => {
      const socket = tlsConnect({
        host: host.replace(/^\[|\]$/g, ''),
        port: Number(port),
        servername: hostname,
        ...(ca ? { ca } : {}),
      });
      const timer = setTimeout(() => socket.destroy(new Error(`no handshake in ${timeoutMs} ms`)), timeoutMs);
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        socket.destroy();
        resolve();
      });
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      socket.once('close', () => {
        clearTimeout(timer);
        reject(new Error('the front closed the connection (no route for this name?)'));
      });
    });
  }

  private async get(base: string, target: VerifyTarget, timeoutMs: number): Promise<number> {
    const url = new URL(target.path, base);
    const ca = await this.caBundle();
    return new Promise((resolve, reject) => {
      const options = {
        method: 'GET',
        headers: { host: target.hostname, 'user-agent': 'cloudlunacy-verifier' },
        timeout: timeoutMs,
        agent: false as const,
      };
      const request =
        url.protocol === 'https:'
          ? httpsRequest(url, { ...options, servername: target.hostname, ...(ca ? { ca } : {}) })
          : httpRequest(url, options);
      request.on('response', (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode ?? 0));
        response.on('error', reject);
      });
      request.on('timeout', () => request.destroy(new Error(`no answer in ${timeoutMs} ms`)));
      request.on('error', reject);
      request.end();
    });
  }
}
