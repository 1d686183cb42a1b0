import { z } from 'zod';
import { commandSubject } from './commands.js';
import { dnsLabel, isoTimestamp, label } from './fields.js';
import {
  CERTIFICATE_STATUSES,
  certificateName,
  certificateSerial,
  HOOK_STATUSES,
  revocationReason,
  type CertificateStatus,
  type HookStatus,
  type RevocationReasonName,
} from './events/certificate.js';
import { agentSubjects } from './subjects.js';

/**
 * The certificates service's commands (NATS request/reply from the API), the requests agents publish on
 * their own prefix, what the service sends agents through their durable consumer, and the shapes clients
 * see. The service validates every payload again.
 */
export const CERTIFICATES_SERVICE = 'certificates';
export const certificateCommands = {
  /** Sign a CSR for an agent (issue, or renew with `replaces`). */
  issue: commandSubject(CERTIFICATES_SERVICE, 'issue'),
  /** Revoke one certificate (admin). */
  revoke: commandSubject(CERTIFICATES_SERVICE, 'revoke'),
  /** The CA certificate (public). */
  ca: commandSubject(CERTIFICATES_SERVICE, 'ca'),
  /** The current CRL (public). */
  crl: commandSubject(CERTIFICATES_SERVICE, 'crl'),
} as const;

/** Largest CSR accepted, in characters (the PKI library's own limit is the same). */
export const CSR_MAX_CHARACTERS = 16 * 1024;

/** A CSR as clients send it; its content is checked by the CA (400 naming `csr`). */
export const csrInput = z
  .string({ error: 'must be a PEM certificate request (a string)' })
  .min(1, 'must be a PEM certificate request')
  .max(CSR_MAX_CHARACTERS, `must be at most ${CSR_MAX_CHARACTERS} characters`);

/** `POST /api/v1/agents/{id}/certificates` and the agents' `certificates.request`. */
export const requestCertificateBody = z.strictObject({
  csr: csrInput,
  /** The serial of the holder's certificate this one replaces (a renewal, or new names). */
  replaces: certificateSerial.optional(),
});
export type RequestCertificateBody = z.output<typeof requestCertificateBody>;

export const issueCertificatePayload = z.strictObject({ agentId: dnsLabel, ...requestCertificateBody.shape });
export type IssueCertificatePayload = z.output<typeof issueCertificatePayload>;

/** The agents' `certificates.confirm`: the certificate is installed, and what the hook did. */
export const confirmCertificateBody = z.strictObject({
  serial: certificateSerial,
  hook: z
    .strictObject({
      status: z.enum(HOOK_STATUSES, { error: `must be one of ${HOOK_STATUSES.join(', ')}` }),
      detail: label(500).optional(),
    })
    .default({ status: 'none' }),
});
export type ConfirmCertificateBody = z.output<typeof confirmCertificateBody>;

/** `POST /api/v1/certificates/{serial}/revoke` (admin). */
export const revokeCertificateBody = z.strictObject({
  reason: revocationReason.optional(),
  detail: label(200).optional(),
});
export const revokeCertificatePayload = z.strictObject({
  serial: certificateSerial,
  ...revokeCertificateBody.shape,
});
export type RevokeCertificatePayload = z.output<typeof revokeCertificatePayload>;

/** What an agent may ask on `agents.<id>.out.req.certificates.<command>`. */
export const AGENT_CERTIFICATE_COMMANDS = ['request', 'confirm', 'names'] as const;
export type AgentCertificateCommand = (typeof AGENT_CERTIFICATE_COMMANDS)[number];

export function agentCertificateSubject(agentId: string, command: AgentCertificateCommand): string {
  return agentSubjects.request(agentId, `certificates.${command}`);
}

/** What the certificates service subscribes to (queue group `certificates`). */
export const allAgentCertificateRequests = agentSubjects.allOutbound('req.certificates.*');

/** Topics the service publishes to an agent (`agents.<id>.in.<topic>`, through its durable consumer). */
export const CERTIFICATE_TOPICS = {
  /** Please send a CSR for a new key: this certificate is inside its renewal window. */
  renew: 'certificates.renew',
  /** A certificate the CA signed for this agent (also in the reply to its request). */
  delivered: 'certificates.delivered',
  /** One of the agent's certificates was revoked. */
  revoked: 'certificates.revoked',
} as const;

