/**
 * The log against what clients were told. Every command carries its Idempotency-Key, which the services
 * record as the causation id of the events it appends: an acknowledged command must have its effect
 * (RouteRequested, RouteUpdated, RouteRemoved) under its key exactly once, with what it asked for. A route
 * is also requested, claims its host name and is removed at most once, whatever the keys say.
 */
import type { StoredEvent } from '#contracts';
import type { Command } from './churn.js';

/** The log against the ledger: lost (acknowledged, no effect) and duplicated (an effect twice). */
export function checkLog(
  ledger: readonly Command[],
  events: readonly StoredEvent[],
): { lost: number; duplicated: number; wrongEffect: number; problems: string[] } {
  const problems: string[] = [];
  const effectType = { create: 'RouteRequested', update: 'RouteUpdated', remove: 'RouteRemoved' } as const;
  const byCause = new Map<string, StoredEvent[]>();
  const perRoute = new Map<string, { requested: number; removed: number; claimed: number }>();
  for (const event of events) {
    if (event.causationId) {
      const list = byCause.get(event.causationId) ?? [];
      list.push(event);
      byCause.set(event.causationId, list);
    }
    const routeId =
      event.aggregate.type === 'route'
        ? event.aggregate.id
        : event.type === 'HostnameClaimed'
          ? (event.data as { routeId?: string }).routeId
          : undefined;
    if (!routeId) continue;
    const counts = perRoute.get(routeId) ?? { requested: 0, removed: 0, claimed: 0 };
    if (event.type === 'RouteRequested') counts.requested++;
    if (event.type === 'RouteRemoved') counts.removed++;
    if (event.type === 'HostnameClaimed') counts.claimed++;
    perRoute.set(routeId, counts);
  }
  let lost = 0;
  let duplicated = 0;
  let wrongEffect = 0;
  for (const command of ledger) {
    const effects = (byCause.get(command.key) ?? []).filter(
      (event) => event.type === effectType[command.kind],
    );
    const acked = command.ackedAt !== undefined;
    const name = `${command.kind} #${command.seq} ${command.agentId} ${command.hostname ?? ''} key ${command.key}`;
    if (acked && effects.length === 0) {
      lost++;
      problems.push(`lost: ${name} was acknowledged (${command.attempts.join(',')}) but is not in the log`);
    }
    if (effects.length > 1) {
      duplicated++;
      problems.push(
        `duplicated: ${name} appears ${effects.length} times (${effects.map((event) => event.sequence).join(',')})`,
      );
    }
    const effect = effects[0];
    if (!effect) continue;
    if (command.routeId && effect.aggregate.id !== command.routeId) {
      wrongEffect++;
      problems.push(`wrong effect: ${name} acted on ${effect.aggregate.id}, not ${command.routeId}`);
    }
    const data = effect.data as { hostname?: string; target?: { port: number } };
    if (command.kind === 'create' && data.hostname !== command.hostname) {
      wrongEffect++;
      problems.push(`wrong effect: ${name} requested ${data.hostname}`);
    }
    if (command.kind !== 'remove' && command.port !== undefined && data.target?.port !== command.port) {
      wrongEffect++;
      problems.push(`wrong effect: ${name} targets ${data.target?.port}, not ${command.port}`);
    }
  }
  // Whatever the keys: a route is requested, claims its name and is removed at most once.
  for (const [routeId, counts] of perRoute) {
    const commandFlagged = ledger.some(
      (command) =>
        command.routeId === routeId &&
        (byCause.get(command.key) ?? []).filter((event) => event.type === effectType[command.kind]).length >
          1,
    );
    if (commandFlagged) continue; // counted with its command above
    if (counts.requested > 1 || counts.removed > 1 || counts.claimed > 1) {
      duplicated++;
      problems.push(`duplicated: route ${routeId} ${JSON.stringify(counts)}`);
    }
  }
  for (const command of ledger) {
    if (command.rejected)
      problems.push(
        `rejected: ${command.kind} #${command.seq} key ${command.key}: ${command.rejected.status} ${JSON.stringify(command.rejected.body)} after ${command.attempts.join(',')}`,
      );
    else if (command.ackedAt === undefined)
      problems.push(
        `unacknowledged: ${command.kind} #${command.seq} key ${command.key} after ${command.attempts.join(',')}`,
      );
  }
  return { lost, duplicated, wrongEffect, problems };
}
