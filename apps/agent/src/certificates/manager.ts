import { join } from 'node:path';
import {
  CERTIFICATE_TOPICS,
  renewalRequestMessage,
  revokedNoticeMessage,
  type CertificateNamesResult,
  type ConfirmCertificateResult,
  type IssueCertificateResult,
  type IssuedCertificateView,
} from '#contracts';
import {
  certificateMatchesKey,
  createCsr,
  generateRsaKeyPair,
  inspectCertificate,
  isIssuedBy,
  renewalDue,
} from '#pki-client';
import type { Logger } from '#platform';
import type { AgentCertificatesConfig } from '../config.js';
import {
  AgentRequestError,
  type AgentContext,
  type AgentExtension,
  type HandlerRegistry,
  type InboundMessage,
} from '../handlers.js';
import { runHook } from './hook.js';
import { TlsProbe } from './probe.js';
import { CertificateStore, type InstalledPair, type LivePaths, type PendingRequest } from './store.js';

const sameNames = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && [...a].sort().join('\n') === [...b].sort().join('\n');

/**
 * The agent's side of the CloudLunacy CA. The key pair is generated here and never sent: only a CSR
 * leaves (`agents.<id>.out.req.certificates.request`). What the CA signs is checked (its key is ours, the
 * CA is the pinned one, the names are the ones asked for), installed atomically (a new release directory,
 * then one rename of the `live` link), the hook runs, and the installation is confirmed
 * (`certificates.confirm`); only then is the previous pair deleted. Renewal requests, deliveries and
 * revocation notices arrive through the agent's durable consumer; every step is idempotent, so a
 * redelivered message or a restart in the middle finishes the work instead of repeating it.
 */
export class CertificateManager implements AgentExtension {
  readonly store: CertificateStore;
  private context?: AgentContext;
  private queue: Promise<unknown> = Promise.resolve();
  private timer?: NodeJS.Timeout;
  private failures = 0;
  private stopping = false;
  private readonly probe?: TlsProbe;
  private readonly nameSources: (() => string[])[] = [];
  private readonly installListeners: (() => Promise<void>)[] = [];

  constructor(
    private readonly config: AgentCertificatesConfig,
    stateDir: string,
    private readonly agentId: () => string,
    private readonly logger: Logger,
  ) {
    this.store = new CertificateStore(config.dir ?? join(stateDir, 'certificates'));
    if (config.probe) this.probe = new TlsProbe(config.probe, agentId, logger);
  }

  /** The handlers for what the certificates service sends this agent. */
  register(registry: HandlerRegistry): this {
    registry.register(CERTIFICATE_TOPICS.renew, (message, context) => this.onRenew(message, context));
    registry.register(CERTIFICATE_TOPICS.delivered, (message, context) => this.onDelivered(message, context));
    registry.register(CERTIFICATE_TOPICS.revoked, (message, context) => this.onRevoked(message, context));
    return this;
  }

  connected(context: AgentContext): void {
    this.context = context;
    this.schedule(0);
  }

  /** More names the certificate should carry, once this agent holds their routes (its databases'). */
  addNames(source: () => string[]): void {
    this.nameSources.push(source);
  }

  /** Called after each install, before the confirmation (a local server loads the new pair). */
  onInstalled(listener: () => Promise<void>): void {
    this.installListeners.push(listener);
  }

  /** The files of the pair in use, or null when there is none yet (or certificates are off). */
  async livePaths(): Promise<LivePaths | null> {
    if (!this.config.enabled) return null;
    return (await this.store.current()) ? this.store.live : null;
  }

  /** The names of the pair in use (none without one). */
  async currentNames(): Promise<string[]> {
    return (await this.store.current())?.info.names ?? [];
  }

