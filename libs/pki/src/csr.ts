import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { ValidationError } from '#contracts';
import { decodeSinglePem, normalizeDnsName, PemError, printable, publicKeyFingerprint } from '#pki-client';
import { childrenOf, OID, readTlv, TAG, toBinary } from './der.js';
import { NameNotAllowedError } from './errors.js';

/** Upper bound of a CSR in PEM form: a 8192-bit RSA request with 100 names is far below it. */
export const CSR_MAX_LENGTH = 16 * 1024;
export const MIN_RSA_BITS = 2048;
export const MAX_RSA_BITS = 8192;

const verified: unique symbol = Symbol('verified CSR');

/**
 * A certificate request whose structure, key and signature were checked by `parseCsr`. Only `parseCsr`
 * makes one (the brand cannot be forged), so `issueCertificate` cannot be handed an unchecked request.
 */
export interface VerifiedCsr {
  readonly [verified]: true;
  /** Requested DNS names, lower case, de-duplicated: the subject CN first (if any), then the SAN. */
  readonly names: readonly string[];
  readonly commonName?: string;
  /** The requester's public key (SubjectPublicKeyInfo PEM). */
  readonly publicKeyPem: string;
  readonly publicKeyBits: number;
  /** SHA-256 of the SubjectPublicKeyInfo, hex: recognises a re-sent request for the same key pair. */
  readonly publicKeyFingerprint: string;
  /** The request's own signature algorithm, e.g. `sha256WithRSAEncryption`. */
  readonly signatureAlgorithm: string;
}

export interface ParseCsrOptions {
  /** The input's field name in errors; default `csr`. */
  field?: string;
  /** Accept `*.` names (only the front's own certificate does). Default false. */
  allowWildcards?: boolean;
  /** Minimum RSA modulus; default and floor 2048. */
  minRsaBits?: number;
  /** Maximum number of names; default 100. */
  maxNames?: number;
}

const SIGNATURE_HASHES: Record<string, { hash: string; name: string }> = {
  [OID.sha256WithRSAEncryption]: { hash: 'sha256', name: 'sha256WithRSAEncryption' },
  [OID.sha384WithRSAEncryption]: { hash: 'sha384', name: 'sha384WithRSAEncryption' },
  [OID.sha512WithRSAEncryption]: { hash: 'sha512', name: 'sha512WithRSAEncryption' },
};
const REFUSED_SIGNATURES: Record<string, string> = {
  [OID.sha1WithRSAEncryption]: 'is signed with SHA-1; sign it with SHA-256 or stronger',
  [OID.md5WithRSAEncryption]: 'is signed with MD5; sign it with SHA-256 or stronger',
  [OID.rsassaPss]: 'is signed with RSASSA-PSS, which is not supported; sign it with sha256WithRSAEncryption',
};

const SAN_TYPES: Record<number, string> = {
  0: 'an otherName',
  1: 'an e-mail address',
  3: 'an X.400 address',
  4: 'a directory name',
  5: 'an EDI party name',
  6: 'a URI',
  7: 'an IP address',
  8: 'a registered ID',
};

interface Structure {
  info: Buffer;
  spki: Buffer;
  signatureOid: string;
  signature: Buffer;
}

/** Locates the signed bytes, the key and the signature in the original DER (no re-encoding). */
function structureOf(der: Buffer): Structure {
  const outer = readTlv(der, 0);
  if (outer.tag !== TAG.SEQUENCE || outer.end !== der.length) throw new Error('not one DER SEQUENCE');
  const [info, algorithm, signature, ...rest] = childrenOf(der, outer);
  if (!info || !algorithm || !signature || rest.length > 0) throw new Error('not three parts');
  if (info.tag !== TAG.SEQUENCE || algorithm.tag !== TAG.SEQUENCE || signature.tag !== TAG.BIT_STRING)
    throw new Error('unexpected parts');
  const [, , spki] = childrenOf(der, info);
  if (!spki || spki.tag !== TAG.SEQUENCE) throw new Error('no SubjectPublicKeyInfo');
  const [algorithmOid] = childrenOf(der, algorithm);
  if (!algorithmOid || algorithmOid.tag !== TAG.OID) throw new Error('no signature algorithm');
  const bits = der.subarray(signature.contentStart, signature.end);
  if (bits.length < 2 || bits[0] !== 0) throw new Error('malformed signature BIT STRING');
  return {
    info: der.subarray(info.start, info.end),
    spki: der.subarray(spki.start, spki.end),
    signatureOid: forge.asn1.derToOid(toBinary(der.subarray(algorithmOid.contentStart, algorithmOid.end))),
    signature: bits.subarray(1),
  };
}

interface ForgeAltName {
  type: number;
  value?: string;
  ip?: string;
}

/**
 * Parses and checks a PKCS#10 certificate signing request from outside (an agent, over HTTP or NATS):
 * one PEM block; an RSA key of at least 2048 bits; a SHA-2 signature that verifies over the exact signed
 * bytes (checked by OpenSSL, and again by node-forge on its own parse); DNS names only (CN and SAN
 * dNSName), lower-cased and validated; no IP, e-mail or URI names; wildcards only if allowed. Every refusal
 * is a ValidationError naming `field` and saying why. Requested extensions other than the SAN and subject
 * attributes other than the CN are ignored: the CA's profile decides what is issued.
 */
