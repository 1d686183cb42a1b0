import { ValidationError } from './validation.js';

/**
 * The error vocabulary shared by services, the API and the CLI. A decider throws a DomainError; the
 * service replies with its JSON form over NATS; the API maps `code` to an HTTP status.
 */
export const ERROR_STATUS = {
  invalid: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  gone: 410,
  /** A body sent without its size where the size is checked before anything is stored. */
  length_required: 411,
  /** A body past its limit (an upload past CL_DEPLOY_UPLOAD_MAX_BYTES). */
  too_large: 413,
  /** A body in an encoding or charset the API does not read (the field names the header). */
  unsupported: 415,
  unavailable: 503,
  timeout: 504,
  internal: 500,
} as const;
export type ErrorCode = keyof typeof ERROR_STATUS;

export interface ErrorBody {
  error: ErrorCode;
  message: string;
  field?: string;
}

export class DomainError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'DomainError';
  }

  get status(): number {
    return ERROR_STATUS[this.code];
  }

  toBody(): ErrorBody {
    return this.field === undefined
      ? { error: this.code, message: this.message }
      : { error: this.code, message: this.message, field: this.field };
  }

  static fromBody(body: ErrorBody): DomainError {
    return new DomainError(body.error, body.message, body.field);
  }
}

/** Any thrown value as an ErrorBody; unexpected errors become `internal` without leaking details. */
export function toErrorBody(error: unknown): ErrorBody {
  if (error instanceof DomainError) return error.toBody();
  if (error instanceof ValidationError)
    return { error: 'invalid', message: error.message, field: error.field };
  return { error: 'internal', message: 'internal error; see the service log for details' };
}

export function isErrorBody(value: unknown): value is ErrorBody {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as ErrorBody).error === 'string' &&
    (value as ErrorBody).error in ERROR_STATUS &&
    typeof (value as ErrorBody).message === 'string'
  );
}