  /** Checks now (a name was routed to this agent): resolves when the certificate is what it should be. */
  refresh(): Promise<void> {
    return this.exclusive(() => this.check());
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.timer);
    await this.queue.catch(() => undefined);
    await this.probe?.close();
  }

  /** Runs certificate work one piece at a time (startup check, renewals, deliveries never interleave). */
  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(work, work);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private schedule(delayMs: number): void {
    if (this.stopping) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      void this.exclusive(() => this.check()).then(
        () => {
          this.failures = 0;
          this.schedule(this.config.checkIntervalMs);
        },
        (error: unknown) => {
          this.failures++;
          const wait = Math.min(this.config.checkIntervalMs, 250 * 2 ** Math.min(this.failures, 12));
          this.logger.warn('certificate check failed; trying again', {
            error: describe(error),
            retryInMs: wait,
          });
          this.schedule(wait);
        },
      );
    }, delayMs);
  }

  private request<T>(command: string, body: unknown): Promise<T> {
    if (!this.context) throw new Error('not connected');
    return this.context.request<T>(`certificates.${command}`, body, this.config.requestTimeoutMs);
  }

  /**
   * Level-triggered: finishes a request in flight, obtains a certificate when there is none, replaces one
   * whose names are not the wanted ones, that expired, or (with renewBeforeSeconds) that is due, confirms an
   * unconfirmed install, and serves the current pair on the probe.
   */
  async check(): Promise<void> {
    if (!this.config.enabled) return;
    await this.store.init();
    const pending = await this.store.pending();
    if (pending) {
      await this.resume(pending);
      return;
    }
    const current = await this.store.current();
    const wanted = await this.wantedNames(current);
    if (!current) {
      await this.obtain(wanted, null, 'there is no certificate yet');
      return;
    }
    if (!sameNames(current.info.names, wanted)) {
      await this.obtain(wanted, current.serial, `the names change to ${wanted.join(', ')}`);
      return;
    }
    if (Date.parse(current.info.notAfter) <= Date.now()) {
      await this.obtain(wanted, current.serial, 'the certificate expired');
      return;
    }
    if (
      this.config.renewBeforeSeconds !== undefined &&
      renewalDue(current.info.notAfter, this.config.renewBeforeSeconds) &&
      // A certificate that already ends with its CA cannot be outlived by a new one: no churn.
      Date.parse(current.info.notAfter) + 1000 < Date.parse(inspectCertificate(current.chainPem).notAfter)
    ) {
      await this.obtain(wanted, current.serial, 'the certificate is due for renewal');
      return;
    }
    const state = await this.store.state();
    if (state.confirmed !== current.serial) await this.confirm(current);
    await this.probe?.serve(current);
  }

  /** `<agentId>.mongodb.<domain>` and the configured route host names this agent holds now. */
  private async wantedNames(current: InstalledPair | undefined): Promise<string[]> {
    const prefix = `${this.agentId()}.mongodb.`;
    const known = current?.info.names.find((name) => name.startsWith(prefix));
    const extra = this.nameSources
      .flatMap((source) => source())
      .filter((name) => !this.config.names.includes(name));
    if (known && this.config.names.length === 0 && extra.length === 0) return [known];
    const names = await this.request<CertificateNamesResult>('names', {});
    const held = new Set(names.hostnames);
    const missing = this.config.names.filter((name) => !held.has(name));
    if (missing.length > 0) {
      this.logger.warn('configured names are not routed to this agent (yet); left out of the certificate', {
        names: missing,
      });
    }
    // A database's name before its first switch is not routed yet: it joins when it is.
    const wanted = [...this.config.names, ...extra].filter(
      (name) => held.has(name) && name !== names.databaseHostname,
    );
    return [names.databaseHostname, ...new Set(wanted)];
  }

  /** A new key pair (kept in pending.json until its certificate is installed), then the request. */
  private async obtain(names: string[], replaces: string | null, why: string): Promise<void> {
    this.logger.info('requesting a certificate', { names, replaces, why });
    const key = await generateRsaKeyPair(this.config.keyBits);
    const pending: PendingRequest = {
      keyPem: key.privateKeyPem,
      names,
      replaces,
      createdAt: new Date().toISOString(),
    };
    await this.store.savePending(pending);
    await this.resume(pending);
  }

  /** Sends the CSR of a pending key (again: the service answers a retry with the same certificate). */
  private async resume(pending: PendingRequest): Promise<void> {
    const csr = createCsr({ privateKey: pending.keyPem, names: pending.names });
    let result: IssueCertificateResult;
    try {
      result = await this.request<IssueCertificateResult>('request', {
        csr,
        ...(pending.replaces ? { replaces: pending.replaces } : {}),
      });
    } catch (error) {
      if (error instanceof AgentRequestError) {
        if (error.body.field === 'replaces' && pending.replaces) {
          // The certificate to replace was revoked or replaced meanwhile: ask for a new one instead.
          const fresh = { ...pending, replaces: null };
          await this.store.savePending(fresh);
          return this.resume(fresh);
        }
        if (error.body.error !== 'unavailable' && error.body.error !== 'timeout') {
          // Refused for good (a name not ours, a revoked key, …): this key is not used again.
          await this.store.clearPending();
        }
      }
      throw error;
    }
    await this.install(result.certificate, pending);
  }

  /** Checks, installs, runs the hook, confirms; the previous pair is deleted only after the confirmation. */
  private async install(certificate: IssuedCertificateView, pending: PendingRequest): Promise<void> {
    await this.verify(certificate, pending);
    const previous = await this.store.current();
    await this.store.install({
      serial: certificate.serial,
      keyPem: pending.keyPem,
      certificatePem: certificate.certificatePem,
      chainPem: certificate.chainPem,
    });
    await this.store.clearPending();
    const installed = await this.store.current();
    if (!installed || installed.serial !== certificate.serial)
      throw new Error('the installed certificate cannot be read back');
    await this.probe?.serve(installed);
    const hook = this.config.hook
      ? await runHook(this.config.hook.command, this.hookEnv(certificate.serial), this.config.hook.timeoutMs)
      : undefined;
    if (hook?.status === 'failed') {
      this.logger.warn('the certificate hook failed', {
        serial: certificate.serial,
        detail: hook.detail,
        output: hook.output,
      });
    }
    const lastHook = {
      serial: certificate.serial,
      status: hook?.status ?? ('none' as const),
      ...(hook?.detail ? { detail: hook.detail } : {}),
    };
    await this.store.saveState({ ...(await this.store.state()), lastHook });
    for (const listener of this.installListeners)
      await listener().catch((error: unknown) =>
        this.logger.warn('a local server could not load the new certificate', { error: describe(error) }),
      );
    this.logger.info('certificate installed', {
      serial: certificate.serial,
      names: certificate.names,
      notAfter: certificate.notAfter,
      replaces: previous?.serial ?? null,
      hook: lastHook.status,
    });
    await this.confirm(installed);
  }

  private hookEnv(serial: string): Record<string, string> {
    const live = this.store.live;
    return {
      CL_CERT_SERIAL: serial,
      CL_CERT_DIR: live.dir,
      CL_CERT_KEY_FILE: live.key,
      CL_CERT_FILE: live.certificate,
      CL_CERT_CHAIN_FILE: live.chain,
      CL_CERT_FULLCHAIN_FILE: live.fullchain,
      CL_CERT_BUNDLE_FILE: live.bundle,
    };
  }

  /** Tells the service the pair is installed; then the releases of older pairs are removed. */
  private async confirm(pair: InstalledPair): Promise<void> {
    const state = await this.store.state();
    const hook =
      state.lastHook?.serial === pair.serial
        ? {
            status: state.lastHook.status,
            ...(state.lastHook.detail ? { detail: state.lastHook.detail } : {}),
          }
        : { status: 'none' as const };
    const result = await this.request<ConfirmCertificateResult>('confirm', { serial: pair.serial, hook });
    await this.store.saveState({ ...state, confirmed: pair.serial });
    const removed = await this.store.removeOtherReleases(pair.serial);
    this.logger.info('certificate confirmed', { serial: pair.serial, changed: result.changed, removed });
  }

  /** What the CA sent must certify our pending key, under the pinned CA, for exactly the names asked for. */
  private async verify(certificate: IssuedCertificateView, pending: PendingRequest): Promise<void> {
    if (!certificateMatchesKey(certificate.certificatePem, pending.keyPem))
      throw new Error(`certificate ${certificate.serial} is not for the key this agent holds`);
    const chain = inspectCertificate(certificate.chainPem);
    const pinnedPem = await this.store.pinnedCa();
    const pinned =
      this.config.caFingerprint ?? (pinnedPem ? inspectCertificate(pinnedPem).fingerprint : undefined);
    if (pinned !== undefined && chain.fingerprint !== pinned)
      throw new Error(
        `certificate ${certificate.serial} comes from CA ${chain.fingerprint}, not the trusted CA ${pinned}`,
      );
    if (!chain.isCa || !isIssuedBy(certificate.certificatePem, certificate.chainPem))
      throw new Error(`certificate ${certificate.serial} is not signed by its CA`);
    const info = inspectCertificate(certificate.certificatePem);
    if (!sameNames(info.names, pending.names))
      throw new Error(
        `certificate ${certificate.serial} names ${info.names.join(', ')}, not ${pending.names.join(', ')}`,
      );
    if (Date.parse(info.notAfter) <= Date.now())
      throw new Error(`certificate ${certificate.serial} has expired`);
    if (!pinnedPem) await this.store.pinCa(certificate.chainPem);
  }

  // ------------------------------------------------------------------------------------------------
  // Messages from the certificates service (acked once handled; a thrown error brings them again)

  private onRenew(message: InboundMessage, context: AgentContext): Promise<void> {
    this.context ??= context;
    const request = renewalRequestMessage.safeParse(message.json);
    if (!request.success) {
      this.logger.warn('malformed renewal request ignored', { sequence: message.sequence });
      return Promise.resolve();
    }
    const { serial } = request.data;
    return this.exclusive(async () => {
      if (!this.config.enabled) return;
      await this.store.init();
      const pending = await this.store.pending();
      if (pending?.replaces === serial) return this.resume(pending);
      const current = await this.store.current();
      if (current?.serial !== serial) {
        this.logger.info('renewal request for a certificate no longer in use; nothing to do', { serial });
        return;
      }
      await this.obtain(current.info.names, serial, 'the certificates service asked for a renewal');
    });
  }

  private onDelivered(message: InboundMessage, context: AgentContext): Promise<void> {
    this.context ??= context;
    const certificate = (message.json as { certificate?: IssuedCertificateView } | undefined)?.certificate;
    if (
      typeof certificate?.serial !== 'string' ||
      typeof certificate.certificatePem !== 'string' ||
      typeof certificate.chainPem !== 'string'
    ) {
      this.logger.warn('malformed certificate delivery ignored', { sequence: message.sequence });
      return Promise.resolve();
    }
    return this.exclusive(async () => {
      if (!this.config.enabled) return;
      await this.store.init();
      const current = await this.store.current();
      if (current?.serial === certificate.serial) {
        if ((await this.store.state()).confirmed !== current.serial) await this.confirm(current);
        return;
      }
      const pending = await this.store.pending();
      if (pending && certificateMatchesKey(certificate.certificatePem, pending.keyPem)) {
        await this.install(certificate, pending);
        return;
      }
      this.logger.info('delivered certificate is not for a key this agent holds; ignored', {
        serial: certificate.serial,
      });
    });
  }

  private onRevoked(message: InboundMessage, context: AgentContext): Promise<void> {
    this.context ??= context;
    const notice = revokedNoticeMessage.safeParse(message.json);
    if (!notice.success) return Promise.resolve();
    return this.exclusive(async () => {
      if (!this.config.enabled) return;
      const current = await this.store.current();
      if (current?.serial !== notice.data.serial) return;
      this.logger.warn('the certificate in use was revoked; requesting a new one', notice.data);
      if (await this.store.pending()) return;
      await this.obtain(current.info.names, null, `certificate ${notice.data.serial} was revoked`);
    });
  }
}

function describe(error: unknown): unknown {
  return error instanceof AgentRequestError ? { ...error.body } : error;
}
