import type { CliCommand } from '../command.js';
import { adminCommands } from './admin.js';
import { appsCommands, deploymentsCommands } from './apps.js';
import { certsCommands } from './certs.js';
import { databaseCommands } from './databases.js';
import { dbCommands } from './db.js';
import { deadLetterCommands } from './dead-letters.js';
import { demoCommands } from './demo.js';
import { eventCommands } from './events.js';
import { projectionCommands } from './projections.js';
import { installationCommands } from './installation.js';

/** Every CLI command. A new group adds its file here. */
export const commands: readonly CliCommand[] = [
  ...dbCommands,
  ...eventCommands,
  ...deadLetterCommands,
  ...projectionCommands,
  ...installationCommands,
  ...adminCommands,
  ...certsCommands,
  ...appsCommands,
  ...deploymentsCommands,
  ...databaseCommands,
  ...demoCommands,
];
