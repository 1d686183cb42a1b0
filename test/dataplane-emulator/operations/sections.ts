/** Tags Frontend and Backend: the sections themselves, optionally with their children (`full_section`). */
import type { Json } from '../cfg/objects.js';
import * as resources from '../resources.js';
import { readConfiguration, writeConfiguration, type Operations, type RequestContext } from './operation.js';

const full = (context: RequestContext) => context.query.full_section === true;

function operationsOfSection(type: resources.ParentType, plural: string, title: string): Operations {
  return {
    [`get${plural}`]: async (emulator, context) =>
      readConfiguration(emulator, context, (document) =>
        resources.listSections(document, type, full(context)),
      ),
    [`get${title}`]: async (emulator, context) =>
      readConfiguration(emulator, context, (document) =>
        resources.sectionObject(
          resources.parentOrFail(document, type, context.path.name),
          type,
          full(context),
        ),
      ),
    [`create${title}`]: async (emulator, context) =>
      writeConfiguration(emulator, context, 201, (document) =>
        resources.createSection(document, type, context.body as Json, full(context)),
      ),
    [`replace${title}`]: async (emulator, context) =>
      writeConfiguration(emulator, context, 200, (document) =>
        resources.replaceSection(document, type, context.path.name, context.body as Json, full(context)),
      ),
    [`delete${title}`]: async (emulator, context) =>
      writeConfiguration(emulator, context, 204, (document) =>
        resources.deleteSection(document, type, context.path.name),
      ),
  };
}

export const sectionOperations: Operations = {
  ...operationsOfSection('frontend', 'Frontends', 'Frontend'),
  ...operationsOfSection('backend', 'Backends', 'Backend'),
};
