/**
 * The CloudLunacy CA (server side): creation and encrypted storage of the CA, verification of certificate
 * requests and the name-ownership policy, leaf signing, CRLs, and the front server's own certificate.
 * node-forge builds and reads the X.509 structures; OpenSSL (node:crypto) generates keys, signs and checks
 * signatures. Agents use `#pki-client` instead, which needs no CA.
 */
export { CertificateAuthority, createCertificateAuthority, type CreateCaOptions } from './ca.js';
export * from './csr.js';
export * from './issue.js';
export * from './crl.js';
export * from './store.js';
export * from './front.js';
export * from './config.js';
export * from './errors.js';
export {
  CaEncryptionKey,
  CA_ENCRYPTION_KEY_BYTES,
  caEncryptionKeyPath,
  caEncryptionKeySecret,
  generateCaEncryptionKey,
  readCaEncryptionKey,
} from './encryption.js';
