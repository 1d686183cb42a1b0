/** Tag Bind: a frontend's binds, written through haproxy.cfg and a reload. */
import type { Json } from '../cfg/objects.js';
import * as resources from '../resources.js';
import { readConfiguration, writeConfiguration, type Operations } from './operation.js';

export const bindOperations: Operations = {
  getAllBindFrontend: async (emulator, context) =>
    readConfiguration(emulator, context, (document) =>
      resources.listNamed(document, 'frontend', context.path.parent_name, 'bind'),
    ),
  getBindFrontend: async (emulator, context) =>
    readConfiguration(emulator, context, (document) =>
      resources.getNamed(document, 'frontend', context.path.parent_name, 'bind', context.path.name),
    ),
  createBindFrontend: async (emulator, context) =>
    writeConfiguration(emulator, context, 201, (document) =>
      resources.createNamed(document, 'frontend', context.path.parent_name, 'bind', context.body as Json),
    ),
  replaceBindFrontend: async (emulator, context) =>
    writeConfiguration(emulator, context, 200, (document) =>
      resources.replaceNamed(
        document,
        'frontend',
        context.path.parent_name,
        'bind',
        context.path.name,
        context.body as Json,
      ),
    ),
  deleteBindFrontend: async (emulator, context) =>
    writeConfiguration(emulator, context, 204, (document) =>
      resources.deleteNamed(document, 'frontend', context.path.parent_name, 'bind', context.path.name),
    ),
};
