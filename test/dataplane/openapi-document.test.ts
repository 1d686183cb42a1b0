/** The project's OpenAPI document, its validator, and the emulator's coverage of it (no servers). */
import { describe, expect, it } from '@jest/globals';
import { DataplaneEmulator } from '../dataplane-emulator/emulator.js';
import { openApi } from './validation.js';

type Obj = Record<string, unknown>;

describe('libs/dataplane/openapi.yaml', () => {
  const document = openApi();

  it('is OpenAPI 3 with Basic auth, and every operation has a unique operationId that the emulator implements', () => {
    expect(String(document.document.openapi)).toMatch(/^3\./);
    expect((document.document.components as Obj).securitySchemes).toEqual({
      basic_auth: { type: 'http', scheme: 'basic' },
    });
    const ids: string[] = [];
    for (const item of Object.values(document.document.paths as Obj)) {
      for (const [method, operation] of Object.entries(item as Obj)) {
        if (method === 'parameters') continue;
        ids.push((operation as Obj).operationId as string);
      }
    }
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.length).toBeGreaterThanOrEqual(70);
    const implemented = new Set(DataplaneEmulator.implementedOperations());
    expect(ids.filter((id) => !implemented.has(id))).toEqual([]);
    expect([...implemented].filter((id) => !ids.includes(id))).toEqual([]);
  });

  it('covers the endpoints the project relies on', () => {
    const paths = Object.keys(document.document.paths as Obj);
    for (const path of [
      '/services/haproxy/configuration/version',
      '/services/haproxy/transactions',
      '/services/haproxy/transactions/{id}',
      '/services/haproxy/configuration/frontends/{parent_name}/binds/{name}',
      '/services/haproxy/configuration/backends/{parent_name}/servers/{name}',
      '/services/haproxy/configuration/frontends/{parent_name}/acls/{index}',
      '/services/haproxy/configuration/frontends/{parent_name}/backend_switching_rules/{index}',
      '/services/haproxy/configuration/frontends/{parent_name}/tcp_request_rules/{index}',
      '/services/haproxy/configuration/frontends/{parent_name}/http_request_rules/{index}',
      '/services/haproxy/runtime/maps/{parent_name}/entries/{id}',
      '/services/haproxy/runtime/backends/{parent_name}/servers/{name}',
      '/services/haproxy/storage/maps/{name}',
      '/services/haproxy/storage/ssl_certificates/{name}',
      '/services/haproxy/reloads/{id}',
      '/services/haproxy/runtime/info',
      '/health',
      '/info',
    ]) {
      expect(paths).toContain(path);
    }
  });

  it('catches requests and answers that do not match it', () => {
    const headers = (entries: Record<string, string>) => new Headers(entries);
    const ok = document.checkResponse({
      method: 'POST',
      path: '/services/haproxy/transactions',
      status: 201,
      headers: headers({ 'content-type': 'application/json', 'configuration-version': '3' }),
      body: { _version: 3, id: 'abc', status: 'in_progress' },
      hasBody: true,
    });
    expect(ok).toEqual([]);
    const noVersionHeader = document.checkResponse({
      method: 'POST',
      path: '/services/haproxy/transactions',
      status: 201,
      headers: headers({ 'content-type': 'application/json' }),
      body: { _version: 3, id: 'abc', status: 'in_progress' },
      hasBody: true,
    });
    expect(noVersionHeader).toEqual(['header Configuration-Version is missing']);
    const badBody = document.checkResponse({
      method: 'POST',
      path: '/services/haproxy/transactions',
      status: 201,
      headers: headers({ 'content-type': 'application/json', 'configuration-version': '3' }),
      body: { _version: '3', id: 'abc', status: 'open' },
      hasBody: true,
    });
    expect(badBody.length).toBeGreaterThanOrEqual(2);
    const errorBody = document.checkResponse({
      method: 'PUT',
      path: '/services/haproxy/transactions/abc',
      status: 406,
      headers: headers({ 'content-type': 'application/json', 'configuration-version': '3' }),
      body: { message: 'no code' },
      hasBody: true,
    });
    expect(errorBody).toEqual(["body must have required property 'code'"]);
    const bodyOn204 = document.checkResponse({
      method: 'DELETE',
      path: '/services/haproxy/transactions/abc',
      status: 204,
      headers: headers({ 'configuration-version': '3' }),
      body: 'x',
      hasBody: true,
    });
    expect(bodyOn204).toEqual(['status 204 must have no body']);
    const request = document.checkRequest(
      {
        method: 'POST',
        path: '/services/haproxy/configuration/backends/be/servers',
        query: new URLSearchParams('version=x&verbose=1'),
        contentType: 'application/json',
        body: { name: 'web', address: '10.0.0.1', port: 70000, fancy: true },
        hasBody: true,
      },
      { strictQuery: true },
    );
    expect(request.map((problem) => problem.kind).sort()).toEqual(['body', 'body', 'params', 'params']);
  });
});
