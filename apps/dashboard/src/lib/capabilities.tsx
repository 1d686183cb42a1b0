import { createContext, useContext, useMemo, type ReactNode } from 'react';
import { api, type Capabilities } from './api';
import { useResource } from './hooks';

/**
 * Which optional parts of the API this installation serves (`GET /api/v1/capabilities`): pages about
 * certificates, proxy nodes and apps say "not available yet" instead of failing when the API lacks them.
 */
interface CapabilitiesValue {
  /** undefined while unknown. */
  has(endpoint: string): boolean | undefined;
}

const CapabilitiesContext = createContext<CapabilitiesValue>({ has: () => undefined });

export const ENDPOINTS = {
  certificates: 'GET /api/v1/certificates',
  agentCertificates: 'GET /api/v1/agents/:id/certificates',
  revokeCertificate: 'POST /api/v1/certificates/:serial/revoke',
  proxyNodes: 'GET /api/v1/proxy-nodes',
  apps: 'GET /api/v1/apps',
  appDeployments: 'GET /api/v1/apps/:name/deployments',
  deployment: 'GET /api/v1/deployments/:id',
  deploymentLogs: 'GET /api/v1/deployments/:id/logs',
} as const;

export function CapabilitiesProvider({ children }: { children: ReactNode }) {
  const resource = useResource('capabilities', (signal) =>
    api.get<Capabilities>('/capabilities', undefined, signal),
  );
  const value = useMemo<CapabilitiesValue>(() => {
    const endpoints = resource.data ? new Set(resource.data.endpoints) : undefined;
    // If the list cannot be read, assume everything is there and let requests say otherwise.
    return { has: (endpoint) => (endpoints ? endpoints.has(endpoint) : resource.error ? true : undefined) };
  }, [resource.data, resource.error]);
  return <CapabilitiesContext.Provider value={value}>{children}</CapabilitiesContext.Provider>;
}

export function useCapability(endpoint: string): boolean | undefined {
  return useContext(CapabilitiesContext).has(endpoint);
}

/** Every capability at once (the navigation shows a page only when its endpoint is served). */
export function useCapabilities(): CapabilitiesValue {
  return useContext(CapabilitiesContext);
}
