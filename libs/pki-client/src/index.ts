/**
 * Client-side certificate helpers: everything an agent needs to obtain and install a certificate, and
 * nothing that needs the CA. Safe to run on a customer's VPS (`apps/agent` imports `#pki-client`, never `#pki`).
 */
export * from './pem.js';
export * from './names.js';
export * from './keys.js';
export * from './csr.js';
export * from './inspect.js';
export * from './files.js';
export * from './serial.js';
export * from './sealed-box.js';
