import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { ConfigError, NestJsonLogger } from '#platform';
import { findCommand, helpText, parseCommandArgs, UsageError } from './command.js';
import { commands } from './commands/index.js';
import { cliLogger } from './nats.js';

// Nest's NATS client logs its status (connected, reconnecting) on stdout by default; `cli … | jq` needs
// stdout to hold the command's output alone.
Logger.overrideLogger(new NestJsonLogger(cliLogger));

async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === 'help') {
    console.log(helpText(commands));
    return argv.length === 0 ? 2 : 0;
  }
  const found = findCommand(commands, argv);
  if (!found) {
    console.error(`unknown command: ${argv.join(' ')}\n\n${helpText(commands)}`);
    return 2;
  }
  try {
    await found.command.run(parseCommandArgs(found.command, found.rest));
    // A command that printed its result and still failed (a retry that failed again) sets exitCode.
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(
        `${error.message}\nusage: npm run cli -- ${found.command.path.join(' ')} ${found.command.usage ?? ''}`,
      );
      return 2;
    }
    if (error instanceof ConfigError) {
      console.error(error.message);
      return 2;
    }
    console.error(`error: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
