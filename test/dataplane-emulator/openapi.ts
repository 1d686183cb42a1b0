/**
 * Validation of requests and responses against the project's OpenAPI document
 * (libs/dataplane/openapi.yaml). The emulator uses it for its 400/422 answers; the tests use it to check
 * every request the client sends and every answer the emulator gives.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { parse } from 'yaml';

type Obj = Record<string, unknown>;

// ajv-formats is CommonJS: under ESM its default export may arrive wrapped.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ??
  addFormatsModule) as unknown as (ajv: Ajv) => Ajv;

/** The repository root: the nearest folder above this file with libs/dataplane/openapi.yaml. */
export function findDocumentPath(): string {
  let folder = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(folder, 'libs', 'dataplane', 'openapi.yaml');
    if (existsSync(candidate)) return candidate;
    const parent = dirname(folder);
    if (parent === folder) throw new Error('libs/dataplane/openapi.yaml not found above ' + folder);
    folder = parent;
  }
}

export interface MatchedOperation {
  template: string;
  method: string;
  operation: Obj;
  pathParams: Record<string, string>;
}

export interface RequestToCheck {
  method: string;
  /** Path below the server URL, e.g. /services/haproxy/transactions. */
  path: string;
  query: URLSearchParams;
  contentType?: string | null;
  /** Parsed JSON, text, or undefined when there is no body. */
  body?: unknown;
  hasBody?: boolean;
}

export interface RequestProblem {
  /** `params` problems are 400 in dataplaneapi, `body` problems 422. */
  kind: 'params' | 'body' | 'route';
  message: string;
}

export interface ResponseToCheck {
  method: string;
  path: string;
  status: number;
  headers: Headers;
  body: unknown;
  hasBody: boolean;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export class OpenApiDocument {
  readonly document: Obj;
  private readonly ajv: Ajv;
  private readonly validators = new WeakMap<object, ValidateFunction>();
  private readonly routes: { regex: RegExp; names: string[]; template: string; item: Obj }[] = [];

  constructor(path = findDocumentPath()) {
    this.document = parse(readFileSync(path, 'utf8')) as Obj;
    this.ajv = new Ajv({ strict: false, allErrors: true, coerceTypes: false });
    addFormats(this.ajv);
    this.ajv.addFormat('binary', true);
    const paths = this.document.paths as Obj;
    for (const [template, item] of Object.entries(paths)) {
      const names: string[] = [];
      const source = template
        .split(/(\{[^}]+\})/)
        .map((part) => {
          if (part.startsWith('{') && part.endsWith('}')) {
            names.push(part.slice(1, -1));
            return '([^/]+)';
          }
          return escapeRegExp(part);
        })
        .join('');
      this.routes.push({ regex: new RegExp(`^${source}$`), names, template, item: item as Obj });
    }
    // Literal paths win over templated ones (e.g. /runtime/maps before /runtime/maps/{name}).
    this.routes.sort((a, b) => a.names.length - b.names.length);
  }

