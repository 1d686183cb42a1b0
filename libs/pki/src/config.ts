import { z } from 'zod';
import { hostname } from '#contracts';
import { env, loadConfig } from '#platform';
import { caEncryptionKeyPath } from './encryption.js';

const DAY = 86_400;

/**
 * Configuration of everything that uses the CA (certificates service, CLI). Variable names are the keys,
 * so errors name the variable to fix.
 */
export const pkiConfigSchema = z
  .object({
    /** The CA directory on persistent storage. */
    CL_PKI_DIR: env.string(),
    /** The installation's secrets directory; the CA encryption key defaults to `<dir>/pki/ca-encryption.key`. */
    CL_SECRETS_DIR: z.string().min(1).optional(),
    /** The CA encryption key file, when it is not in the secrets directory. */
    CL_PKI_CA_KEY_FILE: z.string().min(1).optional(),
    /** The installation's domain: names the CA, constrains it, and makes the front's names. */
    CL_DOMAIN: hostname,
    CL_PKI_CA_VALIDITY_DAYS: env.int(3650).pipe(z.number().min(1).max(36500)),
    /** Constrain the CA to CL_DOMAIN (and no IP address) when it is created. */
    CL_PKI_CA_NAME_CONSTRAINTS: env.bool(true),
    /** Lifetime of issued certificates, in seconds (default 90 days; tests use seconds). */
    CL_PKI_CERT_VALIDITY_S: env.int(90 * DAY).pipe(z.number().min(5, 'must be at least 5 seconds')),
    /** Renew a certificate when it expires within this many seconds (default 30 days). */
    CL_PKI_RENEW_BEFORE_S: env.int(30 * DAY).pipe(z.number().min(1)),
    /** How long a published CRL is valid (its nextUpdate), in seconds (default 7 days). */
    CL_PKI_CRL_VALIDITY_S: env.int(7 * DAY).pipe(z.number().min(5, 'must be at least 5 seconds')),
    /** Where the front's own certificate bundle is written. */
    CL_PKI_FRONT_CERT_FILE: z.string().min(1).optional(),
  })
  .superRefine((config, context) => {
    if (!config.CL_PKI_CA_KEY_FILE && !config.CL_SECRETS_DIR) {
      context.addIssue({
        code: 'custom',
        path: ['CL_PKI_CA_KEY_FILE'],
        message: 'must be set (or CL_SECRETS_DIR, whose pki/ca-encryption.key is then used)',
      });
    }
    if (config.CL_PKI_RENEW_BEFORE_S >= config.CL_PKI_CERT_VALIDITY_S) {
      context.addIssue({
        code: 'custom',
        path: ['CL_PKI_RENEW_BEFORE_S'],
        message: `must be shorter than CL_PKI_CERT_VALIDITY_S (${config.CL_PKI_CERT_VALIDITY_S}), or every certificate is always due for renewal`,
      });
    }
  });

export interface PkiSettings {
  dir: string;
  keyFile: string;
  domain: string;
  caValidityDays: number;
  nameConstraints: boolean;
  certValiditySeconds: number;
  renewBeforeSeconds: number;
  crlValiditySeconds: number;
  frontCertificateFile?: string;
}

export function loadPkiConfig(source: NodeJS.ProcessEnv = process.env): PkiSettings {
  const config = loadConfig(pkiConfigSchema, source);
  return {
    dir: config.CL_PKI_DIR,
    keyFile: config.CL_PKI_CA_KEY_FILE ?? caEncryptionKeyPath(config.CL_SECRETS_DIR!),
    domain: config.CL_DOMAIN,
    caValidityDays: config.CL_PKI_CA_VALIDITY_DAYS,
    nameConstraints: config.CL_PKI_CA_NAME_CONSTRAINTS,
    certValiditySeconds: config.CL_PKI_CERT_VALIDITY_S,
    renewBeforeSeconds: config.CL_PKI_RENEW_BEFORE_S,
    crlValiditySeconds: config.CL_PKI_CRL_VALIDITY_S,
    frontCertificateFile: config.CL_PKI_FRONT_CERT_FILE,
  };
}

/** The CA creation options that follow from the settings. */
export function caOptionsFrom(settings: PkiSettings) {
  return {
    installation: settings.domain,
    validityDays: settings.caValidityDays,
    permittedDomains: settings.nameConstraints ? [settings.domain] : [],
  };
}
