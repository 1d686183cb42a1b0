import { link, mkdir, rename, rm } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import {
  caOptionsFrom,
  CaStore,
  ensureFrontCertificate,
  generateCaEncryptionKey,
  loadPkiConfig,
  readCaEncryptionKey,
  type PkiSettings,
} from '#pki';
import { syncDirectory, writeFileDurably } from '#pki-client';
import { UsageError, type CliCommand } from '../command.js';

/** The PKI settings from CL_* variables, with `--domain` standing in for CL_DOMAIN. */
function settings(domain?: string | boolean): PkiSettings {
  return loadPkiConfig(typeof domain === 'string' ? { ...process.env, CL_DOMAIN: domain } : process.env);
}

async function openStore(config: PkiSettings) {
  const store = new CaStore({
    dir: resolve(config.dir),
    encryptionKey: await readCaEncryptionKey(config.keyFile),
  });
  return { store, ...(await store.openOrCreate(caOptionsFrom(config))) };
}

/** What the CLI prints about the CA: public facts only. */
function caSummary(ca: {
  fingerprint: string;
  subject: string;
  serial: string;
  notBefore: string;
  notAfter: string;
}) {
  const { fingerprint, subject, serial, notBefore, notAfter } = ca;
  return { fingerprint, subject, serial, notBefore, notAfter };
}

export const certsCommands: CliCommand[] = [
  {
    path: ['certs', 'ca', 'init'],
    summary: 'create the CloudLunacy CA if there is none (CL_PKI_DIR); print its fingerprint',
    usage: '[--domain <domain>]',
    options: { domain: { type: 'string' } },
    async run({ values }) {
      const config = settings(values.domain);
      const { store, ca, created } = await openStore(config);
      console.log(JSON.stringify({ created, dir: store.dir, caPem: store.paths.caPem, ...caSummary(ca) }));
    },
  },
  {
    path: ['certs', 'ca', 'show'],
    summary: 'print the CA certificate (public facts; --pem for the certificate itself)',
    usage: '[--pem]',
    options: { pem: { type: 'boolean' } },
    async run({ values }) {
      const config = settings();
      const store = new CaStore({
        dir: resolve(config.dir),
        encryptionKey: await readCaEncryptionKey(config.keyFile),
      });
      const ca = await store.load();
      if (values.pem) process.stdout.write(ca.certificatePem);
      else console.log(JSON.stringify(caSummary(ca)));
    },
  },
  {
    path: ['certs', 'ca', 'rekey'],
    summary: 're-encrypt the CA private key under a new CA encryption key (same CA, new key file)',
    async run() {
      const config = settings();
      const keyFile = resolve(config.keyFile);
      const oldKey = await readCaEncryptionKey(keyFile);
      const store = new CaStore({ dir: resolve(config.dir), encryptionKey: oldKey });
      await store.load(); // fails clearly, before anything changes, if the current key is wrong
      const next = `${keyFile}.new`;
      const previous = `${keyFile}.previous`;
      // 1. the new key, durably, beside the current one (refuses to overwrite a leftover .new file)
      try {
        await writeFileDurably(next, generateCaEncryptionKey(), 0o600);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST')
          throw new UsageError(
            `${next} exists (an interrupted rekey?): check which key opens ca.json, then remove it`,
          );
        throw error;
      }
      const newKey = await readCaEncryptionKey(next);
      // 2. ca.json re-encrypted (atomic), 3. the key files swapped, the old one kept as .previous
      const ca = await store.rewrap(newKey);
      await rm(previous, { force: true });
      await link(keyFile, previous);
      await rename(next, keyFile);
      await syncDirectory(dirname(keyFile));
      console.log(
        JSON.stringify({
          fingerprint: ca.fingerprint,
          keyFile,
          previousKeyFile: previous,
          oldKeyId: oldKey.id,
          newKeyId: newKey.id,
          next: 'restart the certificates service; back up the new key file apart from the CA directory; then destroy the .previous file',
        }),
      );
    },
  },
  {
    path: ['certs', 'front'],
    summary: "issue or renew the front's certificate for *.apps.<domain> and *.mongodb.<domain>",
    usage: '[--out <file>] [--domain <d>] [--force]',
    options: { domain: { type: 'string' }, out: { type: 'string' }, force: { type: 'boolean' } },
    async run({ values }) {
      const config = settings(values.domain);
      const out = typeof values.out === 'string' ? values.out : config.frontCertificateFile;
      if (!out) throw new UsageError('--out <file> is required when CL_PKI_FRONT_CERT_FILE is not set');
      const { ca } = await openStore(config);
      await mkdir(dirname(resolve(out)), { recursive: true, mode: 0o700 });
      const result = await ensureFrontCertificate(ca, {
        domain: config.domain,
        path: resolve(out),
        validitySeconds: config.certValiditySeconds,
        renewBeforeSeconds: config.renewBeforeSeconds,
        force: values.force === true,
      });
      const { issued: _issued, ...summary } = result;
      console.log(JSON.stringify({ ...summary, caFingerprint: ca.fingerprint }));
    },
  },
];
