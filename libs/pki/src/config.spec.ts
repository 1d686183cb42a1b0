import { ConfigError } from '#platform';
import { caOptionsFrom, loadPkiConfig } from './config.js';

const base = {
  CL_PKI_DIR: '/var/lib/cloudlunacy/pki',
  CL_SECRETS_DIR: '/etc/cloudlunacy/secrets',
  CL_DOMAIN: 'example.test',
};

function variables(env: NodeJS.ProcessEnv): string[] {
  try {
    loadPkiConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).variables.map((entry) => entry.variable);
  }
  return [];
}

describe('loadPkiConfig', () => {
  it('has production defaults and finds the key in the secrets directory', () => {
    const settings = loadPkiConfig(base);
    expect(settings).toEqual({
      dir: '/var/lib/cloudlunacy/pki',
      keyFile: '/etc/cloudlunacy/secrets/pki/ca-encryption.key',
      domain: 'example.test',
      caValidityDays: 3650,
      nameConstraints: true,
      certValiditySeconds: 90 * 86_400,
      renewBeforeSeconds: 30 * 86_400,
      crlValiditySeconds: 7 * 86_400,
      frontCertificateFile: undefined,
    });
    expect(caOptionsFrom(settings)).toEqual({
      installation: 'example.test',
      validityDays: 3650,
      permittedDomains: ['example.test'],
    });
  });

  it('takes short validities for tests and an explicit key file', () => {
    const settings = loadPkiConfig({
      ...base,
      CL_SECRETS_DIR: undefined,
      CL_PKI_CA_KEY_FILE: '/run/secrets/ca.key',
      CL_PKI_CERT_VALIDITY_S: '120',
      CL_PKI_RENEW_BEFORE_S: '60',
      CL_PKI_CA_NAME_CONSTRAINTS: 'false',
    });
    expect(settings).toEqual(
      expect.objectContaining({
        keyFile: '/run/secrets/ca.key',
        certValiditySeconds: 120,
        renewBeforeSeconds: 60,
      }),
    );
    expect(caOptionsFrom(settings).permittedDomains).toEqual([]);
  });

  it('names the variable to fix', () => {
    expect(variables({ ...base, CL_DOMAIN: 'Example.test' })).toEqual(['CL_DOMAIN']);
    expect(variables({ ...base, CL_SECRETS_DIR: undefined })).toEqual(['CL_PKI_CA_KEY_FILE']);
    expect(variables({ ...base, CL_PKI_CERT_VALIDITY_S: '100', CL_PKI_RENEW_BEFORE_S: '100' })).toEqual([
      'CL_PKI_RENEW_BEFORE_S',
    ]);
    expect(variables({ ...base, CL_PKI_CERT_VALIDITY_S: '2' })).toContain('CL_PKI_CERT_VALIDITY_S');
    expect(variables({ ...base, CL_PKI_CERT_VALIDITY_S: 'soon' })).toContain('CL_PKI_CERT_VALIDITY_S');
    expect(variables({ CL_DOMAIN: 'example.test', CL_SECRETS_DIR: '/s' })).toEqual(['CL_PKI_DIR']);
  });
});
