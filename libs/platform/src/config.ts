import { z } from 'zod';
import { issuesOf } from '#contracts';

/** Raised when the environment does not describe a runnable service; names every bad variable. */
export class ConfigError extends Error {
  constructor(readonly variables: { variable: string; message: string }[]) {
    super(
      'invalid configuration: ' +
        variables.map((entry) => `${entry.variable} ${entry.message}`).join('; ') +
        '. Set these environment variables (see deploy/local/stack.env for examples) and start again.',
    );
    this.name = 'ConfigError';
  }
}

/**
 * Reads configuration from environment variables. The schema's keys are the variable names, so an
 * error names exactly the variable to fix.
 */
export function loadConfig<S extends z.ZodObject>(
  schema: S,
  env: NodeJS.ProcessEnv = process.env,
): z.output<S> {
  const result = schema.safeParse(env);
  if (!result.success) {
    throw new ConfigError(
      issuesOf(result.error).map((issue) => ({ variable: issue.field, message: issue.message })),
    );
  }
  return result.data;
}

/** Environment helpers: variables arrive as strings. */
export const env = {
  string: (fallback?: string) =>
    fallback === undefined ? z.string().min(1) : z.string().min(1).default(fallback),
  int: (fallback?: number) => {
    const parsed = z.coerce.number().int();
    return fallback === undefined ? parsed : parsed.default(fallback);
  },
  bool: (fallback: boolean) =>
    z
      .enum(['true', 'false', '1', '0'])
      .default(fallback ? 'true' : 'false')
      .transform((value) => value === 'true' || value === '1'),
  url: (fallback?: string) => (fallback === undefined ? z.url() : z.url().default(fallback)),
};
