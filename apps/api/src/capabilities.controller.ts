import { Controller, Get, Inject, RequestMethod } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants.js';
import { DiscoveryService } from '@nestjs/core';
import { Auth } from './auth.js';

/** API_PREFIX of api.module.ts (which imports this file). */
const PREFIX = 'api/v1';

/** `GET /api/v1/agents/:id` from a controller path and a handler path. */
function endpoint(
  method: RequestMethod,
  prefix: string,
  controllerPath: string,
  handlerPath: string,
): string {
  const parts = [prefix, controllerPath, handlerPath]
    .flatMap((part) => part.split('/'))
    .filter((part) => part.length > 0);
  return `${RequestMethod[method]} /${parts.join('/')}`;
}

/**
 * `GET /api/v1/capabilities`: the endpoints this API serves, as `METHOD /path` (parameters as `:name`).
 * Parts of the API arrive at different times (certificates, proxy nodes); the dashboard asks here what
 * exists and shows "not available yet" for the rest, instead of probing and collecting 404s.
 */
@Controller('capabilities')
export class CapabilitiesController {
  private endpoints?: string[];

  constructor(@Inject(DiscoveryService) private readonly discovery: DiscoveryService) {}

  @Get()
  @Auth('admin')
  list(): { endpoints: string[] } {
    this.endpoints ??= this.discover();
    return { endpoints: this.endpoints };
  }

  private discover(): string[] {
    const found = new Set<string>();
    for (const wrapper of this.discovery.getControllers()) {
      const type = wrapper.metatype as (new (...args: never[]) => unknown) | null;
      if (!type?.prototype) continue;
      const base = Reflect.getMetadata(PATH_METADATA, type) as string | string[] | undefined;
      const bases = Array.isArray(base) ? base : [base ?? ''];
      for (const name of Object.getOwnPropertyNames(type.prototype)) {
        if (name === 'constructor') continue;
        // Read the descriptor: reading an accessor (a getter) on the prototype would run it without an instance.
        const handler = Object.getOwnPropertyDescriptor(type.prototype, name)?.value as unknown;
        if (typeof handler !== 'function') continue;
        const path = Reflect.getMetadata(PATH_METADATA, handler) as string | string[] | undefined;
        const method = Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod | undefined;
        if (path === undefined || method === undefined) continue;
        for (const controllerPath of bases) {
          for (const handlerPath of Array.isArray(path) ? path : [path]) {
            found.add(endpoint(method, PREFIX, controllerPath, handlerPath));
          }
        }
      }
    }
    return [...found].sort();
  }
}