/** The certificate itself, as delivered to its holder and answered to a request. */
export interface IssuedCertificateView {
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
  replaces: string | null;
}

export const renewalRequestMessage = z.strictObject({
  serial: certificateSerial,
  names: z.array(certificateName).min(1).max(100),
  notAfter: isoTimestamp,
  requestedAt: isoTimestamp,
});
export type RenewalRequestMessage = z.output<typeof renewalRequestMessage>;

export const revokedNoticeMessage = z.strictObject({
  serial: certificateSerial,
  reason: revocationReason,
  detail: label(200),
});
export type RevokedNoticeMessage = z.output<typeof revokedNoticeMessage>;

export interface DeliveryMessage {
  certificate: IssuedCertificateView;
}

export interface IssueCertificateResult {
  /** `existing`: the same key pair and names were certified before; that certificate is returned. */
  outcome: 'issued' | 'renewed' | 'existing';
  certificate: IssuedCertificateView;
}

export interface ConfirmCertificateResult {
  serial: string;
  status: 'installed';
  /** False when it was confirmed before (a retried confirmation). */
  changed: boolean;
  /** Serials no longer in use because this one replaced them. */
  superseded: string[];
}

export interface CertificateNamesResult {
  /** `<agentId>.mongodb.<domain>`: always the agent's. */
  databaseHostname: string;
  /** Host names of the agent's routes (as the hostnames projection shows them now). */
  hostnames: string[];
}

/** Statuses as clients see them: the stored ones, and `expired` for an unrevoked one past notAfter. */
export const CERTIFICATE_VIEW_STATUSES = [...CERTIFICATE_STATUSES, 'expired'] as const;
export type CertificateViewStatus = (typeof CERTIFICATE_VIEW_STATUSES)[number];

/** A certificate as the API and the dashboard see it (the certificates projection). */
export interface CertificateView {
  serial: string;
  /** An agent id, or `_front` for the front server's certificate. */
  holder: string;
  agentId: string | null;
  names: string[];
  notBefore: string;
  notAfter: string;
  fingerprint: string;
  publicKeyFingerprint: string;
  issuerFingerprint: string;
  status: CertificateViewStatus;
  /** The stored status even when expired. */
  lifecycle: CertificateStatus;
  replaces: string | null;
  supersededBy: string | null;
  issuedAt: string;
  installedAt: string | null;
  hook: { status: HookStatus; detail: string | null } | null;
  revokedAt: string | null;
  revocationReason: RevocationReasonName | null;
  revocationDetail: string | null;
  /** Present on single reads; lists leave it out. */
  certificatePem?: string;
}

export interface CertificateListResult {
  certificates: CertificateView[];
  total: number;
}

/** Filters of `GET /api/v1/certificates` and `GET /api/v1/agents/{id}/certificates`. */
export const listCertificatesQuery = z.strictObject({
  agentId: dnsLabel.optional(),
  /** `front` lists the front server's certificates. */
  holder: z.union([dnsLabel, z.literal('_front')]).optional(),
  status: z
    .enum(CERTIFICATE_VIEW_STATUSES, { error: `must be one of ${CERTIFICATE_VIEW_STATUSES.join(', ')}` })
    .optional(),
  name: certificateName.optional(),
  limit: z.coerce
    .number({ error: 'must be a number' })
    .int('must be an integer')
    .min(1, 'must be between 1 and 500')
    .max(500, 'must be between 1 and 500')
    .optional(),
  offset: z.coerce
    .number({ error: 'must be a number' })
    .int('must be an integer')
    .min(0, 'must be at least 0')
    .max(1_000_000, 'must be at most 1000000')
    .optional(),
});
export type ListCertificatesQuery = z.output<typeof listCertificatesQuery>;

export interface CaResult {
  fingerprint: string;
  certificatePem: string;
  notAfter: string;
}

export interface CrlResult {
  pem: string;
  crlNumber: string;
  thisUpdate: string;
  nextUpdate: string;
  serials: string[];
}
