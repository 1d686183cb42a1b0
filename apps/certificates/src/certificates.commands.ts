import { readFile } from 'node:fs/promises';
import type { DataSource } from 'typeorm';
import {
  DomainError,
  FRONT_HOLDER,
  type AggregateType,
  type CertificateNamesResult,
  type CommandEnvelope,
  type ConfirmCertificateBody,
  type ConfirmCertificateResult,
  type DomainEvent,
  type EventContext,
  type IssueCertificatePayload,
  type IssueCertificateResult,
  type IssuedCertificateView,
  type NewEvent,
  type RevocationReasonName,
  type RevokeCertificatePayload,
  type StoredEvent,
} from '#contracts';
import { commandHandler, contextOf, type AggregateHistory, type EventStore } from '#eventstore';
import { hostnamesOfAgent, queryCertificate } from '#persistence';
import { assertNamesAllowed, ensureFrontCertificate, issueCertificate, parseCsr } from '#pki';
import { agentDatabaseHostname } from '#pki-client';
import type { Logger } from '#platform';
import { AgentChannel } from './agent-channel.js';
import { Authority, CERTIFICATES_ACTOR, describeCertificate, issuedData } from './authority.js';
import type { CertificateIndex } from './certificate-index.js';
import type { CrlPublisher } from './crl.js';
import {
  checkAgentUsable,
  checkIssue,
  checkRequester,
  decideConfirm,
  decideIssue,
  decideRecordFront,
  decideRevoke,
  decideRevokeAll,
  evolveHolder,
  foldAgentLife,
  foldHostnameHolder,
  initialHolderState,
  ownedNames,
  type HeldCertificate,
  type HolderState,
  type HostnameHolder,
  type IssuedData,
} from './domain/decider.js';

/** Every decision on certificates is taken on one holder's certificates (an agent's, or the front's). */
const holderHandler = commandHandler({ evolve: evolveHolder, initialState: initialHolderState });

export interface CertificatesOptions {
  /** Where the front's bundle is kept (proxy-sync's CL_FRONT_CERT_FILE); undefined: not managed here. */
  frontCertificateFile?: string;
}

export function viewOf(certificate: IssuedData & { replaces?: string | null }): IssuedCertificateView {
  return {
    serial: certificate.serial,
    agentId: certificate.agentId,
    names: [...certificate.names],
    notBefore: certificate.notBefore,
    notAfter: certificate.notAfter,
    fingerprint: certificate.fingerprint,
    publicKeyFingerprint: certificate.publicKeyFingerprint,
    issuerFingerprint: certificate.issuerFingerprint,
    certificatePem: certificate.certificatePem,
    chainPem: certificate.chainPem,
    replaces: certificate.replaces ?? null,
  };
}

/**
 * The command side of the certificates service. Decisions are pure (`domain/decider.ts`) on states folded
 * from the log; this class loads them, signs (before deciding: signing is random), appends with optimistic
 * concurrency on the holder's aggregate, decides again when it loses a race, and tells the agent.
 */
export class CertificateCommands {
  constructor(
    private readonly store: EventStore,
    private readonly dataSource: DataSource,
    private readonly authority: Authority,
    private readonly index: CertificateIndex,
    private readonly crl: CrlPublisher,
    private readonly channel: AgentChannel,
    private readonly options: CertificatesOptions,
    private readonly logger: Logger,
  ) {}

  private async load(type: AggregateType, id: string): Promise<AggregateHistory> {
    return this.store.readAggregate(type, id);
  }

  /**
   * Decides on a holder's certificates and appends, deciding again when another append got in between.
   * Returns the events stored (none when the decision was "nothing to do"). No command id: a decision
   * may complete one a writer left half-way (decideRecordFront, decideConfirm), and its events must not
   * take the message ids of the part already stored.
   */
  private async decideOnHolder(
    holder: string,
    decide: (state: HolderState) => NewEvent[],
    context: EventContext,
  ): Promise<{ stored: StoredEvent[]; state: HolderState }> {
    const { stored, state } = await holderHandler.handle(
      this.store,
      { type: 'certificate', id: holder },
      decide,
      { context },
    );
    return { stored, state };
  }

