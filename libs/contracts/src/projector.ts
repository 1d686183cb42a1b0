import { commandSubject } from './commands.js';

/** The projector's admin commands: rebuilds, time travel, status, quarantine and dead letters. */
export const projectorCommands = {
  rebuild: commandSubject('projector', 'rebuild'),
  rebuildStatus: commandSubject('projector', 'rebuild-status'),
  rebuilds: commandSubject('projector', 'rebuilds'),
  schemas: commandSubject('projector', 'schemas'),
  dropSchema: commandSubject('projector', 'drop-schema'),
  status: commandSubject('projector', 'status'),
  quarantine: commandSubject('projector', 'quarantine'),
  dismissDeadLetters: commandSubject('projector', 'dismiss-dead-letters'),
} as const;
