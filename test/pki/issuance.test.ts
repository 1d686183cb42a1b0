import {
  createServer as createTlsServer,
  connect as tlsConnect,
  type ConnectionOptions,
  type TLSSocket,
} from 'node:tls';
import type { AddressInfo } from 'node:net';
import {
  CaEncryptionKey,
  CaStore,
  issueCertificate,
  parseCsr,
  assertNamesAllowed,
  type CertificateAuthority,
  type IssuedCertificate,
} from '#pki';
import {
  agentDatabaseHostname,
  createCsr,
  generateRsaKeyPair,
  inspectCertificate,
  isIssuedBy,
} from '#pki-client';
import { makeTempDir } from '../harness/processes.js';
import { openssl, put } from './helpers.js';

const domain = 'example.test';
const agentId = 'agent-7f3a';
const agentName = agentDatabaseHostname(agentId, domain);

let temp: { path: string; remove(): Promise<void> };
let ca: CertificateAuthority;
let caFile: string;
let agentKey: string;
let issued: IssuedCertificate;
let certFile: string;

beforeAll(async () => {
  temp = await makeTempDir('pki-issuance');
  const store = new CaStore({ dir: `${temp.path}/ca`, encryptionKey: CaEncryptionKey.generate() });
  ({ ca } = await store.openOrCreate({ installation: domain, permittedDomains: [domain] }));
  caFile = store.paths.caPem;
  ({ privateKeyPem: agentKey } = await generateRsaKeyPair(2048));
  const csr = parseCsr(createCsr({ privateKey: agentKey, names: [agentName, `shop.apps.${domain}`] }));
  assertNamesAllowed(csr.names, [agentName, `shop.apps.${domain}`]);
  issued = issueCertificate(ca, csr, { validitySeconds: 3600 });
  certFile = await put(temp.path, 'agent.pem', issued.certificatePem);
});
afterAll(async () => {
  await temp?.remove();
});

test('openssl verify accepts the issued certificate with only the CA as trust anchor', async () => {
  const result = await openssl([
    'verify',
    '-x509_strict',
    '-purpose',
    'sslserver',
    '-CAfile',
    caFile,
    certFile,
  ]);
  expect(result.stderr).toBe('');
  expect(result.stdout.trim()).toBe(`${certFile}: OK`);
  const client = await openssl([
    'verify',
    '-x509_strict',
    '-purpose',
    'sslclient',
    '-CAfile',
    caFile,
    certFile,
  ]);
  expect(client.code).toBe(0);
});

test('openssl verify refuses the certificate against another CA', async () => {
  const other = new CaStore({ dir: `${temp.path}/other-ca`, encryptionKey: CaEncryptionKey.generate() });
  await other.openOrCreate({ installation: 'other.test' });
  const result = await openssl(['verify', '-CAfile', other.paths.caPem, certFile]);
  expect(result.code).not.toBe(0);
  expect(result.stdout + result.stderr).toMatch(/unable to get local issuer certificate/);
});

test('openssl x509 -text shows the leaf profile', async () => {
  const { stdout, code } = await openssl(['x509', '-in', certFile, '-noout', '-text']);
  expect(code).toBe(0);
  expect(stdout).toMatch(/Version: 3 \(0x2\)/);
  expect(stdout).toMatch(/Signature Algorithm: sha256WithRSAEncryption/);
  expect(stdout).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE/);
  expect(stdout).toMatch(/X509v3 Key Usage: critical\s+Digital Signature, Key Encipherment\n/);
  expect(stdout).toMatch(
    /X509v3 Extended Key Usage:\s+TLS Web Server Authentication, TLS Web Client Authentication\n/,
  );
  expect(stdout).toMatch(
    new RegExp(`X509v3 Subject Alternative Name:\\s+DNS:${agentName}, DNS:shop.apps.${domain}\\n`),
  );
  expect(stdout).toMatch(new RegExp(`Subject: CN ?= ?${agentName}\\n`));
  const ski = /X509v3 Subject Key Identifier:\s+([0-9A-F:]+)/.exec(stdout)?.[1];
  const aki = /X509v3 Authority Key Identifier:\s+(?:keyid:)?([0-9A-F:]+)/.exec(stdout)?.[1];
  expect(ski).toBeDefined();
  expect(aki?.replace(/:/g, '').toLowerCase()).toBe(ca.keyIdentifier);
  expect(ski).not.toBe(aki);
  // The serial openssl reads is the one the CA reported.
  const serial = await openssl(['x509', '-in', certFile, '-noout', '-serial']);
  expect(serial.stdout.trim().toLowerCase()).toBe(`serial=${issued.serial}`);
  const fingerprint = await openssl(['x509', '-in', certFile, '-noout', '-fingerprint', '-sha256']);
  expect(fingerprint.stdout.split('=')[1]!.trim().replace(/:/g, '').toLowerCase()).toBe(issued.fingerprint);
});

