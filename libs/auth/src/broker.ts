import { isDeepStrictEqual } from 'node:util';
import { decode, type Account, type ClaimsData } from '@nats-io/jwt';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  accountJwt,
  agentAccountJwt,
  agentAccountKey,
  revocationsOf,
  type NatsKeys,
  type Revocations,
} from './nats-claims.js';

const decoder = new TextDecoder();

/**
 * Account JWTs on nats-server, through the system account (`$SYS.REQ.CLAIMS.UPDATE`, full resolver):
 * the services' account with its exports, and one account per agent with its imports. Pushes are
 * level-triggered: each `ensure…` reads what the server holds and pushes only when its claims differ
 * from the wanted ones, then reads it back. A revoked agent account takes effect at once: the server
 * disconnects its users ("User Authentication Revoked") and refuses new ones.
 */
export class BrokerAccounts {
  /** One update of the services' account at a time in this process (read-modify-write of revocations). */
  private servicesQueue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly system: NatsConnection,
    private readonly keys: Pick<
      NatsKeys,
      'operatorSigning' | 'account' | 'accountSigning' | 'agentSigning' | 'agentAccounts'
    >,
    private readonly timeoutMs = 5_000,
  ) {}

  get servicesAccountPublicKey(): string {
    return this.keys.account.getPublicKey();
  }

  agentAccountPublicKey(agentId: string): string {
    return agentAccountKey(agentId, this.keys.agentAccounts).getPublicKey();
  }

  /**
   * The account JWT the server uses now, or undefined when it has none for that account. A full
   * resolver does not answer a lookup of an account it does not hold (in a cluster another node may),
   * so a lookup that times out means "not there"; pushing it then is harmless.
   */
  async lookup(accountPublicKey: string, timeoutMs = this.timeoutMs): Promise<string | undefined> {
    try {
      const reply = await this.system.request(
        `$SYS.REQ.ACCOUNT.${accountPublicKey}.CLAIMS.LOOKUP`,
        new Uint8Array(),
        { timeout: timeoutMs },
      );
      const text = decoder.decode(reply.data).trim();
      return text.startsWith('eyJ') ? text : undefined;
    } catch (error) {
      if ((error as { name?: string }).name === 'TimeoutError') return undefined;
      throw error;
    }
  }

  /** Makes the server hold the services' account with its exports, keeping the revocations it has. */
  ensureServicesAccount(): Promise<{ pushed: boolean }> {
    const run = this.servicesQueue.then(async () => {
      const onServer = await this.lookup(this.servicesAccountPublicKey);
      const revocations: Revocations = onServer ? revocationsOf(onServer) : {};
      return this.ensure(await accountJwt(this.keys, revocations), onServer);
    });
    this.servicesQueue = run.catch(() => undefined);
    return run;
  }

  /**
   * Makes the server hold an agent's own account: active, or revoked as of `revokedAt` (unix seconds).
   * `isNew`: the account cannot exist yet (a new enrollment), so it is pushed without asking first.
   */
  async ensureAgentAccount(
    agentId: string,
    options: { revokedAt?: number; isNew?: boolean } = {},
  ): Promise<{ pushed: boolean }> {
    const wanted = await agentAccountJwt(agentId, this.keys, options.revokedAt);
    const onServer = options.isNew
      ? undefined
      : await this.lookup(this.agentAccountPublicKey(agentId), Math.min(this.timeoutMs, 1_000));
    return this.ensure(wanted, onServer);
  }

  private async ensure(wanted: string, onServer: string | undefined): Promise<{ pushed: boolean }> {
    if (onServer && sameClaims(onServer, wanted)) return { pushed: false };
    await this.push(wanted);
    const after = await this.lookup(decode(wanted).sub);
    if (!after || !sameClaims(after, wanted)) {
      throw new Error(
        `the account update for ${decode(wanted).name} did not stick; check the nats-server log`,
      );
    }
    return { pushed: true };
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

/** Whether two account JWTs say the same thing (ignoring when they were signed and their ids). */
export function sameClaims(a: string, b: string): boolean {
  const meaning = (token: string) => {
    const claims = decode<Account>(token) as ClaimsData<Account>;
    return { sub: claims.sub, name: claims.name, nats: claims.nats };
  };
  return isDeepStrictEqual(meaning(a), meaning(b));
}
