import { join } from 'node:path';
import type { CrlResult } from '#contracts';
import { createCrl, type Crl } from '#pki';
import { writeFileAtomic } from '#pki-client';
import type { Logger } from '#platform';
import type { Authority } from './authority.js';
import type { CertificateIndex } from './certificate-index.js';

/**
 * The CRL this CA publishes: built from the log's revocations, signed with a fresh cRLNumber, kept in
 * memory and as `crl.pem` in the CA directory. Signed again after a revocation this service appended, when
 * older than the refresh interval (which also picks up revocations appended elsewhere), and always well
 * before its nextUpdate.
 */
export class CrlPublisher {
  private cached?: Crl;
  private builtAt = 0;
  private dirty = true;
  private building?: Promise<Crl>;
  /** The index's revocation count the cached CRL was built from. */
  private builtFrom = -1;
  private readonly refreshMs: number;

  constructor(
    private readonly authority: Authority,
    private readonly index: CertificateIndex,
    refreshSeconds: number,
    private readonly logger: Logger,
    /** Where each newly signed CRL goes besides crl.pem: the fronts' HAProxy checks targets with it. */
    private readonly publish?: (pem: string) => Promise<void>,
  ) {
    // At most half a CRL's validity, so a published CRL is replaced long before it goes stale.
    this.refreshMs = Math.min(refreshSeconds, authority.settings.crlValiditySeconds / 2) * 1000;
  }

  get path(): string {
    return join(this.authority.store.dir, 'crl.pem');
  }

  /** A revocation was appended: the next read signs a new CRL. */
  invalidate(): void {
    this.dirty = true;
  }

  /**
   * The CRL to publish. It lists every revocation in the log when asked, whoever appended it: the index
   * is brought up to date first and a CRL built from fewer revocations (or being built) is not served.
   */
  async current(): Promise<CrlResult> {
    await this.index.refresh();
    if (this.index.revocations !== this.builtFrom) this.dirty = true;
    const fresh = this.cached && !this.dirty && !this.building && Date.now() - this.builtAt < this.refreshMs;
    const crl = fresh ? this.cached! : await this.rebuild();
    return {
      pem: crl.pem,
      crlNumber: crl.crlNumber,
      thisUpdate: crl.thisUpdate,
      nextUpdate: crl.nextUpdate,
      serials: crl.serials,
    };
  }

  /** Builds and signs a CRL now (serialised: one signature at a time). */
  rebuild(): Promise<Crl> {
    if (this.building) return this.building.then(() => (this.dirty ? this.rebuild() : this.cached!));
    this.building = this.build().finally(() => (this.building = undefined));
    return this.building;
  }

  private async build(): Promise<Crl> {
    this.dirty = false;
    try {
      await this.index.refresh();
      const revocations = this.index.revocations;
      const now = new Date();
      const { settings, ca, store } = this.authority;
      const crl = createCrl(ca, {
        crlNumber: await store.nextCrlNumber(now),
        revoked: this.index.revokedEntries(now, settings.crlValiditySeconds * 1000),
        thisUpdate: now,
        validitySeconds: settings.crlValiditySeconds,
      });
      await writeFileAtomic(this.path, crl.pem, { mode: 0o644 });
      await this.publish?.(crl.pem).catch((error: unknown) =>
        this.logger.warn('could not publish the CRL to the fronts; the next one will be', { error }),
      );
      this.cached = crl;
      this.builtAt = Date.now();
      this.builtFrom = revocations;
      this.logger.info('CRL signed', {
        crlNumber: crl.crlNumber,
        revoked: crl.serials.length,
        nextUpdate: crl.nextUpdate,
      });
      return crl;
    } catch (error) {
      this.dirty = true;
      throw error;
    }
  }
}
