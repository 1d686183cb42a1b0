import { Controller, Get, Inject, Param, Query } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { z } from 'zod';
import { dnsLabel, parseOrThrow } from '#contracts';
import { Auth } from './auth.js';

/** Minutes of history the overview's event-rate chart shows. */
const RATE_WINDOW_MINUTES = 15;
/** Certificates expiring within this many days count as "expiring soon". */
const EXPIRING_SOON_DAYS = 14;

const agentEventsQuery = z.strictObject({
  before: z.coerce
    .number({ error: 'must be a sequence number' })
    .int('must be an integer')
    .min(1, 'must be at least 1')
    .optional(),
  limit: z.coerce
    .number({ error: 'must be a number' })
    .int('must be an integer')
    .min(1, 'must be between 1 and 200')
    .max(200, 'must be between 1 and 200')
    .optional(),
});

export interface Overview {
  generatedAt: string;
  agents: { total: number; byStatus: Record<string, number> };
  routes: { total: number; byStatus: Record<string, number>; byKind: Record<string, number> };
  events: {
    total: number;
    lastSequence: number;
    lastOccurredAt: string | null;
    /** Events per minute over the last minutes, oldest first (minutes without events count 0). */
    perMinute: { minute: string; count: number }[];
  };
  projector: { position: number; projections: { name: string; lastSequence: number; updatedAt: string }[] };
  deadLetters: Record<'open' | 'retrying' | 'resolved', number>;
  /** null while the certificates projection is not deployed. */
  certificates: {
    expiringSoon: number;
    expired: number;
    withinDays: number;
    nextExpiry: string | null;
  } | null;
}

interface EventRow {
  sequence: string;
  event_id: string;
  type: string;
  aggregate_type: string;
  aggregate_id: string;
  actor_kind: string;
  actor_id: string;
  occurred_at: Date;
  correlation_id: string;
  causation_id: string | null;
}

/**
 * Read endpoints the dashboard needs beyond the resources' own: counts by status for the overview, the
 * event rate, per-type statistics, and an agent's own events. All read projections.
 */
@Controller()
export class OverviewController {
  constructor(@Inject(DataSource) private readonly dataSource: DataSource) {}

  @Get('overview')
  @Auth('admin')
  async overview(): Promise<Overview> {
    const [agents, routes, totals, perMinute, checkpoints, deadLetters, certificates] = await Promise.all([
      this.dataSource.query('SELECT status, count(*)::int AS count FROM agents GROUP BY status') as Promise<
        { status: string; count: number }[]
      >,
      this.dataSource.query(
        'SELECT status, kind, count(*)::int AS count FROM routes GROUP BY status, kind',
      ) as Promise<{ status: string; kind: string; count: number }[]>,
      this.dataSource.query(
        `SELECT coalesce(sum(count), 0)::bigint AS total, coalesce(max(last_sequence), 0) AS last_sequence,
                max(last_occurred_at) AS last_occurred_at FROM event_stats`,
      ) as Promise<{ total: string; last_sequence: string; last_occurred_at: Date | null }[]>,
      // Time grows with the sequence (BRIN index on occurred_at): this reads only the last minutes.
      this.dataSource.query(
        `SELECT minute, coalesce(counts.count, 0)::int AS count
           FROM generate_series(date_trunc('minute', now()) - make_interval(mins => $1 - 1),
                                date_trunc('minute', now()), interval '1 minute') AS minute
           LEFT JOIN (SELECT date_trunc('minute', occurred_at) AS at, count(*) AS count FROM event_log
                       WHERE occurred_at >= date_trunc('minute', now()) - make_interval(mins => $1 - 1)
                       GROUP BY 1) counts ON counts.at = minute
          ORDER BY minute`,
        [RATE_WINDOW_MINUTES],
      ) as Promise<{ minute: Date; count: number }[]>,
      this.dataSource.query(
        'SELECT projection, last_sequence, updated_at FROM projection_checkpoints ORDER BY projection',
      ) as Promise<{ projection: string; last_sequence: string; updated_at: Date }[]>,
      this.dataSource.query(
        'SELECT status, count(*)::int AS count FROM dead_letters GROUP BY status',
      ) as Promise<{ status: string; count: number }[]>,
      this.certificateSummary(),
    ]);
    const routesByStatus: Record<string, number> = { pending: 0, active: 0, failed: 0, removed: 0 };
    const routesByKind: Record<string, number> = {};
    for (const row of routes) {
      routesByStatus[row.status] = (routesByStatus[row.status] ?? 0) + row.count;
      if (row.status !== 'removed') routesByKind[row.kind] = (routesByKind[row.kind] ?? 0) + row.count;
    }
    const agentsByStatus: Record<string, number> = { online: 0, offline: 0, enrolled: 0, deregistered: 0 };
    for (const row of agents) agentsByStatus[row.status] = row.count;
    const letters = { open: 0, retrying: 0, resolved: 0 };
    for (const row of deadLetters) letters[row.status as keyof typeof letters] = row.count;
    const projections = checkpoints.map((row) => ({
      name: row.projection,
      lastSequence: Number(row.last_sequence),
      updatedAt: new Date(row.updated_at).toISOString(),
    }));
    const total = totals[0];
    return {
      generatedAt: new Date().toISOString(),
      agents: {
        total: agents.reduce((sum, row) => sum + (row.status === 'deregistered' ? 0 : row.count), 0),
        byStatus: agentsByStatus,
      },
      routes: {
        total: routes.reduce((sum, row) => sum + (row.status === 'removed' ? 0 : row.count), 0),
        byStatus: routesByStatus,
        byKind: routesByKind,
      },
      events: {
        total: Number(total?.total ?? 0),
        lastSequence: Number(total?.last_sequence ?? 0),
        lastOccurredAt: total?.last_occurred_at ? new Date(total.last_occurred_at).toISOString() : null,
        perMinute: perMinute.map((row) => ({ minute: new Date(row.minute).toISOString(), count: row.count })),
      },
      projector: {
        position: projections.length === 0 ? 0 : Math.min(...projections.map((p) => p.lastSequence)),
        projections,
      },
      deadLetters: letters,
      certificates,
    };
  }

