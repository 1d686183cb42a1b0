import type { DomainEvent, StoredEvent } from '#contracts';

/** What deployments needs of an agent: whether it can run apps, and the address the front reaches it on. */
export type AgentState =
  { status: 'absent' } | { status: 'active' | 'deregistered'; agentId: string; publicAddress: string };

function evolve(state: AgentState, event: DomainEvent): AgentState {
  if (event.type === 'AgentEnrolled') {
    return { status: 'active', agentId: event.data.agentId, publicAddress: event.data.publicAddress };
  }
  if (event.type === 'AgentDeregistered' && state.status !== 'absent')
    return { ...state, status: 'deregistered' };
  return state;
}

export function foldAgentForDeployments(events: readonly StoredEvent[]): AgentState {
  return (events as DomainEvent[]).reduce(evolve, { status: 'absent' } as AgentState);
}