test('openssl x509 -text shows the CA profile', async () => {
  const { stdout } = await openssl(['x509', '-in', caFile, '-noout', '-text']);
  expect(stdout).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
  expect(stdout).toMatch(/X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign\n/);
  expect(stdout).toMatch(/X509v3 Subject Key Identifier/);
  expect(stdout).toMatch(/Public-Key: \(3072 bit\)/);
  expect(stdout).toMatch(
    new RegExp(`Subject: O ?= ?CloudLunacy, OU ?= ?${domain}, CN ?= ?CloudLunacy CA ${domain}`),
  );
  expect(stdout).toMatch(
    new RegExp(
      `X509v3 Name Constraints: critical\\s+Permitted:\\s+DNS:${domain}\\s+Excluded:\\s+IP:0.0.0.0/0.0.0.0\\s+IP:(0:){7}0/(0:){7}0\\s`,
    ),
  );
});

test('the issued certificate reports what the certificate says', () => {
  const info = inspectCertificate(issued.certificatePem);
  expect(info).toEqual(
    expect.objectContaining({
      serial: issued.serial,
      fingerprint: issued.fingerprint,
      names: issued.names,
      isCa: false,
    }),
  );
  expect(info.notAfter).toBe(issued.notAfter);
  expect(issued.serial).toMatch(/^[4-7][0-9a-f]{31}$/);
  expect(issued.chainPem).toBe(ca.certificatePem);
  expect(isIssuedBy(issued.certificatePem, ca.certificatePem)).toBe(true);
  expect(JSON.stringify({ ca, issued })).not.toMatch(/PRIVATE KEY/);
});

/** A TLS server presenting the agent's key and certificate (+ chain), as the agent's database would. */
async function agentTlsServer(options: { requestCert?: boolean } = {}) {
  const server = createTlsServer(
    {
      key: agentKey,
      cert: issued.certificatePem + issued.chainPem,
      ca: options.requestCert ? ca.certificatePem : undefined,
      requestCert: options.requestCert ?? false,
      rejectUnauthorized: options.requestCert ?? false,
    },
    (socket) => socket.end(`hello ${socket.authorized ? 'verified ' : ''}client\n`),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((r) => server.close(r)),
  };
}

function tlsRequest(port: number, options: ConnectionOptions): Promise<{ text: string; socket: TLSSocket }> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ...options });
    let text = '';
    socket.on('data', (chunk) => (text += chunk));
    socket.on('end', () => resolve({ text, socket }));
    socket.on('error', reject);
  });
}

