/**
 * Tags ACL, BackendSwitchingRule, TCPRequestRule and HTTPRequestRule: the indexed children of frontends and
 * backends, one family of operations each (list, replace all, and get/create/replace/delete at an index).
 */
import type { ChildKind, Json } from '../cfg/objects.js';
import * as resources from '../resources.js';
import { readConfiguration, writeConfiguration, type Operations, type RequestContext } from './operation.js';

interface RuleFamily {
  kind: ChildKind;
  title: string;
  parents: resources.ParentType[];
  /** The operationIds carry no Frontend/Backend suffix (backend switching rules exist only in frontends). */
  plain?: true;
}

const FAMILIES: RuleFamily[] = [
  { kind: 'acl', title: 'Acl', parents: ['frontend', 'backend'] },
  { kind: 'backend_switching_rule', title: 'BackendSwitchingRule', parents: ['frontend'], plain: true },
  { kind: 'tcp_request_rule', title: 'TCPRequestRule', parents: ['frontend', 'backend'] },
  { kind: 'http_request_rule', title: 'HTTPRequestRule', parents: ['frontend', 'backend'] },
];

const index = (context: RequestContext) => Number(context.path.index);

function operationsOfFamily(family: RuleFamily, parent: resources.ParentType): Operations {
  const suffix = family.plain ? '' : parent === 'frontend' ? 'Frontend' : 'Backend';
  const all = family.plain ? `${family.title}s` : `All${family.title}${suffix}`;
  const kind = family.kind;
  return {
    [`get${all}`]: async (emulator, context) =>
      readConfiguration(emulator, context, (document) => {
        const aclName = context.query.acl_name as string | undefined;
        return resources.listIndexed(
          document,
          parent,
          context.path.parent_name,
          kind,
          aclName ? (object) => object.acl_name === aclName : undefined,
        );
      }),
    [`replace${all}`]: async (emulator, context) =>
      writeConfiguration(emulator, context, 200, (document) =>
        resources.replaceAllIndexed(document, parent, context.path.parent_name, kind, context.body as Json[]),
      ),
    [`get${family.title}${suffix}`]: async (emulator, context) =>
      readConfiguration(emulator, context, (document) =>
        resources.getIndexed(document, parent, context.path.parent_name, kind, index(context)),
      ),
    [`create${family.title}${suffix}`]: async (emulator, context) =>
      writeConfiguration(emulator, context, 201, (document) =>
        resources.createIndexed(
          document,
          parent,
          context.path.parent_name,
          kind,
          index(context),
          context.body as Json,
        ),
      ),
    [`replace${family.title}${suffix}`]: async (emulator, context) =>
      writeConfiguration(emulator, context, 200, (document) =>
        resources.replaceIndexed(
          document,
          parent,
          context.path.parent_name,
          kind,
          index(context),
          context.body as Json,
        ),
      ),
    [`delete${family.title}${suffix}`]: async (emulator, context) =>
      writeConfiguration(emulator, context, 204, (document) =>
        resources.deleteIndexed(document, parent, context.path.parent_name, kind, index(context)),
      ),
  };
}

export const ruleOperations: Operations = Object.assign(
  {},
  ...FAMILIES.flatMap((family) => family.parents.map((parent) => operationsOfFamily(family, parent))),
) as Operations;
