import { aggregateTypeSubjects, type DomainEvent } from '#contracts';
import type { EventStore } from '#eventstore';
import { evolveAgent, initialAgentState, type AgentState } from './domain/decider.js';

/** Every agent's state, folded from the agent events of the log (streamed, bounded memory). */
export async function foldAgentsFromLog(store: EventStore): Promise<Map<string, AgentState>> {
  const agents = new Map<string, AgentState>();
  for await (const event of store.readLog({
    filterSubject: aggregateTypeSubjects('agent', store.subjectPrefix),
  })) {
    const id = event.aggregate.id;
    agents.set(id, evolveAgent(agents.get(id) ?? initialAgentState, event as DomainEvent));
  }
  return agents;
}
