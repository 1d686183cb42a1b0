import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { ACCEPTABLE_CORRELATION_ID, withCorrelation } from '#platform';

/**
 * What every request meets before the routes: an id that the response carries (and 5xx logs name), and
 * refusals of bodies the API does not read. The JSON parser would otherwise decode utf-7 or latin1, and
 * fail on a content encoding with a 500 that tells nobody anything.
 */

export const REQUEST_ID_HEADER = 'x-request-id';
export const CORRELATION_ID_HEADER = 'x-correlation-id';

export function requestIdOf(response: Response): string | undefined {
  return (response.locals as { requestId?: string }).requestId;
}

/**
 * The request's id is its correlation id: taken from X-Correlation-Id (or X-Request-Id, as a proxy in
 * front sets it) when short and plain, made otherwise, returned in both headers, and carried by every
 * command, event and log line the request causes (`GET /api/v1/events?correlationId=` finds the events).
 */
export function requestId(request: Request, response: Response, next: NextFunction): void {
  const given = [request.headers[CORRELATION_ID_HEADER], request.headers[REQUEST_ID_HEADER]].find(
    (value): value is string => typeof value === 'string' && ACCEPTABLE_CORRELATION_ID.test(value),
  );
  const id = given ?? randomUUID();
  (response.locals as { requestId?: string }).requestId = id;
  response.setHeader('X-Request-Id', id);
  response.setHeader('X-Correlation-Id', id);
  next();
}

/**
 * Runs the rest of the request in its correlation scope. After the body parser: a stream's callbacks
 * run in the scope of the socket, so a scope opened before the body is read would be lost.
 */
export function correlationScope(_request: Request, response: Response, next: NextFunction): void {
  const id = requestIdOf(response);
  if (id === undefined) return next();
  withCorrelation(id, next);
}

function unsupported(response: Response, field: string, message: string): void {
  response.status(415).json({ error: 'unsupported', message, field });
}

/** Bodies are JSON in UTF-8, sent as they are: any other charset or a content encoding is 415. */
export function bodyEncodingGuard(request: Request, response: Response, next: NextFunction): void {
  const encoding = request.headers['content-encoding']?.trim().toLowerCase();
  if (encoding && encoding !== 'identity') {
    return unsupported(
      response,
      'Content-Encoding',
      `content encoding "${encoding.slice(0, 40)}" is not supported: send the body uncompressed`,
    );
  }
  const contentType = request.headers['content-type'];
  const charset = contentType && /;\s*charset\s*=\s*"?([^";\s]*)"?/i.exec(contentType)?.[1];
  if (charset !== undefined && charset !== null && charset.toLowerCase() !== 'utf-8') {
    return unsupported(
      response,
      'Content-Type',
      `charset "${charset.slice(0, 40)}" is not supported: JSON bodies are UTF-8 (charset=utf-8 or none)`,
    );
  }
  next();
}
