import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AgentSubjectSet, ErrorBody } from '#contracts';

/** An answer of the API that is not a success; 4xx ones are final for the request that got them. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: Partial<ErrorBody>,
  ) {
    super(
      `${status} ${body.error ?? ''}: ${body.message ?? 'no message'}${body.field ? ` (${body.field})` : ''}`,
    );
    this.name = 'ApiError';
  }
  get final(): boolean {
    return this.status >= 400 && this.status < 500 && this.status !== 408 && this.status !== 429;
  }
}

export interface Credentials {
  agentId: string;
  accessToken: string;
  accessTokenExpiresAt: string;
  refreshToken: string;
  refreshTokenExpiresAt: string;
  nats: { url: string; jwt: string };
}

export interface EnrollAnswer extends Credentials {
  subjects: AgentSubjectSet;
}

/** The few API calls the agent makes. */
export class ApiClient {
  constructor(
    private readonly baseUrl: string,
    private readonly options: {
      timeoutMs?: number;
      /** The local address requests leave from: the API sees it as the agent's (its public address). */
      localAddress?: string;
    } = {},
  ) {}

  private async post<T>(path: string, body: unknown): Promise<T> {
    const { status, text } = await this.send(new URL(`/api/v1/${path}`, this.baseUrl), JSON.stringify(body));
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = { message: text.slice(0, 200) };
    }
    if (status < 200 || status >= 300) throw new ApiError(status, parsed as Partial<ErrorBody>);
    return parsed as T;
  }

  /** node:http rather than fetch: fetch cannot choose the local address. */
  private send(url: URL, body: string): Promise<{ status: number; text: string }> {
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const outgoing = request(
        url,
        {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
          timeout: this.options.timeoutMs ?? 15_000,
          ...(this.options.localAddress ? { localAddress: this.options.localAddress } : {}),
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () =>
            resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
          );
          response.on('error', reject);
        },
      );
      outgoing.on('timeout', () => outgoing.destroy(new Error(`no answer from ${url.origin} in time`)));
      outgoing.on('error', reject);
      outgoing.end(body);
    });
  }

  enroll(request: {
    token: string;
    agentId?: string;
    publicAddress?: string;
    natsPublicKey: string;
    labels: Record<string, string>;
  }): Promise<EnrollAnswer> {
    return this.post('agents/enroll', request);
  }

  refresh(refreshToken: string): Promise<Credentials> {
    return this.post('auth/refresh', { refreshToken });
  }
}