  /**
   * Signs a CSR for an agent. Refusals come first and append nothing: another agent's request (403
   * `agentId`), a CSR that is not a valid RSA ≥ 2048 request signed by its own key (400 `csr`), an
   * unknown or deregistered agent, a name the agent does not own (403 naming it), a `replaces` that cannot
   * be replaced. A retried request for the same key pair and names gets the same certificate back.
   */
  async issue(command: CommandEnvelope<IssueCertificatePayload>): Promise<IssueCertificateResult> {
    const { agentId, replaces } = command.payload;
    checkRequester(command.actor, agentId);
    const csr = parseCsr(command.payload.csr, { field: 'csr' });
    const agentHistory = await this.load('agent', agentId);
    checkAgentUsable(foldAgentLife(agentHistory.events), agentId);
    await this.checkOwnership(agentId, csr.names);

    const request = { publicKeyFingerprint: csr.publicKeyFingerprint, names: csr.names, replaces };
    let signed: IssuedData | undefined;
    let existing: HeldCertificate | undefined;
    const { stored } = await this.decideOnHolder(
      agentId,
      (state) => {
        const now = new Date();
        existing = checkIssue(state, request, now);
        if (existing) return [];
        signed ??= issuedData(
          issueCertificate(this.authority.ca, csr, {
            validitySeconds: this.authority.settings.certValiditySeconds,
            now,
          }),
          agentId,
        );
        return decideIssue(state, request, signed, now);
      },
      contextOf(command),
    );
    if (stored.length === 0) {
      const found = existing!;
      return { outcome: 'existing', certificate: viewOf(found) };
    }
    const event = stored[0] as Extract<DomainEvent, { type: 'CertificateIssued' | 'CertificateRenewed' }>;
    const certificate = viewOf(event.data);

    // Deregistered meanwhile? Then this certificate must not stay valid.
    const agentSubject = this.store.subjectOf('agent', agentId);
    if ((await this.store.lastSequenceOfSubject(agentSubject)) !== agentHistory.lastSequence) {
      const agent = foldAgentLife((await this.load('agent', agentId)).events);
      if (agent.status === 'deregistered') {
        await this.revokeSerial(agentId, certificate.serial, 'cessationOfOperation', 'agent deregistered', {
          ...contextOf(command),
          actor: CERTIFICATES_ACTOR,
        });
        throw new DomainError('conflict', `agent ${agentId} is deregistered`, 'agentId');
      }
    }
    this.logger.info(replaces ? 'certificate renewed' : 'certificate issued', {
      agentId,
      serial: certificate.serial,
      names: certificate.names,
      notAfter: certificate.notAfter,
      replaces: replaces ?? null,
      by: command.actor,
    });
    await this.channel.deliver(agentId, certificate);
    return { outcome: replaces ? 'renewed' : 'issued', certificate };
  }

  /** Every requested name must be the agent's database name or a host name it holds now (by the log). */
  private async checkOwnership(agentId: string, names: readonly string[]): Promise<void> {
    const databaseHostname = agentDatabaseHostname(agentId, this.authority.domain);
    const holders = new Map<string, HostnameHolder>();
    for (const name of names) {
      if (name === databaseHostname || holders.has(name)) continue;
      holders.set(name, foldHostnameHolder((await this.load('hostname', name)).events));
    }
    assertNamesAllowed(names, ownedNames(agentId, databaseHostname, holders), 'csr');
  }

  /** The agent installed a certificate: CertificateInstalled, and what it replaces is superseded. */
  async confirm(
    agentId: string,
    body: ConfirmCertificateBody,
    context: EventContext,
  ): Promise<ConfirmCertificateResult> {
    const { stored } = await this.decideOnHolder(
      agentId,
      (state) => decideConfirm(state, body.serial, body.hook),
      context,
    );
    const superseded = stored
      .filter((event) => event.type === 'CertificateSuperseded')
      .map((event) => (event.data as { serial: string }).serial);
    if (stored.length > 0) {
      const fields = { agentId, serial: body.serial, hook: body.hook, superseded };
      if (body.hook.status === 'failed') this.logger.warn('certificate installed; its hook failed', fields);
      else this.logger.info('certificate installed', fields);
    }
    return { serial: body.serial, status: 'installed', changed: stored.length > 0, superseded };
  }

  /** The names an agent may put in a CSR now: its database name and its routes' host names. */
  async names(agentId: string): Promise<CertificateNamesResult> {
    const hostnames = await hostnamesOfAgent(this.dataSource, agentId);
    return {
      databaseHostname: agentDatabaseHostname(agentId, this.authority.domain),
      hostnames,
    };
  }

  /** An admin revokes one certificate (any holder's). Revoking it again changes nothing. */
  async revoke(command: CommandEnvelope<RevokeCertificatePayload>) {
    const { serial } = command.payload;
    await this.index.refresh();
    const holder = this.index.holderOf(serial);
    if (holder === undefined) throw new DomainError('not_found', `no certificate ${serial}`, 'serial');
    const reason = command.payload.reason ?? 'unspecified';
    const detail = command.payload.detail ?? `revoked by ${command.actor.kind} ${command.actor.id}`;
    const changed = await this.revokeSerial(holder, serial, reason, detail, contextOf(command));
    const view = await queryCertificate(this.dataSource, serial);
    return { serial, holder, changed, reason, certificate: view ?? null };
  }

