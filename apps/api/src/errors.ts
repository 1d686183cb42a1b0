import { Catch, HttpException, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import { ERROR_STATUS, toErrorBody, type ErrorBody, type ErrorCode } from '#contracts';
import type { Logger } from '#platform';
import { requestIdOf } from './edge.js';

const CODE_BY_STATUS: Record<number, ErrorCode> = {
  400: 'invalid',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  409: 'conflict',
  410: 'gone',
  503: 'unavailable',
  504: 'timeout',
};

/** Any error as `{ error, message, field? }` and its status. */
export function errorResponse(error: unknown): { status: number; body: ErrorBody } {
  if (error instanceof HttpException) {
    const status = error.getStatus();
    const code = CODE_BY_STATUS[status] ?? (status >= 500 ? 'internal' : 'invalid');
    return { status, body: { error: code, message: status === 404 ? 'no such route' : error.message } };
  }
  const parserError = error as { type?: string; status?: number } | undefined;
  if (parserError?.type === 'entity.too.large') {
    return { status: 413, body: { error: 'invalid', message: 'the body is too large', field: '(body)' } };
  }
  if (typeof parserError?.type === 'string' && parserError.type.startsWith('entity.')) {
    return {
      status: 400,
      body: { error: 'invalid', message: 'the body is not valid JSON', field: '(body)' },
    };
  }
  const body = toErrorBody(error);
  return { status: ERROR_STATUS[body.error], body };
}

const RETRY_AFTER_S = 2;
const GENERIC_INTERNAL = toErrorBody(new Error()).message;

/**
 * Every 5xx is logged with the request's id, which the response carries too (X-Request-Id, and in the
 * message of an internal error), so an admin can find the one log line a user quotes.
 */
function send(
  logger: Logger,
  request: Request,
  response: Response,
  error: unknown,
  { status, body }: { status: number; body: ErrorBody },
): void {
  const requestId = requestIdOf(response);
  if (status >= 500) {
    const where = { requestId, method: request.method, path: request.path, status, code: body.error };
    if (body.error === 'internal') logger.error('request failed', { ...where, error });
    else logger.warn('request not served', { ...where, message: body.message });
  }
  // Unavailable or slow parts come back: tell clients when to retry (with the same Idempotency-Key).
  if (status === 503 || status === 504) response.setHeader('Retry-After', String(RETRY_AFTER_S));
  // An internal error's message names the request, so the log line can be found (a service's own
  // explanation, such as how to quarantine a damaged event, is kept).
  const answer =
    body.error === 'internal' && requestId
      ? {
          ...body,
          message:
            body.message === GENERIC_INTERNAL
              ? `internal error; see the service log for request ${requestId}`
              : `${body.message} (request ${requestId})`,
        }
      : body;
  response.status(status).json(answer);
}

/** Global filter: DomainError, ValidationError, HTTP and unknown errors, all in one JSON shape. */
@Catch()
export class ApiExceptionFilter implements ExceptionFilter {
  constructor(private readonly logger: Logger) {}

  catch(error: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    send(this.logger, http.getRequest<Request>(), http.getResponse<Response>(), error, errorResponse(error));
  }
}

/** Express error middleware for what fails before Nest's routing (the JSON body parser). */
export function bodyErrorHandler(logger: Logger) {
  return (error: unknown, request: Request, response: Response, next: NextFunction): void => {
    if (response.headersSent) return next(error);
    send(logger, request, response, error, errorResponse(error));
  };
}
