import type { DomainEvent, NewEvent, StoredEvent } from '#contracts';

/** What the log says of a proxy node: its last reported status. */
export interface ProxyNodeState {
  status: string | null;
  configVersion: number | null;
}

export function foldProxyNode(events: readonly StoredEvent[]): ProxyNodeState {
  let state: ProxyNodeState = { status: null, configVersion: null };
  for (const event of events as DomainEvent[]) {
    if (event.type === 'ProxyNodeStatusChanged')
      state = { status: event.data.status, configVersion: event.data.configVersion };
  }
  return state;
}

/**
 * A node whose proxy-sync has not reported for `staleAfterMs` (a few of its full passes) is stale: its
 * HAProxy may still route what it had, but nobody knows, so `?wait=active` stops waiting for it. Once it
 * reports again it says so itself (its proxy-sync reads this transition and appends its own).
 */
export function decideStale(
  node: string,
  state: ProxyNodeState,
  lastReportAt: string,
  now: Date,
  staleAfterMs: number,
): NewEvent[] {
  if (state.status === 'stale' || state.status === null) return [];
  const silentMs = now.getTime() - Date.parse(lastReportAt);
  if (!(silentMs > staleAfterMs)) return [];
  return [
    {
      type: 'ProxyNodeStatusChanged',
      data: {
        node,
        status: 'stale',
        configVersion: state.configVersion,
        detail: `no report from its proxy-sync for ${Math.round(silentMs / 1000)} s (last at ${lastReportAt})`,
      },
    },
  ];
}
