import { parseArgs, type ParseArgsConfig } from 'node:util';

export interface CliCommand {
  /** Words that select the command: `['db', 'migrate']` is `cli db migrate`. */
  path: readonly string[];
  summary: string;
  /** Argument syntax shown in help, after the path. */
  usage?: string;
  options?: ParseArgsConfig['options'];
  /** Whether positional arguments are accepted after the path. */
  positionals?: boolean;
  run(args: { values: Record<string, string | boolean | undefined>; positionals: string[] }): Promise<void>;
}

/** A mistake in how the CLI was called: printed with the command's usage, exit code 2. */
export class UsageError extends Error {}

export function findCommand(
  commands: readonly CliCommand[],
  argv: readonly string[],
): { command: CliCommand; rest: string[] } | undefined {
  let best: CliCommand | undefined;
  for (const command of commands) {
    const matches = command.path.every((word, index) => argv[index] === word);
    if (matches && (!best || command.path.length > best.path.length)) best = command;
  }
  return best ? { command: best, rest: argv.slice(best.path.length) } : undefined;
}

export function parseCommandArgs(command: CliCommand, rest: string[]) {
  try {
    const parsed = parseArgs({
      args: rest,
      options: command.options ?? {},
      allowPositionals: command.positionals ?? false,
      strict: true,
    });
    return {
      values: parsed.values as Record<string, string | boolean | undefined>,
      positionals: parsed.positionals,
    };
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

export function helpText(commands: readonly CliCommand[]): string {
  const lines = commands.map((command) => {
    const syntax = [command.path.join(' '), command.usage].filter(Boolean).join(' ');
    return `  ${syntax.padEnd(52)} ${command.summary}`;
  });
  return ['Usage: npm run cli -- <command> [options]', '', 'Commands:', ...lines].join('\n');
}
