import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import {
  PROXY_STREAMS_SUBJECT,
  targetStreamsRequest,
  type TargetStreams,
  type TargetStreamsRequest,
} from '#contracts';
import type { DataplaneClient } from '#dataplane';
import { STICK_TABLES, targetKey } from '#haproxy';
import type { Logger } from '#platform';

/** The streams this front's HAProxy has in flight to a target (`st_targets`; no entry means none). */
export async function streamsTo(client: DataplaneClient, target: TargetStreamsRequest): Promise<number> {
  const entries = await client.getStickTableEntries(
    STICK_TABLES.targets,
    targetKey(target.address, target.port),
  );
  return entries.reduce((sum, entry) => sum + (entry.conn_cur ?? 0), 0);
}

/**
 * Answers `proxy.streams` for this node: every proxy-sync answers (no queue group), so the asker sums
 * the fronts. A request it cannot parse, or a count HAProxy cannot give, gets no answer: the asker
 * then knows the count only as "unknown" and waits its drain delay out.
 */
export class TargetStreamsResponder {
  private subscription?: Subscription;

  constructor(
    private readonly connection: NatsConnection,
    private readonly node: string,
    private readonly client: DataplaneClient,
    private readonly logger: Logger,
  ) {}

  start(): void {
    this.subscription = this.connection.subscribe(PROXY_STREAMS_SUBJECT, {
      callback: (error, message) => {
        if (error || !message.reply) return;
        void this.answer(message.data).then(
          (answer) => {
            if (answer) message.respond(JSON.stringify(answer));
          },
          (failure: unknown) => this.logger.warn('cannot count the streams to a target', { error: failure }),
        );
      },
    });
  }

  private async answer(data: Uint8Array): Promise<TargetStreams | undefined> {
    let body: unknown;
    try {
      body = JSON.parse(new TextDecoder().decode(data));
    } catch {
      return undefined;
    }
    const parsed = targetStreamsRequest.safeParse(body);
    if (!parsed.success) return undefined;
    return { node: this.node, streams: await streamsTo(this.client, parsed.data) };
  }

  stop(): void {
    this.subscription?.unsubscribe();
  }
}
