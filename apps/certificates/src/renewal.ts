import type { DataSource } from 'typeorm';
import { certificatesDueForRenewal } from '#persistence';
import type { Logger } from '#platform';
import type { AgentChannel } from './agent-channel.js';
import type { CertificateCommands } from './certificates.commands.js';

export interface RenewalOptions {
  /** Renew when notAfter is closer than this (CL_PKI_RENEW_BEFORE_S). */
  renewBeforeSeconds: number;
  /** Ask again after this long when the agent has not renewed (CL_CERTS_RENEW_RETRY_S). */
  retrySeconds: number;
  /**
   * The CA's notAfter: a certificate that already ends with the CA is not renewed (a new one could not
   * last longer); only a new CA helps then, and the agent is not asked again and again meanwhile.
   */
  caNotAfter: string;
}

/**
 * Level-triggered renewal: every tick, the installed certificates of live agents that are inside their
 * renewal window, not expired, and not yet replaced by an installed renewal are read from the
 * `certificates` projection, and their agents are asked (through their durable consumers) for a CSR of a
 * new key. An agent that does not answer is asked again after the retry interval. The front's bundle is
 * checked on the same tick.
 */
export class RenewalScheduler {
  private readonly asked = new Map<string, number>();

  constructor(
    private readonly dataSource: DataSource,
    private readonly channel: AgentChannel,
    private readonly commands: CertificateCommands,
    private readonly options: RenewalOptions,
    private readonly logger: Logger,
  ) {}

  async tick(now = new Date()): Promise<number> {
    await this.commands
      .ensureFront()
      .catch((error: unknown) => this.logger.error('front certificate check failed', { error }));
    const rows = await certificatesDueForRenewal(this.dataSource, {
      now,
      renewBeforeSeconds: this.options.renewBeforeSeconds,
      caNotAfter: this.options.caNotAfter,
    });
    const retryMs = this.options.retrySeconds * 1000;
    const due = new Set(rows.map((row) => row.serial));
    for (const serial of this.asked.keys()) if (!due.has(serial)) this.asked.delete(serial);
    let sent = 0;
    for (const row of rows) {
      const last = this.asked.get(row.serial);
      if (last !== undefined && now.getTime() - last < retryMs) continue;
      // One message per retry window, whichever replica sends it (message ids dedupe the rest).
      const attempt = String(Math.floor(now.getTime() / retryMs));
      const ok = await this.channel.askRenewal(
        row.agentId,
        {
          serial: row.serial,
          names: row.names,
          notAfter: new Date(row.notAfter).toISOString(),
          requestedAt: now.toISOString(),
        },
        attempt,
      );
      if (!ok) continue;
      this.asked.set(row.serial, now.getTime());
      sent++;
      this.logger.info('renewal requested', {
        agentId: row.agentId,
        serial: row.serial,
        notAfter: new Date(row.notAfter).toISOString(),
        again: last !== undefined,
      });
    }
    return sent;
  }
}