  private async revokeSerial(
    holder: string,
    serial: string,
    reason: RevocationReasonName,
    detail: string,
    context: EventContext,
  ): Promise<boolean> {
    const { stored, state } = await this.decideOnHolder(
      holder,
      (current) => decideRevoke(current, serial, reason, detail),
      context,
    );
    if (stored.length === 0) return false;
    await this.revoked(holder, stored, state);
    return true;
  }

  /** After revocations: a new CRL, and the agent is told (so it can ask for a new certificate). */
  private async revoked(holder: string, stored: StoredEvent[], state: HolderState): Promise<void> {
    this.crl.invalidate();
    await this.crl
      .rebuild()
      .catch((error: unknown) => this.logger.error('could not sign the CRL', { error }));
    for (const event of stored) {
      const data = (event as Extract<DomainEvent, { type: 'CertificateRevoked' }>).data;
      this.logger.info('certificate revoked', { holder, serial: data.serial, reason: data.reason });
      const agentId = state.certificates.get(data.serial)?.agentId;
      if (agentId) await this.channel.revoked(agentId, data);
    }
  }

  /**
   * AgentDeregistered: every still-valid certificate of the agent is revoked (cessationOfOperation) and
   * the CRL signed again. Idempotent: a redelivery finds them revoked and appends nothing.
   */
  async revokeAgent(agentId: string, causation: { id: string; correlationId: string }): Promise<number> {
    const agent = foldAgentLife((await this.load('agent', agentId)).events);
    if (agent.status !== 'deregistered') return 0;
    const { stored } = await this.decideOnHolder(
      agentId,
      (current) => decideRevokeAll(current, new Date(), 'cessationOfOperation', 'agent deregistered'),
      { actor: CERTIFICATES_ACTOR, correlationId: causation.correlationId, causationId: causation.id },
    );
    if (stored.length > 0) {
      this.crl.invalidate();
      await this.crl.rebuild();
      this.logger.info("deregistered agent's certificates revoked", { agentId, revoked: stored.length });
    }
    return stored.length;
  }

  /**
   * Repair at start: certificates of agents the log shows as deregistered that are still valid (a request
   * that appended its certificate after the deregistration and stopped before its own check).
   */
  async revokeOfDeregistered(deregistered: ReadonlySet<string>): Promise<number> {
    await this.index.refresh();
    const now = new Date();
    const holders = new Set<string>();
    for (const [holder, certificate] of this.index.certificates()) {
      if (
        deregistered.has(holder) &&
        certificate.status !== 'revoked' &&
        Date.parse(certificate.notAfter) > now.getTime()
      )
        holders.add(holder);
    }
    let revoked = 0;
    for (const holder of holders) {
      revoked += await this.revokeAgent(holder, {
        id: `repair-${holder}`,
        correlationId: `repair-${holder}`,
      });
    }
    if (revoked > 0) this.logger.warn('revoked certificates of deregistered agents at start', { revoked });
    return revoked;
  }

  /**
   * The front server's bundle (proxy-sync uploads it to HAProxy): issued when missing, renewed inside the
   * renewal window, and whatever certificate it holds is recorded in the log as the `_front` holder's
   * (issued or renewed, installed at once, the previous one superseded).
   */
  async ensureFront(): Promise<IssuedData | undefined> {
    const path = this.options.frontCertificateFile;
    if (!path) return undefined;
    const { ca, settings } = this.authority;
    const result = await ensureFrontCertificate(ca, {
      domain: settings.domain,
      path,
      validitySeconds: settings.certValiditySeconds,
      renewBeforeSeconds: settings.renewBeforeSeconds,
    });
    const issued = result.issued
      ? issuedData(result.issued, null)
      : describeCertificate(await readFile(path, 'utf8'), ca, null);
    // Caused by the front's check at start or renewal time, named by the certificate it found or made.
    const { stored } = await this.decideOnHolder(FRONT_HOLDER, (state) => decideRecordFront(state, issued), {
      actor: CERTIFICATES_ACTOR,
      correlationId: `front-${issued.serial}`,
      causationId: `front-${result.action}-${issued.serial}`,
    });
    if (result.action !== 'kept' || stored.length > 0) {
      this.logger.info('front certificate', {
        action: result.action,
        reason: result.reason,
        path,
        serial: issued.serial,
        notAfter: issued.notAfter,
        recorded: stored.length > 0,
      });
    }
    return issued;
  }
}
