import { z } from 'zod';
import { eventStoreConfigSchema } from '#eventstore';
import { databaseConfigSchema } from '#persistence';
import { env } from '#platform';

/**
 * The certificates service's own variables; the CA's (CL_PKI_*, CL_DOMAIN, CL_SECRETS_DIR) are read by
 * `loadPkiConfig` from `#pki`.
 */
export const certificatesConfigSchema = eventStoreConfigSchema.extend(databaseConfigSchema.shape).extend({
  /** How often certificates inside their renewal window are looked for (and the front bundle checked). */
  CL_CERTS_RENEW_CHECK_MS: env.int(60_000).pipe(z.number().min(100, 'must be at least 100 ms')),
  /** A renewal request an agent has not answered is sent again after this long. */
  CL_CERTS_RENEW_RETRY_S: env.int(3_600).pipe(z.number().min(1, 'must be at least 1 second')),
  /** A cached CRL is signed again after this long even without a new revocation (and always before nextUpdate). */
  CL_CERTS_CRL_REFRESH_S: env.int(300).pipe(z.number().min(1, 'must be at least 1 second')),
  /**
   * The front's certificate bundle that proxy-sync uploads (its CL_FRONT_CERT_FILE): when set here (or as
   * CL_PKI_FRONT_CERT_FILE), the service issues it, renews it in time and records it in the log.
   */
  CL_FRONT_CERT_FILE: z.string().min(1).optional(),
});
export type CertificatesConfig = z.output<typeof certificatesConfigSchema>;
