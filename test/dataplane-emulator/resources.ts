/**
 * Configuration resources of the subset on top of the haproxy.cfg model: what each endpoint reads from
 * or does to a document. Pure functions of the document; errors are ApiErrors with dataplaneapi's codes.
 */
import {
  addSection,
  findSection,
  removeSection,
  sectionsOf,
  type CfgDocument,
  type Section,
} from './cfg/document.js';
import {
  CHILD_CODEC,
  backendBaseLines,
  childrenOf,
  classify,
  frontendBaseLines,
  insertChild,
  parseBackendBase,
  parseFrontendBase,
  removeChildAt,
  replaceChildAt,
  replaceChildren,
  setBaseLines,
  type ChildKind,
  type Json,
} from './cfg/objects.js';
import { ApiError } from './store.js';

export type ParentType = 'frontend' | 'backend';

const FULL_SECTION_LISTS: Record<ParentType, [string, ChildKind][]> = {
  frontend: [
    ['acl_list', 'acl'],
    ['backend_switching_rule_list', 'backend_switching_rule'],
    ['tcp_request_rule_list', 'tcp_request_rule'],
    ['http_request_rule_list', 'http_request_rule'],
  ],
  backend: [
    ['acl_list', 'acl'],
    ['tcp_request_rule_list', 'tcp_request_rule'],
    ['http_request_rule_list', 'http_request_rule'],
  ],
};
const FULL_SECTION_MAP: Record<ParentType, [string, ChildKind]> = {
  frontend: ['binds', 'bind'],
  backend: ['servers', 'server'],
};

function label(kind: ChildKind | ParentType): string {
  return kind.replace(/_/g, ' ');
}

export function parentOrFail(document: CfgDocument, type: ParentType, name: string, status = 404): Section {
  const section = findSection(document, type, name);
  if (!section) {
    throw new ApiError(
      status,
      status === 404 ? `object does not exist: ${type} ${name}` : `parent does not exist: ${type} ${name}`,
    );
  }
  return section;
}

// ---------------------------------------------------------------------------------------------- sections

export function sectionObject(section: Section, type: ParentType, full: boolean): Json {
  const object = type === 'frontend' ? parseFrontendBase(section) : parseBackendBase(section);
  if (!full) return object;
  const [mapField, mapKind] = FULL_SECTION_MAP[type];
  const named: Json = {};
  for (const child of childrenOf(section, mapKind)) named[child.object.name as string] = child.object;
  object[mapField] = named;
  for (const [field, kind] of FULL_SECTION_LISTS[type]) {
    object[field] = childrenOf(section, kind).map((child) => child.object);
  }
  return object;
}

export function listSections(document: CfgDocument, type: ParentType, full: boolean): Json[] {
  return sectionsOf(document, type).map((section) => sectionObject(section, type, full));
}

function writeSection(section: Section, type: ParentType, body: Json, full: boolean): void {
  if (type === 'frontend') setBaseLines(section, frontendBaseLines(body), body.default_backend as string);
  else setBaseLines(section, backendBaseLines(body));
  if (!full) return;
  const [mapField, mapKind] = FULL_SECTION_MAP[type];
  const named = (body[mapField] as Record<string, Json> | undefined) ?? {};
  replaceChildren(
    section,
    mapKind,
    Object.entries(named).map(([name, child]) => CHILD_CODEC[mapKind].line({ ...child, name })),
  );
  for (const [field, kind] of FULL_SECTION_LISTS[type]) {
    const list = (body[field] as Json[] | undefined) ?? [];
    replaceChildren(
      section,
      kind,
      list.map((child) => CHILD_CODEC[kind].line(child)),
    );
  }
}

/** The body as the API echoes it: without the children unless full_section. */
function echo(body: Json, type: ParentType, full: boolean): Json {
  if (full) return body;
  const out = { ...body };
  delete out[FULL_SECTION_MAP[type][0]];
  for (const [field] of FULL_SECTION_LISTS[type]) delete out[field];
  return out;
}

export function createSection(document: CfgDocument, type: ParentType, body: Json, full: boolean): Json {
  const name = body.name as string;
  if (findSection(document, type, name)) throw new ApiError(409, `object already exists: ${type} ${name}`);
  const section = addSection(document, type, name, []);
  writeSection(section, type, body, full);
  return echo(body, type, full);
}

export function replaceSection(
  document: CfgDocument,
  type: ParentType,
  name: string,
  body: Json,
  full: boolean,
): Json {
  const section = parentOrFail(document, type, name);
  writeSection(section, type, { ...body, name }, full);
  return echo({ ...body, name }, type, full);
}

export function deleteSection(document: CfgDocument, type: ParentType, name: string): void {
  removeSection(document, parentOrFail(document, type, name));
}

// ---------------------------------------------------------------------------------------------- named children

export function listNamed(document: CfgDocument, type: ParentType, parent: string, kind: ChildKind): Json[] {
  return childrenOf(parentOrFail(document, type, parent), kind).map((child) => child.object);
}

