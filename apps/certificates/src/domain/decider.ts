import {
  DomainError,
  type Actor,
  type CertificateStatus,
  type DomainEvent,
  type HookStatus,
  type NewEvent,
  type RevocationReasonName,
  type StoredEvent,
} from '#contracts';

/**
 * The certificates domain as pure functions. The `certificate` aggregate is the set of certificates of one
 * holder (an agent, or `_front`): folding it gives every certificate the holder was issued and what became
 * of it, and every decision on a holder's certificates is taken on that state under one optimistic
 * concurrency check. Signing is not here: it uses randomness, so the service signs first and passes the
 * result in; a refusal then appends nothing and the signed certificate is dropped.
 */

/** What the CA issued: public data only, exactly what the events carry. */
export interface IssuedData {
  serial: string;
  agentId: string | null;
  names: string[];
  notBefore: string;
  notAfter: string;
  fingerprint: string;
  publicKeyFingerprint: string;
  issuerFingerprint: string;
  certificatePem: string;
  chainPem: string;
}

export interface HeldCertificate extends IssuedData {
  status: CertificateStatus;
  replaces: string | null;
  supersededBy: string | null;
  issuedAt: string;
  installedAt: string | null;
  revokedAt: string | null;
  revocationReason: RevocationReasonName | null;
}

export interface HolderState {
  /** By serial, in the order they were issued. */
  certificates: ReadonlyMap<string, HeldCertificate>;
}

export const initialHolderState: HolderState = { certificates: new Map() };

function withCertificate(state: HolderState, certificate: HeldCertificate): HolderState {
  const certificates = new Map(state.certificates);
  certificates.set(certificate.serial, certificate);
  return { certificates };
}

function issuedDataOf(data: IssuedData): IssuedData {
  return {
    serial: data.serial,
    agentId: data.agentId,
    names: [...data.names],
    notBefore: data.notBefore,
    notAfter: data.notAfter,
    fingerprint: data.fingerprint,
    publicKeyFingerprint: data.publicKeyFingerprint,
    issuerFingerprint: data.issuerFingerprint,
    certificatePem: data.certificatePem,
    chainPem: data.chainPem,
  };
}

export function evolveHolder(state: HolderState, event: DomainEvent): HolderState {
  switch (event.type) {
    case 'CertificateIssued':
    case 'CertificateRenewed': {
      if (state.certificates.has(event.data.serial)) return state;
      return withCertificate(state, {
        ...issuedDataOf(event.data),
        status: 'issued',
        replaces: event.type === 'CertificateRenewed' ? event.data.replaces : null,
        supersededBy: null,
        issuedAt: event.occurredAt,
        installedAt: null,
        revokedAt: null,
        revocationReason: null,
      });
    }
    case 'CertificateInstalled': {
      const certificate = state.certificates.get(event.data.serial);
      if (!certificate || certificate.status !== 'issued') return state;
      return withCertificate(state, { ...certificate, status: 'installed', installedAt: event.occurredAt });
    }
    case 'CertificateSuperseded': {
      const certificate = state.certificates.get(event.data.serial);
      if (!certificate || (certificate.status !== 'issued' && certificate.status !== 'installed'))
        return state;
      return withCertificate(state, { ...certificate, status: 'superseded', supersededBy: event.data.by });
    }
    case 'CertificateRevoked': {
      const certificate = state.certificates.get(event.data.serial);
      if (!certificate || certificate.status === 'revoked') return state;
      return withCertificate(state, {
        ...certificate,
        status: 'revoked',
        revokedAt: event.occurredAt,
        revocationReason: event.data.reason,
      });
    }
    default:
      return state;
  }
}

export function foldHolder(events: readonly StoredEvent[]): HolderState {
  return (events as DomainEvent[]).reduce(evolveHolder, initialHolderState);
}

/** Not revoked and not past its notAfter. */
export function isValidAt(certificate: HeldCertificate, now: Date): boolean {
  return certificate.status !== 'revoked' && Date.parse(certificate.notAfter) > now.getTime();
}

// ---------------------------------------------------------------------------------------------------
// What the certificates service needs to know about agents and host names, folded from their own events.

export type AgentLife = { status: 'absent' } | { status: 'active' | 'deregistered'; agentId: string };

