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
    private readonly timeoutMs = 15_000,
  ) {}

  private async post<T>(path: string, body: unknown): Promise<T> {
    const response = await fetch(new URL(`/api/v1/${path}`, this.baseUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = { message: text.slice(0, 200) };
    }
    if (!response.ok) throw new ApiError(response.status, parsed as Partial<ErrorBody>);
    return parsed as T;
  }

  enroll(request: {
    token: string;
    agentId?: string;
    publicAddress: string;
    natsPublicKey: string;
    labels: Record<string, string>;
  }): Promise<EnrollAnswer> {
    return this.post('agents/enroll', request);
  }

  refresh(refreshToken: string): Promise<Credentials> {
    return this.post('auth/refresh', { refreshToken });
  }
}
