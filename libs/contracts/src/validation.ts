import { z } from 'zod';

/** One problem with an input, named by its path (`target.port`, `data.hostname`, `CL_NATS_URL`). */
export interface FieldIssue {
  field: string;
  message: string;
}

/**
 * Raised at every edge (HTTP body, NATS message, CSR, config, stored event) when input does not match
 * its schema. `field` is the first offending field so callers can answer `{ error, message, field }`.
 */
export class ValidationError extends Error {
  readonly field: string;
  constructor(readonly issues: FieldIssue[]) {
    super(issues.map((issue) => `${issue.field}: ${issue.message}`).join('; '));
    this.name = 'ValidationError';
    this.field = issues[0]?.field ?? '';
  }
}

export function fieldPath(path: readonly PropertyKey[], prefix?: string): string {
  const parts = path.map((segment) => (typeof segment === 'number' ? `[${segment}]` : String(segment)));
  const joined = parts.join('.').replace(/\.\[/g, '[');
  if (!prefix) return joined || '(root)';
  // `env` + `[3].value` is `env[3].value`, not `env.[3].value`.
  if (!joined) return prefix;
  return joined.startsWith('[') ? `${prefix}${joined}` : `${prefix}.${joined}`;
}

export function issuesOf(error: z.ZodError, prefix?: string): FieldIssue[] {
  return error.issues.map((issue) => {
    // Unknown keys are reported on the parent; name the key itself so the caller knows what to remove.
    if (issue.code === 'unrecognized_keys') {
      return {
        field: fieldPath([...issue.path, issue.keys[0] ?? ''], prefix),
        message: `unknown field${issue.keys.length > 1 ? 's' : ''}: ${issue.keys.join(', ')}`,
      };
    }
    return { field: fieldPath(issue.path, prefix), message: issue.message };
  });
}

/** Parses `input` with `schema`, throwing a ValidationError that names the field. */
export function parseOrThrow<S extends z.ZodType>(schema: S, input: unknown, prefix?: string): z.output<S> {
  const result = schema.safeParse(input);
  if (!result.success) throw new ValidationError(issuesOf(result.error, prefix));
  return result.data;
}
