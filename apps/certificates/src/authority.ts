import { X509Certificate } from 'node:crypto';
import { DomainError, type CaResult } from '#contracts';
import { ConcurrencyError, type EventStore } from '#eventstore';
import {
  caOptionsFrom,
  CaStore,
  readCaEncryptionKey,
  type CertificateAuthority,
  type IssuedCertificate,
  type PkiSettings,
} from '#pki';
import { decodePem, encodePem, inspectCertificate, publicKeyFingerprint } from '#pki-client';
import type { Logger } from '#platform';
import type { IssuedData } from './domain/decider.js';

/** The actor of what the certificates service does by itself (renewals asked, revocations, the front). */
export const CERTIFICATES_ACTOR = { kind: 'system' as const, id: 'certificates' };

/**
 * The CA as this service holds it: opened (or created once) from CL_PKI_DIR with the key from the secrets
 * directory. The private key stays inside `#pki`; this object hands out public facts and signs through it.
 */
export class Authority {
  private constructor(
    readonly ca: CertificateAuthority,
    readonly store: CaStore,
    readonly settings: PkiSettings,
    /** This process created the CA files (first start of an installation). */
    readonly created: boolean,
  ) {}

  static async open(settings: PkiSettings, logger: Logger): Promise<Authority> {
    const store = new CaStore({
      dir: settings.dir,
      encryptionKey: await readCaEncryptionKey(settings.keyFile),
    });
    const { ca, created, raced } = await store.openOrCreate(caOptionsFrom(settings));
    logger.info(created ? 'CA created' : 'CA loaded', {
      fingerprint: ca.fingerprint,
      subject: ca.subject,
      notAfter: ca.notAfter,
      raced,
    });
    return new Authority(ca, store, settings, created);
  }

  get domain(): string {
    return this.settings.domain;
  }

  caResult(): CaResult {
    if (Date.parse(this.ca.notAfter) <= Date.now())
      throw new DomainError('unavailable', `the CA expired at ${this.ca.notAfter}`);
    return {
      fingerprint: this.ca.fingerprint,
      certificatePem: this.ca.certificatePem,
      notAfter: this.ca.notAfter,
    };
  }

  /**
   * Appends CertificateAuthorityCreated for this CA unless the log has it (whoever created the files: this
   * service, another replica or the CLI). Expected sequence 0 on `events.ca.<fingerprint>`: exactly once.
   */
  async record(events: EventStore, logger: Logger): Promise<boolean> {
    const history = await events.readAggregate('ca', this.ca.fingerprint);
    if (history.events.length > 0) return false;
    const { fingerprint, serial, subject, notBefore, notAfter, keyIdentifier, certificatePem } =
      this.ca.toJSON();
    try {
      await events.append(
        { type: 'ca', id: fingerprint },
        [
          {
            type: 'CertificateAuthorityCreated',
            data: { fingerprint, serial, subject, notBefore, notAfter, keyIdentifier, certificatePem },
          },
        ],
        {
          // Caused by the installation's CA file: the first service to start with it records it.
          context: {
            actor: CERTIFICATES_ACTOR,
            correlationId: `ca-${fingerprint}`,
            causationId: `ca-file-${fingerprint}`,
          },
          expectedSequence: 0,
        },
      );
    } catch (error) {
      if (error instanceof ConcurrencyError) return false; // another replica recorded it
      throw error;
    }
    logger.info('CertificateAuthorityCreated recorded', { fingerprint });
    return true;
  }
}

/** What the events carry about a certificate the CA signed for a holder. */
export function issuedData(issued: IssuedCertificate, agentId: string | null): IssuedData {
  return {
    serial: issued.serial,
    agentId,
    names: [...issued.names],
    notBefore: issued.notBefore,
    notAfter: issued.notAfter,
    fingerprint: issued.fingerprint,
    publicKeyFingerprint: issued.publicKeyFingerprint,
    issuerFingerprint: issued.issuerFingerprint,
    certificatePem: issued.certificatePem,
    chainPem: issued.chainPem,
  };
}

/**
 * The public facts of a certificate read from a PEM text that may also hold a key (the front bundle):
 * only its first CERTIFICATE block is looked at, and only that block is returned.
 */
export function describeCertificate(
  text: string,
  ca: CertificateAuthority,
  agentId: string | null,
): IssuedData {
  const block = decodePem(text).find((entry) => entry.type === 'CERTIFICATE');
  if (!block) throw new Error('no certificate in the file');
  const certificatePem = encodePem('CERTIFICATE', block.der);
  const info = inspectCertificate(certificatePem);
  return {
    serial: info.serial,
    agentId,
    names: info.names,
    notBefore: info.notBefore,
    notAfter: info.notAfter,
    fingerprint: info.fingerprint,
    publicKeyFingerprint: publicKeyFingerprint(new X509Certificate(certificatePem).publicKey),
    issuerFingerprint: ca.fingerprint,
    certificatePem,
    chainPem: ca.certificatePem,
  };
}