export function evolveAgentLife(state: AgentLife, event: DomainEvent): AgentLife {
  switch (event.type) {
    case 'AgentEnrolled':
      return { status: 'active', agentId: event.data.agentId };
    case 'AgentDeregistered':
      return state.status === 'absent' ? state : { ...state, status: 'deregistered' };
    default:
      return state;
  }
}

export function foldAgentLife(events: readonly StoredEvent[]): AgentLife {
  return (events as DomainEvent[]).reduce(evolveAgentLife, { status: 'absent' } as AgentLife);
}

/** Who holds a host name now (its last claim, unless that claim was released). */
export type HostnameHolder = { agentId: string; routeId: string } | null;

export function evolveHostnameHolder(state: HostnameHolder, event: DomainEvent): HostnameHolder {
  switch (event.type) {
    case 'HostnameClaimed':
      return { agentId: event.data.agentId, routeId: event.data.routeId };
    case 'HostnameReleased':
      return state?.routeId === event.data.routeId ? null : state;
    default:
      return state;
  }
}

export function foldHostnameHolder(events: readonly StoredEvent[]): HostnameHolder {
  return (events as DomainEvent[]).reduce(evolveHostnameHolder, null as HostnameHolder);
}

// ---------------------------------------------------------------------------------------------------
// Policies and decisions

/** An agent asks only for itself; admins (and the system) for any agent. */
export function checkRequester(actor: Actor, agentId: string): void {
  if (actor.kind === 'agent' && actor.id !== agentId) {
    throw new DomainError('forbidden', 'an agent can only request certificates for itself', 'agentId');
  }
}

/** Certificates go only to agents that exist and are not deregistered. */
export function checkAgentUsable(agent: AgentLife, agentId: string): void {
  if (agent.status === 'absent') throw new DomainError('not_found', `no agent ${agentId}`, 'agentId');
  if (agent.status === 'deregistered')
    throw new DomainError('conflict', `agent ${agentId} is deregistered`, 'agentId');
}

/**
 * The names an agent owns among those it asks for: its database name `<agentId>.mongodb.<domain>` always,
 * and each host name it holds now (by the host name's own claim events in the log). Anything else is left
 * out, so `assertNamesAllowed` names it.
 */
export function ownedNames(
  agentId: string,
  databaseHostname: string,
  holders: ReadonlyMap<string, HostnameHolder>,
): string[] {
  const owned = [databaseHostname];
  for (const [name, holder] of holders) if (holder?.agentId === agentId) owned.push(name);
  return owned;
}

export interface IssueRequest {
  publicKeyFingerprint: string;
  names: readonly string[];
  replaces?: string;
}

const sameNames = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && [...a].sort().join('\n') === [...b].sort().join('\n');

/**
 * Checks a request before anything is signed. Returns the certificate already issued for the same key
 * pair and names (a retried request: answered again, nothing appended), or undefined when a new one may
 * be signed. Refuses a key whose certificate was revoked, and a `replaces` that is unknown, revoked or
 * already replaced by an installed certificate.
 */
export function checkIssue(
  state: HolderState,
  request: IssueRequest,
  now: Date,
): HeldCertificate | undefined {
  for (const certificate of state.certificates.values()) {
    if (certificate.publicKeyFingerprint !== request.publicKeyFingerprint) continue;
    if (certificate.status === 'revoked') {
      throw new DomainError(
        'conflict',
        `a certificate for this key pair (serial ${certificate.serial}) was revoked; generate a new key`,
        'csr',
      );
    }
  }
  for (const certificate of state.certificates.values()) {
    if (
      certificate.publicKeyFingerprint === request.publicKeyFingerprint &&
      sameNames(certificate.names, request.names) &&
      isValidAt(certificate, now)
    ) {
      return certificate;
    }
  }
  if (request.replaces !== undefined) {
    const replaced = state.certificates.get(request.replaces);
    if (!replaced)
      throw new DomainError('not_found', `no certificate ${request.replaces} of this holder`, 'replaces');
    if (replaced.status === 'revoked')
      throw new DomainError(
        'conflict',
        `certificate ${request.replaces} was revoked; request a new certificate without replaces`,
        'replaces',
      );
    if (replaced.status === 'superseded')
      throw new DomainError(
        'conflict',
        `certificate ${request.replaces} was already replaced by ${replaced.supersededBy}`,
        'replaces',
      );
  }
  return undefined;
}

