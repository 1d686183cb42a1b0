import { Controller, Get, Inject, Param, Query } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { z } from 'zod';
import { dnsLabel, parseOrThrow, type EventTypeStatsView, type Overview } from '#contracts';
import { queryAgentEvents, queryEventStats } from '#persistence';
import { Auth } from './auth.js';
import { readOverview } from './queries/overview.js';

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

/**
 * Read endpoints the dashboard needs beyond the resources' own: counts by status for the overview, the
 * event rate, per-type statistics, and an agent's own events. All read projections.
 */
@Controller()
export class OverviewController {
  constructor(@Inject(DataSource) private readonly dataSource: DataSource) {}

  @Get('overview')
  @Auth('admin')
  overview(): Promise<Overview> {
    return readOverview(this.dataSource);
  }

  /** Events per type (the `event_stats` projection), most frequent first. */
  @Get('event-stats')
  @Auth('admin')
  async eventStats(): Promise<{ types: EventTypeStatsView[] }> {
    return { types: await queryEventStats(this.dataSource) };
  }

  /**
   * An agent's own events, newest first: its agent aggregate, its certificates, and its routes and their
   * host names (present and past).
   */
  @Get('agents/:id/events')
  @Auth('admin')
  async agentEvents(@Param('id') id: string, @Query() raw: unknown) {
    const agentId = parseOrThrow(z.object({ id: dnsLabel }), { id }).id;
    const query = parseOrThrow(agentEventsQuery, raw);
    return queryAgentEvents(this.dataSource, agentId, { before: query.before, limit: query.limit ?? 50 });
  }
}