function findNamed(section: Section, kind: ChildKind, name: string) {
  return childrenOf(section, kind).find((child) => child.object.name === name);
}

export function getNamed(
  document: CfgDocument,
  type: ParentType,
  parent: string,
  kind: ChildKind,
  name: string,
): Json {
  const found = findNamed(parentOrFail(document, type, parent), kind, name);
  if (!found) throw new ApiError(404, `object does not exist: ${label(kind)} ${name} in ${type} ${parent}`);
  return found.object;
}

export function createNamed(
  document: CfgDocument,
  type: ParentType,
  parent: string,
  kind: ChildKind,
  body: Json,
): Json {
  const section = parentOrFail(document, type, parent, 400);
  if (findNamed(section, kind, body.name as string)) {
    throw new ApiError(
      409,
      `object already exists: ${label(kind)} ${body.name as string} in ${type} ${parent}`,
    );
  }
  insertChild(section, kind, Number.MAX_SAFE_INTEGER, CHILD_CODEC[kind].line(body));
  return body;
}

export function replaceNamed(
  document: CfgDocument,
  type: ParentType,
  parent: string,
  kind: ChildKind,
  name: string,
  body: Json,
): Json {
  const section = parentOrFail(document, type, parent);
  const found = findNamed(section, kind, name);
  if (!found) throw new ApiError(404, `object does not exist: ${label(kind)} ${name} in ${type} ${parent}`);
  const next = { ...body, name };
  replaceChildAt(section, found.position, CHILD_CODEC[kind].line(next));
  return next;
}

export function deleteNamed(
  document: CfgDocument,
  type: ParentType,
  parent: string,
  kind: ChildKind,
  name: string,
): void {
  const section = parentOrFail(document, type, parent);
  const found = findNamed(section, kind, name);
  if (!found) throw new ApiError(404, `object does not exist: ${label(kind)} ${name} in ${type} ${parent}`);
  removeChildAt(section, found.position);
}

// ---------------------------------------------------------------------------------------------- indexed children

export function listIndexed(
  document: CfgDocument,
  type: ParentType,
  parent: string,
  kind: ChildKind,
  filter?: (object: Json) => boolean,
): Json[] {
  const all = childrenOf(parentOrFail(document, type, parent), kind).map((child) => child.object);
  return filter ? all.filter(filter) : all;
}

function outOfRange(kind: ChildKind, index: number, type: ParentType, parent: string): ApiError {
  return new ApiError(404, `object does not exist: ${label(kind)} at index ${index} in ${type} ${parent}`);
}

export function getIndexed(
  document: CfgDocument,
  type: ParentType,
  parent: string,
  kind: ChildKind,
  index: number,
): Json {
  const children = childrenOf(parentOrFail(document, type, parent), kind);
  const child = children[index];
  if (!child) throw outOfRange(kind, index, type, parent);
  return child.object;
}

export function createIndexed(
  document: CfgDocument,
  type: ParentType,
  parent: string,
  kind: ChildKind,
  index: number,
  body: Json,
): Json {
  const section = parentOrFail(document, type, parent, 400);
  const count = childrenOf(section, kind).length;
  if (index < 0 || index > count) {
    throw new ApiError(400, `index out of range: ${label(kind)} index ${index}, ${count} present`);
  }
  insertChild(section, kind, index, CHILD_CODEC[kind].line(body));
  return body;
}

export function replaceIndexed(
  document: CfgDocument,
  type: ParentType,
  parent: string,
  kind: ChildKind,
  index: number,
  body: Json,
): Json {
  const section = parentOrFail(document, type, parent);
  const child = childrenOf(section, kind)[index];
  if (!child) throw outOfRange(kind, index, type, parent);
  replaceChildAt(section, child.position, CHILD_CODEC[kind].line(body));
  return body;
}

export function deleteIndexed(
  document: CfgDocument,
  type: ParentType,
  parent: string,
  kind: ChildKind,
  index: number,
): void {
  const section = parentOrFail(document, type, parent);
  const child = childrenOf(section, kind)[index];
  if (!child) throw outOfRange(kind, index, type, parent);
  removeChildAt(section, child.position);
}

export function replaceAllIndexed(
  document: CfgDocument,
  type: ParentType,
  parent: string,
  kind: ChildKind,
  body: Json[],
): Json[] {
  const section = parentOrFail(document, type, parent, 400);
  replaceChildren(
    section,
    kind,
    body.map((child) => CHILD_CODEC[kind].line(child)),
  );
  return body;
}

/** Whether a backend or any defaults section has a `default-server` line (blocks runtime `add server`). */
export function hasDefaultServer(document: CfgDocument, backend: string): boolean {
  const sections = [...sectionsOf(document, 'defaults'), findSection(document, 'backend', backend)];
  return sections.some((section) =>
    section?.lines.some((line) => classify(section.type, line).tokens[0] === 'default-server'),
  );
}
