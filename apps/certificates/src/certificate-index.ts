import { aggregateTypeSubjects, type DomainEvent } from '#contracts';
import type { EventStore } from '#eventstore';
import type { RevokedEntry, RevocationReason } from '#pki';
import {
  evolveHolder,
  initialHolderState,
  type HeldCertificate,
  type HolderState,
} from './domain/decider.js';

/**
 * Every holder's certificates, folded from `events.certificate.*` and brought up to date on demand
 * (incrementally: only what was appended since the last read). The CRL is built from it, so it lists
 * what the log says was revoked — whoever appended the revocation.
 */
export class CertificateIndex {
  private lastSequence = 0;
  private readonly holders = new Map<string, HolderState>();
  private reading?: Promise<void>;
  private revokedCount = 0;

  constructor(private readonly store: EventStore) {}

  /** How many revocations were folded so far: a CRL built at another count is out of date. */
  get revocations(): number {
    return this.revokedCount;
  }

  /**
   * Brings the index up to at least the end of the log as it is when called (a read that began earlier
   * is waited for, then the rest is read), so a caller always sees what was appended before it asked.
   * One read at a time.
   */
  async refresh(): Promise<void> {
    const target = await this.store.lastSequence();
    while (this.lastSequence < target) {
      if (this.reading) {
        await this.reading;
        continue;
      }
      this.reading = this.read(target).finally(() => (this.reading = undefined));
      await this.reading;
    }
  }

  private async read(until: number): Promise<void> {
    if (until <= this.lastSequence) return;
    for await (const event of this.store.readLog({
      filterSubject: aggregateTypeSubjects('certificate', this.store.subjectPrefix),
      fromSequence: this.lastSequence + 1,
      untilSequence: until,
    })) {
      const holder = event.aggregate.id;
      const before = this.holders.get(holder) ?? initialHolderState;
      const after = evolveHolder(before, event as DomainEvent);
      if (event.type === 'CertificateRevoked' && after !== before) this.revokedCount++;
      this.holders.set(holder, after);
    }
    this.lastSequence = until;
  }

  holderOf(serial: string): string | undefined {
    for (const [holder, state] of this.holders) if (state.certificates.has(serial)) return holder;
    return undefined;
  }

  *certificates(): Generator<[string, HeldCertificate]> {
    for (const [holder, state] of this.holders)
      for (const certificate of state.certificates.values()) yield [holder, certificate];
  }

  /**
   * The CRL's entries: revoked certificates, until their notAfter is further in the past than one CRL
   * validity (a relying party holding an older CRL has stopped using it by then).
   */
  revokedEntries(now: Date, keepAfterExpiryMs: number): RevokedEntry[] {
    const entries: RevokedEntry[] = [];
    for (const [, certificate] of this.certificates()) {
      if (certificate.status !== 'revoked' || certificate.revokedAt === null) continue;
      if (Date.parse(certificate.notAfter) + keepAfterExpiryMs < now.getTime()) continue;
      entries.push({
        serial: certificate.serial,
        revokedAt: certificate.revokedAt,
        reason: (certificate.revocationReason ?? 'unspecified') as RevocationReason,
      });
    }
    return entries;
  }
}