  /** Events per type (the `event_stats` projection), most frequent first. */
  @Get('event-stats')
  @Auth('admin')
  async eventStats() {
    const rows: { type: string; count: string; last_sequence: string; last_occurred_at: Date }[] =
      await this.dataSource.query(
        'SELECT type, count, last_sequence, last_occurred_at FROM event_stats ORDER BY count DESC, type',
      );
    return {
      types: rows.map((row) => ({
        type: row.type,
        count: Number(row.count),
        lastSequence: Number(row.last_sequence),
        lastOccurredAt: new Date(row.last_occurred_at).toISOString(),
      })),
    };
  }

  /**
   * An agent's own events, newest first: its agent aggregate, its certificates, and its routes and their
   * host names (present and past). Index-backed: each part is a lookup by aggregate.
   */
  @Get('agents/:id/events')
  @Auth('admin')
  async agentEvents(@Param('id') id: string, @Query() raw: unknown) {
    const agentId = parseOrThrow(z.object({ id: dnsLabel }), { id }).id;
    const query = parseOrThrow(agentEventsQuery, raw);
    const limit = query.limit ?? 50;
    const rows: EventRow[] = await this.dataSource.query(
      `SELECT sequence, event_id, type, aggregate_type, aggregate_id, actor_kind, actor_id, occurred_at,
              correlation_id, causation_id
         FROM event_log
        WHERE ((aggregate_type = 'agent' AND aggregate_id = $1)
            OR (aggregate_type = 'certificate' AND aggregate_id = $1)
            OR (aggregate_type = 'route' AND aggregate_id IN (SELECT route_id FROM routes WHERE agent_id = $1))
            OR (aggregate_type = 'hostname'
                AND aggregate_id IN (SELECT hostname FROM routes WHERE agent_id = $1)))
          AND ($2::bigint IS NULL OR sequence < $2)
        ORDER BY sequence DESC LIMIT $3`,
      [agentId, query.before ?? null, limit + 1],
    );
    const page = rows.slice(0, limit).map((row) => ({
      sequence: Number(row.sequence),
      eventId: row.event_id,
      type: row.type,
      aggregate: { type: row.aggregate_type, id: row.aggregate_id },
      actor: { kind: row.actor_kind, id: row.actor_id },
      occurredAt: new Date(row.occurred_at).toISOString(),
      correlationId: row.correlation_id,
      causationId: row.causation_id,
    }));
    const last = page[page.length - 1];
    return { events: page, next: rows.length > limit && last ? { before: last.sequence } : null };
  }

  /** Installed certificates expiring soon or expired; null until the certificates projection exists. */
  private async certificateSummary(): Promise<Overview['certificates']> {
    const [exists]: { table: string | null }[] = await this.dataSource.query(
      `SELECT to_regclass('public.certificates')::text AS table`,
    );
    if (!exists?.table) return null;
    const [row]: { expiring: number; expired: number; next: Date | null }[] = await this.dataSource.query(
      `SELECT count(*) FILTER (WHERE not_after >= now() AND not_after < now() + make_interval(days => $1))::int AS expiring,
              count(*) FILTER (WHERE not_after < now())::int AS expired,
              min(not_after) FILTER (WHERE not_after >= now()) AS next
         FROM certificates WHERE status IN ('issued', 'installed')`,
      [EXPIRING_SOON_DAYS],
    );
    return {
      expiringSoon: row?.expiring ?? 0,
      expired: row?.expired ?? 0,
      withinDays: EXPIRING_SOON_DAYS,
      nextExpiry: row?.next ? new Date(row.next).toISOString() : null,
    };
  }
}
