import { DomainError } from '#contracts';

export type CaStoreErrorCode =
  /** No CA in the store (and the caller did not ask to create one). */
  | 'missing'
  /** A file exists but cannot be read as what it should be. */
  | 'corrupt'
  /** The configured encryption key is not the one the CA key was encrypted with. */
  | 'wrong-key'
  /** The CA encryption key file is missing or malformed. */
  | 'key-file'
  /** The stored certificate and private key do not belong together. */
  | 'mismatch';

/** A problem with the CA's files on disk. The message names the file and what to do; it holds no secret. */
export class CaStoreError extends Error {
  constructor(
    readonly code: CaStoreErrorCode,
    message: string,
    readonly path?: string,
  ) {
    super(message);
    this.name = 'CaStoreError';
  }
}

/**
 * A certificate request names a DNS name the requester does not own. `offendingName` is that name, so
 * the service can answer 403 with it and append nothing.
 */
export class NameNotAllowedError extends DomainError {
  constructor(
    readonly offendingName: string,
    field = 'csr',
  ) {
    super(
      'forbidden',
      `the certificate request names "${offendingName}", which the requester does not own`,
      field,
    );
    this.name = 'NameNotAllowedError';
  }
}
