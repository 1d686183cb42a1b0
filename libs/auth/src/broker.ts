import type { NatsConnection } from '@nats-io/transport-node';
import { accountJwt, revocationsOf, type NatsKeys, type Revocations } from './nats-claims.js';

const decoder = new TextDecoder();

/**
 * Pushes the application account's JWT to nats-server through the system account
 * (`$SYS.REQ.CLAIMS.UPDATE`, full resolver). A revocation in it takes effect at once: the server
 * disconnects the revoked user's connections ("User Authentication Revoked") and refuses new ones.
 *
 * Updates are read-modify-write: the revocations already on the server are kept and merged with the
 * new ones, one update at a time in this process, and each update is checked by reading it back.
 */
export class AccountClaims {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly system: NatsConnection,
    private readonly keys: Pick<NatsKeys, 'operatorSigning' | 'account' | 'accountSigning'>,
    private readonly timeoutMs = 5_000,
  ) {}

  get accountPublicKey(): string {
    return this.keys.account.getPublicKey();
  }

  /** The account JWT the server uses now. */
  async current(): Promise<string> {
    const reply = await this.system.request(
      `$SYS.REQ.ACCOUNT.${this.accountPublicKey}.CLAIMS.LOOKUP`,
      new Uint8Array(),
      { timeout: this.timeoutMs },
    );
    const text = decoder.decode(reply.data).trim();
    if (!text.startsWith('eyJ'))
      throw new Error(`account lookup answered ${text.slice(0, 200) || 'nothing'}`);
    return text;
  }

  async currentRevocations(): Promise<Revocations> {
    return revocationsOf(await this.current());
  }

  /** Makes sure every given user key is revoked (at the given time or later); pushes only when needed. */
  revoke(revocations: Revocations): Promise<{ pushed: boolean }> {
    const run = this.queue.then(() => this.revokeNow(revocations));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async revokeNow(wanted: Revocations): Promise<{ pushed: boolean }> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const onServer = await this.currentRevocations();
      const missing = Object.entries(wanted).filter(([key, at]) => (onServer[key] ?? -1) < at);
      // Read back after every push: done only when the server itself shows the revocation.
      if (missing.length === 0) return { pushed: attempt > 0 };
      const merged: Revocations = { ...onServer };
      for (const [key, at] of missing) merged[key] = at;
      await this.push(await accountJwt(this.keys, merged));
    }
    throw new Error('the account update with the revocation did not stick; check the nats-server log');
  }

  /** Sends an account JWT to the server; throws with the server's reason when it refuses. */
  async push(token: string): Promise<void> {
    const reply = await this.system.request('$SYS.REQ.CLAIMS.UPDATE', new TextEncoder().encode(token), {
      timeout: this.timeoutMs,
    });
    const answer = JSON.parse(decoder.decode(reply.data)) as {
      data?: { code?: number; message?: string };
      error?: { code?: number; description?: string };
    };
    if (answer.error || answer.data?.code !== 200) {
      throw new Error(
        `nats-server refused the account update: ${answer.error?.description ?? answer.data?.message ?? 'no reason given'}`,
      );
    }
  }
}