  /** Follows a local `$ref` (one level at a time, until the object is not a reference). */
  resolve<T = Obj>(value: unknown): T {
    let current = value as Obj;
    while (current && typeof current === 'object' && typeof current.$ref === 'string') {
      const pointer = (current.$ref as string).replace(/^#\//, '').split('/');
      let target: unknown = this.document;
      for (const segment of pointer) {
        target = (target as Obj)[segment.replace(/~1/g, '/').replace(/~0/g, '~')];
      }
      current = target as Obj;
    }
    return current as T;
  }

  /** A schema with every `$ref` replaced by its target (the document has no recursive schemas). */
  private inline(schema: unknown): unknown {
    const resolved = this.resolve(schema);
    if (Array.isArray(resolved)) return resolved.map((item) => this.inline(item));
    if (!resolved || typeof resolved !== 'object') return resolved;
    const out: Obj = {};
    for (const [key, value] of Object.entries(resolved)) out[key] = this.inline(value);
    return out;
  }

  private validator(schema: object): ValidateFunction {
    const resolved = this.resolve(schema);
    let validate = this.validators.get(resolved);
    if (!validate) {
      validate = this.ajv.compile(this.inline(resolved) as object);
      this.validators.set(resolved, validate);
    }
    return validate;
  }

  private errorsOf(validate: ValidateFunction, prefix: string): string[] {
    return (validate.errors ?? []).map((error) =>
      `${prefix}${error.instancePath || ''} ${error.message ?? 'is invalid'}`.trim(),
    );
  }

  match(method: string, path: string): MatchedOperation | undefined {
    for (const route of this.routes) {
      const found = route.regex.exec(path);
      if (!found) continue;
      const operation = route.item[method.toLowerCase()] as Obj | undefined;
      if (!operation) continue;
      const pathParams: Record<string, string> = {};
      route.names.forEach((name, index) => (pathParams[name] = decodeURIComponent(found[index + 1])));
      return { template: route.template, method: method.toLowerCase(), operation, pathParams };
    }
    return undefined;
  }

  /** Whether some method exists for the path (to tell 405 from 404). */
  pathExists(path: string): boolean {
    return this.routes.some((route) => route.regex.test(path));
  }

  private parametersOf(matched: MatchedOperation): Obj[] {
    const item = (this.document.paths as Obj)[matched.template] as Obj;
    const all = [
      ...((item.parameters as unknown[]) ?? []),
      ...((matched.operation.parameters as unknown[]) ?? []),
    ];
    const byKey = new Map<string, Obj>();
    for (const raw of all) {
      const parameter = this.resolve(raw);
      byKey.set(`${parameter.in as string}:${parameter.name as string}`, parameter);
    }
    return [...byKey.values()];
  }

  /** Converts a query or path string to the parameter's type; undefined when it cannot. */
  private coerce(raw: string, schema: Obj): unknown {
    switch (schema.type) {
      case 'integer':
        return /^-?\d+$/.test(raw) ? Number(raw) : raw;
      case 'boolean':
        return raw === 'true' ? true : raw === 'false' ? false : raw;
      default:
        return raw;
    }
  }

  /** Typed query values of a matched operation (documented parameters only). */
  queryValues(matched: MatchedOperation, query: URLSearchParams): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const parameter of this.parametersOf(matched)) {
      if (parameter.in !== 'query') continue;
      const schema = this.resolve(parameter.schema);
      const raw = query.get(parameter.name as string);
      if (raw !== null) out[parameter.name as string] = this.coerce(raw, schema);
      else if (schema.default !== undefined) out[parameter.name as string] = schema.default;
    }
    return out;
  }

  checkRequest(request: RequestToCheck, options: { strictQuery?: boolean } = {}): RequestProblem[] {
    const matched = this.match(request.method, request.path);
    if (!matched)
      return [{ kind: 'route', message: `${request.method} ${request.path} is not in the document` }];
    const problems: RequestProblem[] = [];
    const parameters = this.parametersOf(matched);
    for (const parameter of parameters) {
      const name = parameter.name as string;
      const schema = this.resolve(parameter.schema ?? {});
      const raw = parameter.in === 'path' ? matched.pathParams[name] : request.query.get(name);
      if (raw === null || raw === undefined) {
        if (parameter.required)
          problems.push({
            kind: 'params',
            message: `${parameter.in as string} parameter ${name} is required`,
          });
        continue;
      }
      const validate = this.validator(schema);
      if (!validate(this.coerce(raw, schema))) {
        problems.push(
          ...this.errorsOf(validate, `${parameter.in as string} parameter ${name}`).map((message) => ({
            kind: 'params' as const,
            message,
          })),
        );
      }
    }
    if (options.strictQuery) {
      const known = new Set(parameters.filter((p) => p.in === 'query').map((p) => p.name as string));
      for (const name of request.query.keys()) {
        if (!known.has(name))
          problems.push({ kind: 'params', message: `query parameter ${name} is not documented` });
      }
    }
    const requestBody = matched.operation.requestBody
      ? this.resolve(matched.operation.requestBody)
      : undefined;
    if (requestBody) {
      const content = requestBody.content as Obj;
      const type = (request.contentType ?? '').split(';')[0].trim().toLowerCase();
      if (!request.hasBody) {
        if (requestBody.required) problems.push({ kind: 'body', message: 'request body is required' });
      } else if (!(type in content)) {
        problems.push({
          kind: 'body',
          message: `content type ${type || '(none)'} is not one of ${Object.keys(content).join(', ')}`,
        });
      } else if (type === 'application/json') {
        const schema = (content[type] as Obj).schema as object;
        const validate = this.validator(schema);
        if (!validate(request.body)) {
          problems.push(
            ...this.errorsOf(validate, 'body').map((message) => ({ kind: 'body' as const, message })),
          );
        }
      }
    } else if (request.hasBody) {
      problems.push({ kind: 'body', message: 'this operation takes no body' });
    }
    return problems;
  }

  checkResponse(response: ResponseToCheck): string[] {
    const matched = this.match(response.method, response.path);
    if (!matched) return [`${response.method} ${response.path} is not in the document`];
    const responses = matched.operation.responses as Obj;
    const declared = responses[String(response.status)] ?? responses.default;
    if (!declared)
      return [`status ${response.status} is not documented for ${matched.method} ${matched.template}`];
    const spec = this.resolve(declared);
    const problems: string[] = [];
    for (const [name, header] of Object.entries((spec.headers as Obj) ?? {})) {
      const definition = this.resolve(header);
      const value = response.headers.get(name);
      if (value === null) {
        if (definition.required) problems.push(`header ${name} is missing`);
        continue;
      }
      const validate = this.validator(this.resolve(definition.schema ?? {}));
      if (!validate(value)) problems.push(...this.errorsOf(validate, `header ${name}`));
    }
    const content = spec.content as Obj | undefined;
    if (!content) {
      if (response.hasBody) problems.push(`status ${response.status} must have no body`);
      return problems;
    }
    const type = (response.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase();
    if (!(type in content)) {
      problems.push(`content type ${type || '(none)'} is not one of ${Object.keys(content).join(', ')}`);
      return problems;
    }
    if (type === 'application/json') {
      const validate = this.validator((content[type] as Obj).schema as object);
      if (!validate(response.body)) problems.push(...this.errorsOf(validate, 'body'));
    }
    return problems;
  }
}
