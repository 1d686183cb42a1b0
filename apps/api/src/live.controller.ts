import { Controller, Get, Headers, Inject, Query, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';
import { z } from 'zod';
import { TokenVerifier } from '#auth';
import { parseOrThrow } from '#contracts';
import { Auth, Authenticator } from './auth.js';
import { LiveUpdates } from './live.js';

const sequence = z.coerce
  .number({ error: 'must be a sequence number' })
  .int('must be an integer')
  .min(0, 'must be at least 0')
  .max(Number.MAX_SAFE_INTEGER, 'is too large');

const liveQuery = z.strictObject({ after: sequence.optional() });

/**
 * `GET /api/v1/live`: Server-Sent Events of the event log for the dashboard (admin only).
 *
 * The token travels in the `Authorization` header like on every other request — the dashboard reads the
 * stream with `fetch`, not `EventSource` (which cannot send headers), so no token ever lands in a URL,
 * an access log or the browser history. The client resumes with `Last-Event-ID` (or `?after=`).
 *
 * Events: `hello` (first), `change` (one per event, `id:` = its sequence, sent once the projections the
 * dashboard reads have applied it), `heartbeat` (every CL_LIVE_HEARTBEAT_MS; the token is checked again
 * each time), and a last `expired` / `unauthorized` / `error` before the server ends a stream.
 */
@Controller('live')
export class LiveController {
  constructor(
    @Inject(LiveUpdates) private readonly live: LiveUpdates,
    @Inject(Authenticator) private readonly authenticator: Authenticator,
    @Inject(TokenVerifier) private readonly verifier: TokenVerifier,
  ) {}

  @Get()
  @Auth('admin')
  async stream(
    @Req() request: Request,
    @Res() response: Response,
    @Query() raw: unknown,
    @Headers('last-event-id') lastEventId: string | undefined,
  ): Promise<void> {
    const query = parseOrThrow(liveQuery, raw);
    const after =
      lastEventId !== undefined && lastEventId !== ''
        ? parseOrThrow(z.object({ 'Last-Event-ID': sequence }), { 'Last-Event-ID': lastEventId })[
            'Last-Event-ID'
          ]
        : query.after;
    const authorization = request.headers.authorization;
    // The guard verified the token; its expiry ends the stream.
    const claims = this.verifier.verify(authorization!.slice('Bearer '.length));
    await this.live.open({
      response,
      after,
      expiresAt: claims.exp * 1000,
      stillAuthorized: async () => (await this.authenticator.authenticate(authorization)).kind === 'admin',
    });
  }
}