/** The event for a freshly signed certificate: CertificateRenewed when it replaces one, else CertificateIssued. */
export function decideIssue(
  state: HolderState,
  request: IssueRequest,
  issued: IssuedData,
  now: Date,
): NewEvent[] {
  const existing = checkIssue(state, request, now);
  if (existing) return [];
  if (state.certificates.has(issued.serial))
    throw new Error(`internal: serial ${issued.serial} was issued before`);
  const data = issuedDataOf(issued);
  return request.replaces === undefined
    ? [{ type: 'CertificateIssued', data }]
    : [{ type: 'CertificateRenewed', data: { ...data, replaces: request.replaces } }];
}

export interface HookReport {
  status: HookStatus;
  detail?: string;
}

/**
 * The holder installed `serial`: CertificateInstalled, and CertificateSuperseded for what it replaces (and
 * for other renewals of that same certificate that were never installed). Confirming again decides what
 * is still missing — nothing once all of it is in the log, the rest if a writer stopped half-way.
 */
export function decideConfirm(state: HolderState, serial: string, hook: HookReport): NewEvent[] {
  const certificate = state.certificates.get(serial);
  if (!certificate) throw new DomainError('not_found', `no certificate ${serial} of this holder`, 'serial');
  if (certificate.status === 'revoked')
    throw new DomainError('conflict', `certificate ${serial} was revoked; request a new one`, 'serial');
  if (certificate.status === 'superseded') return [];
  const events: NewEvent[] =
    certificate.status === 'issued'
      ? [
          {
            type: 'CertificateInstalled',
            data: { serial, hook: hook.status, hookDetail: hook.detail ?? null },
          },
        ]
      : [];
  if (certificate.replaces !== null) {
    for (const other of state.certificates.values()) {
      if (other.serial === serial) continue;
      const replaced = other.serial === certificate.replaces && other.status !== 'revoked';
      const sibling = other.replaces === certificate.replaces && other.status === 'issued';
      if ((replaced && other.status !== 'superseded') || sibling) {
        events.push({ type: 'CertificateSuperseded', data: { serial: other.serial, by: serial } });
      }
    }
  }
  return events;
}

export function decideRevoke(
  state: HolderState,
  serial: string,
  reason: RevocationReasonName,
  detail: string,
): NewEvent[] {
  const certificate = state.certificates.get(serial);
  if (!certificate) throw new DomainError('not_found', `no certificate ${serial}`, 'serial');
  if (certificate.status === 'revoked') return [];
  return [{ type: 'CertificateRevoked', data: { serial, reason, detail } }];
}

/** Every certificate of the holder that is still valid is revoked (deregistration). Again: nothing. */
export function decideRevokeAll(
  state: HolderState,
  now: Date,
  reason: RevocationReasonName,
  detail: string,
): NewEvent[] {
  return [...state.certificates.values()]
    .filter((certificate) => isValidAt(certificate, now))
    .map((certificate) => ({
      type: 'CertificateRevoked' as const,
      data: { serial: certificate.serial, reason, detail },
    }));
}

/**
 * The front server's certificate is installed by the service itself (it writes the bundle): a certificate
 * not yet in the log is recorded as issued (or renewed, replacing the newest one in use) and installed at
 * once, and whatever it replaces is superseded. Deciding again adds only what is missing: nothing when
 * all of it is recorded, the rest when a writer stopped between the appends.
 */
export function decideRecordFront(state: HolderState, issued: IssuedData): NewEvent[] {
  const known = state.certificates.get(issued.serial);
  if (known?.status === 'revoked' || known?.status === 'superseded') return [];
  const others = [...state.certificates.values()].filter(
    (certificate) =>
      certificate.serial !== issued.serial &&
      (certificate.status === 'issued' || certificate.status === 'installed'),
  );
  const events: NewEvent[] = [];
  if (!known) {
    const latest = others[others.length - 1];
    const data = issuedDataOf(issued);
    events.push(
      latest
        ? { type: 'CertificateRenewed', data: { ...data, replaces: latest.serial } }
        : { type: 'CertificateIssued', data },
    );
  }
  if (!known || known.status === 'issued') {
    events.push({
      type: 'CertificateInstalled',
      data: { serial: issued.serial, hook: 'none', hookDetail: null },
    });
  }
  for (const certificate of others) {
    events.push({ type: 'CertificateSuperseded', data: { serial: certificate.serial, by: issued.serial } });
  }
  return events;
}