test('a Node TLS client trusting only the CA accepts the agent by its name', async () => {
  const tls = await agentTlsServer();
  try {
    const { text, socket } = await tlsRequest(tls.port, { ca: ca.certificatePem, servername: agentName });
    expect(text).toBe('hello client\n');
    expect(socket.authorized).toBe(true);
    // Same server, wrong name: the hostname check fails.
    await expect(
      tlsRequest(tls.port, { ca: ca.certificatePem, servername: `other.mongodb.${domain}` }),
    ).rejects.toThrow(/Hostname\/IP does not match certificate's altnames/);
    // Default trust store only: the CloudLunacy CA is not in it.
    await expect(tlsRequest(tls.port, { servername: agentName })).rejects.toThrow(
      /unable to get local issuer certificate|self.signed/,
    );
  } finally {
    await tls.close();
  }
});

test('openssl s_client -verify_return_error trusting only the CA accepts the agent', async () => {
  const tls = await agentTlsServer();
  try {
    const args = (caPath: string, name: string) => [
      's_client',
      '-connect',
      `127.0.0.1:${tls.port}`,
      '-servername',
      name,
      '-verify_hostname',
      name,
      '-verify_return_error',
      '-CAfile',
      caPath,
      '-no-CApath',
      '-brief',
      // Keep reading after stdin's EOF until the server closes, so its greeting is printed.
      '-ign_eof',
    ];
    const ok = await openssl(args(caFile, agentName));
    // (The exit status is not the judge here: Node ends the connection without a TLS close_notify, which
    // OpenSSL 3 reports as "unexpected eof" after the exchange. The handshake lines and the data are.)
    expect(ok.stderr).toMatch(/CONNECTION ESTABLISHED/);
    expect(ok.stderr).toMatch(/Verification: OK/);
    expect(ok.stderr).toMatch(new RegExp(`Verified peername: ${agentName}`));
    expect(ok.stdout).toBe('hello client\n');
    // With -verify_return_error, a failed verification aborts the handshake: nothing is exchanged.
    const wrongName = await openssl(args(caFile, `intruder.mongodb.${domain}`));
    expect(wrongName.code).not.toBe(0);
    expect(wrongName.stderr).toMatch(/hostname mismatch/);
    expect(wrongName.stderr).not.toMatch(/CONNECTION ESTABLISHED/);
    expect(wrongName.stdout).toBe('');
    const otherCa = await openssl(args(`${temp.path}/other-ca/ca.pem`, agentName));
    expect(otherCa.code).not.toBe(0);
    expect(otherCa.stderr).toMatch(/self-signed certificate in certificate chain|certificate verify failed/);
    expect(otherCa.stdout).toBe('');
  } finally {
    await tls.close();
  }
});

test('the certificate also works as a TLS client certificate (clientAuth) verified against the CA', async () => {
  const tls = await agentTlsServer({ requestCert: true });
  try {
    const { privateKeyPem } = await generateRsaKeyPair(2048);
    const clientName = `client.mongodb.${domain}`;
    const client = issueCertificate(
      ca,
      parseCsr(createCsr({ privateKey: privateKeyPem, names: [clientName] })),
      {
        validitySeconds: 600,
      },
    );
    const { text } = await tlsRequest(tls.port, {
      ca: ca.certificatePem,
      servername: agentName,
      key: privateKeyPem,
      cert: client.certificatePem,
    });
    expect(text).toBe('hello verified client\n');
    // Without a client certificate the server refuses the handshake.
    await expect(tlsRequest(tls.port, { ca: ca.certificatePem, servername: agentName })).rejects.toThrow();
  } finally {
    await tls.close();
  }
});

test('the CA name constraints make any certificate outside the domain fail verification', async () => {
  // parseCsr + the ownership policy never let such a name through; this is the CA's own second line.
  const { privateKeyPem } = await generateRsaKeyPair(2048);
  const outside = issueCertificate(
    ca,
    parseCsr(createCsr({ privateKey: privateKeyPem, names: ['www.bank.test'] })),
    {
      validitySeconds: 600,
    },
  );
  const file = await put(temp.path, 'outside.pem', outside.certificatePem);
  const result = await openssl(['verify', '-CAfile', caFile, file]);
  expect(result.code).not.toBe(0);
  expect(result.stdout + result.stderr).toMatch(/permitted subtree violation/);
});

test('a name longer than 64 characters is certified in a critical SAN with an empty subject, and verifies', async () => {
  const long = `${'db-'.repeat(20)}x.mongodb.${domain}`;
  const certificate = issueCertificate(ca, parseCsr(createCsr({ privateKey: agentKey, names: [long] })), {
    validitySeconds: 600,
  });
  const file = await put(temp.path, 'long.pem', certificate.certificatePem);
  const verify = await openssl(['verify', '-x509_strict', '-CAfile', caFile, '-verify_hostname', long, file]);
  expect(verify.stdout.trim()).toBe(`${file}: OK`);
  const text = await openssl(['x509', '-in', file, '-noout', '-text']);
  expect(text.stdout).toMatch(/Subject: *\n/);
  expect(text.stdout).toMatch(/X509v3 Subject Alternative Name: critical/);
});
