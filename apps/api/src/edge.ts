import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';

/**
 * What every request meets before the routes: an id that the response carries (and 5xx logs name), and
 * refusals of bodies the API does not read. The JSON parser would otherwise decode utf-7 or latin1, and
 * fail on a content encoding with a 500 that tells nobody anything.
 */

export const REQUEST_ID_HEADER = 'x-request-id';
/** An id a proxy in front chose is kept if it is short and plain; anything else is replaced. */
const ACCEPTABLE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function requestIdOf(response: Response): string | undefined {
  return (response.locals as { requestId?: string }).requestId;
}

export function requestId(request: Request, response: Response, next: NextFunction): void {
  const given = request.headers[REQUEST_ID_HEADER];
  const id = typeof given === 'string' && ACCEPTABLE_REQUEST_ID.test(given) ? given : randomUUID();
  (response.locals as { requestId?: string }).requestId = id;
  response.setHeader('X-Request-Id', id);
  next();
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
