/**
 * openapi-fetch middleware that checks every request the client sends and every answer it gets against
 * libs/dataplane/openapi.yaml, and keeps a log of (method, path, status) for assertions.
 */
import type { Middleware } from 'openapi-fetch';
import { OpenApiDocument } from '../dataplane-emulator/openapi.js';

export interface Exchange {
  method: string;
  path: string;
  status: number;
  configurationVersion: string | null;
  reloadId: string | null;
}

export interface ValidationRecorder {
  middleware: Middleware;
  exchanges: Exchange[];
  problems: string[];
  /** Checks a response obtained without the client (e.g. plain fetch). */
  checkRaw(method: string, url: string, response: Response): Promise<void>;
}

let shared: OpenApiDocument | undefined;
export function openApi(): OpenApiDocument {
  shared ??= new OpenApiDocument();
  return shared;
}

async function bodyOf(message: Request | Response): Promise<{ body: unknown; hasBody: boolean }> {
  const text = await message.clone().text();
  if (text === '') return { body: undefined, hasBody: false };
  const type = message.headers.get('content-type') ?? '';
  if (type.startsWith('application/json')) return { body: JSON.parse(text), hasBody: true };
  return { body: text, hasBody: true };
}

function apiPath(url: string): string {
  const pathname = new URL(url).pathname;
  return pathname.startsWith('/v3') ? pathname.slice(3) : pathname;
}

export function validationRecorder(): ValidationRecorder {
  const document = openApi();
  const exchanges: Exchange[] = [];
  const problems: string[] = [];
  const checkResponse = async (method: string, url: string, response: Response) => {
    const path = apiPath(url);
    const { body, hasBody } = await bodyOf(response);
    for (const problem of document.checkResponse({
      method,
      path,
      status: response.status,
      headers: response.headers,
      body,
      hasBody,
    })) {
      problems.push(`response ${method} ${path} ${response.status}: ${problem}`);
    }
    exchanges.push({
      method,
      path,
      status: response.status,
      configurationVersion: response.headers.get('configuration-version'),
      reloadId: response.headers.get('reload-id'),
    });
  };
  const middleware: Middleware = {
    async onRequest({ request }) {
      const url = new URL(request.url);
      const { body, hasBody } = await bodyOf(request);
      for (const problem of document.checkRequest(
        {
          method: request.method,
          path: apiPath(request.url),
          query: url.searchParams,
          contentType: request.headers.get('content-type'),
          body,
          hasBody,
        },
        { strictQuery: true },
      )) {
        problems.push(`request ${request.method} ${url.pathname}: ${problem.message}`);
      }
      return request;
    },
    async onResponse({ request, response }) {
      await checkResponse(request.method, request.url, response);
      return response;
    },
  };
  return { middleware, exchanges, problems, checkRaw: checkResponse };
}
