import { Catch, HttpException, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import { ERROR_STATUS, toErrorBody, type ErrorBody, type ErrorCode } from '#contracts';
import type { Logger } from '#platform';

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

/** Global filter: DomainError, ValidationError, HTTP and unknown errors, all in one JSON shape. */
@Catch()
export class ApiExceptionFilter implements ExceptionFilter {
  constructor(private readonly logger: Logger) {}

  catch(error: unknown, host: ArgumentsHost): void {
    const response = host.switchToHttp().getResponse<Response>();
    const { status, body } = errorResponse(error);
    if (status >= 500 && body.error === 'internal') this.logger.error('request failed', { error });
    response.status(status).json(body);
  }
}

/** Express error middleware for what fails before Nest's routing (the JSON body parser). */
export function bodyErrorHandler(
  error: unknown,
  _request: Request,
  response: Response,
  next: NextFunction,
): void {
  if (response.headersSent) return next(error);
  const { status, body } = errorResponse(error);
  response.status(status).json(body);
}