export function parseCsr(input: unknown, options: ParseCsrOptions = {}): VerifiedCsr {
  const field = options.field ?? 'csr';
  const refuse = (message: string): never => {
    throw new ValidationError([{ field, message }]);
  };
  if (typeof input !== 'string' || input.length === 0) return refuse('must be a PEM certificate request');
  if (input.length > CSR_MAX_LENGTH) return refuse(`must be at most ${CSR_MAX_LENGTH} characters`);

  let der: Buffer;
  try {
    const normalized = input.replace(
      '-----BEGIN NEW CERTIFICATE REQUEST-----',
      '-----BEGIN CERTIFICATE REQUEST-----',
    );
    der = decodeSinglePem(
      normalized.replace('-----END NEW CERTIFICATE REQUEST-----', '-----END CERTIFICATE REQUEST-----'),
      'CERTIFICATE REQUEST',
    );
  } catch (error) {
    return refuse(
      `is not a PEM certificate request: ${error instanceof PemError ? error.message : 'unreadable'}`,
    );
  }

  let structure: Structure;
  try {
    structure = structureOf(der);
  } catch {
    return refuse('is not a PKCS#10 certificate request (its DER structure is broken)');
  }

  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: structure.spki, format: 'der', type: 'spki' });
  } catch {
    return refuse('has a public key that cannot be read');
  }
  if (publicKey.asymmetricKeyType !== 'rsa')
    return refuse(
      `has ${publicKey.asymmetricKeyType === 'ec' ? 'an EC' : `a ${publicKey.asymmetricKeyType ?? 'unknown'}`} key; only RSA keys are accepted`,
    );
  const bits = publicKey.asymmetricKeyDetails?.modulusLength ?? 0;
  const minBits = Math.max(MIN_RSA_BITS, options.minRsaBits ?? MIN_RSA_BITS);
  if (bits < minBits) return refuse(`has an RSA key of ${bits} bits; at least ${minBits} bits are required`);
  if (bits > MAX_RSA_BITS)
    return refuse(`has an RSA key of ${bits} bits; at most ${MAX_RSA_BITS} are accepted`);
  const exponent = publicKey.asymmetricKeyDetails?.publicExponent ?? 0n;
  if (exponent < 3n || exponent % 2n === 0n) return refuse('has an RSA key with an unsafe public exponent');

  const refused = REFUSED_SIGNATURES[structure.signatureOid];
  if (refused) return refuse(refused);
  const algorithm = SIGNATURE_HASHES[structure.signatureOid];
  if (!algorithm) return refuse(`is signed with an unsupported algorithm (${structure.signatureOid})`);
  const signatureValid = (() => {
    try {
      return verify(algorithm.hash, structure.info, publicKey, structure.signature);
    } catch {
      return false;
    }
  })();
  const notSigned =
    'has a signature that does not verify: it was altered, or not signed by the key it contains';
  if (!signatureValid) return refuse(notSigned);

  let csr: forge.pki.CertificateSigningRequest;
  try {
    csr = forge.pki.certificationRequestFromAsn1(forge.asn1.fromDer(toBinary(der), true));
  } catch {
    return refuse('is not a PKCS#10 certificate request');
  }
  // A second, independent verification on forge's reading of the request: the two must agree.
  if (!csr.verify()) return refuse(notSigned);

  const names: string[] = [];
  const addName = (name: unknown, where: string) => {
    try {
      names.push(normalizeDnsName(name, { allowWildcard: options.allowWildcards }));
    } catch (error) {
      refuse(`${where} ${(error as Error).message}`);
    }
  };
  const commonNames = csr.subject.attributes.filter(
    (attribute) => attribute.type === forge.pki.oids.commonName,
  );
  if (commonNames.length > 1) refuse('has more than one subject CN');
  const commonName = commonNames[0]?.value as string | undefined;
  if (commonName !== undefined) addName(commonName, 'subject CN');

  const extensionRequest = (
    csr.getAttribute({ name: 'extensionRequest' }) as {
      extensions?: { name?: string; altNames?: ForgeAltName[] }[];
    } | null
  )?.extensions;
  for (const extension of extensionRequest ?? []) {
    if (extension.name !== 'subjectAltName') continue;
    for (const altName of extension.altNames ?? []) {
      if (altName.type !== 2) {
        const shown = altName.ip ?? (typeof altName.value === 'string' ? printable(altName.value) : '');
        refuse(
          `requests ${SAN_TYPES[altName.type] ?? `a type ${altName.type} name`}${shown ? ` "${shown}"` : ''} in its subjectAltName; only DNS names are certified`,
        );
      }
      addName(altName.value, 'subjectAltName');
    }
  }
  const unique = [...new Set(names)];
  if (unique.length === 0) refuse('requests no DNS name (put the names in the subjectAltName)');
  const maxNames = options.maxNames ?? 100;
  if (unique.length > maxNames) refuse(`requests ${unique.length} names; at most ${maxNames} are accepted`);

  return {
    [verified]: true,
    names: unique,
    commonName: commonName?.toLowerCase(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    publicKeyBits: bits,
    publicKeyFingerprint: publicKeyFingerprint(publicKey),
    signatureAlgorithm: algorithm.name,
  };
}

/**
 * The ownership policy: every requested name must be one of `allowed` (exact match, case-insensitive;
 * a wildcard is allowed only where `allowed` lists that same wildcard). Throws NameNotAllowedError
 * (DomainError `forbidden`, HTTP 403) naming the first offending name. For an agent, `allowed` is
 * `<agentId>.mongodb.<domain>` plus the hostnames of its own routes.
 */
export function assertNamesAllowed(
  requested: readonly string[],
  allowed: Iterable<string>,
  field = 'csr',
): void {
  const permitted = new Set([...allowed].map((name) => name.toLowerCase()));
  for (const name of requested) {
    if (!permitted.has(name.toLowerCase())) throw new NameNotAllowedError(printable(name, 253), field);
  }
}
