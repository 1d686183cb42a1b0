import { request as httpRequest, type RequestOptions } from 'node:http';
import { request as httpsRequest, type RequestOptions as HttpsRequestOptions } from 'node:https';

/** A whole HTTP answer. */
export interface Reply {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

/**
 * One request to loopback (no connection reuse), its answer read to the end; the request fails after
 * `timeoutMs` without an answer. `https` options (servername, ca, …) make it HTTPS; `localAddress` picks
 * the address it comes from.
 */
export function requestReply(
  options: (RequestOptions | HttpsRequestOptions) & { https?: boolean; body?: string },
  timeoutMs = 5_000,
): Promise<Reply> {
  const { https, body: requestBody, ...rest } = options;
  // Node sends a DELETE's body only with its length given.
  if (requestBody !== undefined)
    rest.headers = { ...rest.headers, 'content-length': String(Buffer.byteLength(requestBody)) };
  const send = https ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const request = send({ host: '127.0.0.1', agent: false, ...rest }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () =>
        resolve({ status: response.statusCode ?? 0, body, headers: response.headers }),
      );
    });
    request.setTimeout(timeoutMs, () => request.destroy(new Error('timeout')));
    request.on('error', reject);
    request.end(requestBody);
  });
}
