import type { Permissions } from '@nats-io/jwt';
import {
  AGENTS_STREAM,
  allAgentDatabaseAnswers,
  aggregateTypeSubjects,
  EVENTS_STREAM,
  PROXY_STREAMS_SUBJECT,
  type AggregateType,
} from '#contracts';

/**
 * Least privilege on the broker: each process of the front connects as a user of the services' account
 * with the subjects and JetStream API calls it needs, and nothing else. Nobody that runs may edit, purge
 * or delete a stream; that takes the installation-admin user, which nothing runs with.
 *
 * Notes on the lists:
 * - Every process reads replies on `_INBOX.>` (requests, JetStream answers, pulled messages).
 * - A responder answers through `resp` (allow_responses): only to the reply subject of a request it got,
 *   once, so answering needs no publish right of its own.
 * - The @nats-io v3 client against nats-server 2.9 creates consumers on
 *   `$JS.API.CONSUMER.CREATE.<stream>[.<name>[.<filter>]]` (never `DURABLE.CREATE`).
 */

/** The users `cli init` makes a credential for (`nats/<user>.creds`). */
export const SERVICE_USERS = [
  'registration',
  'projector',
  'routing',
  'certificates',
  'api',
  'proxy-sync',
  'deployments',
  /** The CLI's commands that change things (admin tokens, quarantine, rebuilds). */
  'cli',
  /** The CLI's read-only commands (tail and show the log, projection status). */
  'cli-read',
] as const;
export type ServiceUser = (typeof SERVICE_USERS)[number];

/** The bucket proxy-sync keeps each node's liveness in (proxy-sync's CL_PROXY_KV_BUCKET default). */
export const PROXY_NODES_BUCKET = 'proxy-nodes';
/** The bucket the certificates service publishes the CA's current CRL in (key `current`). */
export const CRL_BUCKET = 'crl';
/** The bucket the deployments service keeps the leases of claimed deployments in (renewals, not events). */
export const DEPLOYMENT_LEASES_BUCKET = 'deployment-leases';
/**
 * The object store bucket of uploaded sources (tarballs), written by the API as it receives them and
 * read by the deployments service (the check before accepting) and the API (the agent's download).
 */
export const DEPLOYMENT_UPLOADS_BUCKET = 'deployment-uploads';
/** The stream of deployments' output, relayed from agents after checks and redaction. */
export const LOGS_STREAM_NAME = 'LOGS';
/** The bucket registration keeps each agent's last heartbeat in (samples, not events). */
export const AGENT_HEARTBEATS_BUCKET = 'agent-heartbeats';

/** What no running process may do: change, empty or remove a stream, or restore one over it. */
export const STREAM_ADMIN_SUBJECTS = [
  '$JS.API.STREAM.UPDATE.>',
  '$JS.API.STREAM.DELETE.>',
  '$JS.API.STREAM.PURGE.>',
  '$JS.API.STREAM.MSG.DELETE.>',
  '$JS.API.STREAM.SNAPSHOT.>',
  '$JS.API.STREAM.RESTORE.>',
  '$JS.API.STREAM.PEER.REMOVE.>',
  '$JS.API.ACCOUNT.PURGE.>',
  '$JS.API.SERVER.>',
];

const INBOX = '_INBOX.>';
/** Answers to requests received; two minutes covers the slowest command (a dead-letter retry). */
const RESPONSES = { max: 1, ttl: 120_000_000_000 };

const events = (...types: AggregateType[]) => types.map((type) => aggregateTypeSubjects(type));

/** Reading the log: aggregates (message get), and whole or filtered reads (ordered and probe consumers). */
const READ_LOG = [
  '$JS.API.INFO',
  `$JS.API.STREAM.INFO.${EVENTS_STREAM}`,
  `$JS.API.STREAM.MSG.GET.${EVENTS_STREAM}`,
  `$JS.API.CONSUMER.CREATE.${EVENTS_STREAM}`,
  `$JS.API.CONSUMER.CREATE.${EVENTS_STREAM}.*`,
  `$JS.API.CONSUMER.CREATE.${EVENTS_STREAM}.*.>`,
  `$JS.API.CONSUMER.INFO.${EVENTS_STREAM}.*`,
  `$JS.API.CONSUMER.MSG.NEXT.${EVENTS_STREAM}.*`,
  `$JS.API.CONSUMER.DELETE.${EVENTS_STREAM}.*`,
];
/** A service that starts on an empty broker creates the log (never changes it). */
const CREATE_LOG = [`$JS.API.STREAM.CREATE.${EVENTS_STREAM}`];
/** A durable consumer of the log: its acknowledgements, and retries of its dead letters on request. */
const durable = (name: string) => ({
  pub: [`$JS.ACK.${EVENTS_STREAM}.${name}.>`],
  sub: [`cmd.dead-letters.retry.${name}`],
});
const KV = `KV_${PROXY_NODES_BUCKET}`;
const HEARTBEATS_KV = `KV_${AGENT_HEARTBEATS_BUCKET}`;
const CRL_KV = `KV_${CRL_BUCKET}`;
const LEASES_KV = `KV_${DEPLOYMENT_LEASES_BUCKET}`;
const UPLOADS_OBJ = `OBJ_${DEPLOYMENT_UPLOADS_BUCKET}`;
/** An upload's record (its size and digest), read by its subject: no consumer. */
const READ_UPLOAD_INFO = [
  `$JS.API.STREAM.INFO.${UPLOADS_OBJ}`,
  `$JS.API.STREAM.MSG.GET.${UPLOADS_OBJ}`,
  `$JS.API.DIRECT.GET.${UPLOADS_OBJ}.>`,
];
/** Reading the logs stream: ordered consumers filtered to one deployment. */
const READ_LOGS = [
  `$JS.API.STREAM.INFO.${LOGS_STREAM_NAME}`,
  `$JS.API.STREAM.MSG.GET.${LOGS_STREAM_NAME}`,
  `$JS.API.CONSUMER.CREATE.${LOGS_STREAM_NAME}.*.>`,
  `$JS.API.CONSUMER.INFO.${LOGS_STREAM_NAME}.*`,
  `$JS.API.CONSUMER.MSG.NEXT.${LOGS_STREAM_NAME}.*`,
  `$JS.API.CONSUMER.DELETE.${LOGS_STREAM_NAME}.*`,
  `$JS.FC.${LOGS_STREAM_NAME}.>`,
];
/** Watching a bucket: its stream's info and an ordered push consumer (the watcher), with flow control. */
const watchBucket = (stream: string) => [
  `$JS.API.STREAM.INFO.${stream}`,
  `$JS.API.STREAM.MSG.GET.${stream}`,
  `$JS.API.DIRECT.GET.${stream}.>`,
  `$JS.API.CONSUMER.CREATE.${stream}.*.>`,
  `$JS.API.CONSUMER.INFO.${stream}.*`,
  `$JS.API.CONSUMER.DELETE.${stream}.*`,
  `$JS.FC.${stream}.>`,
];

interface Lists {
  pub: string[];
  sub: string[];
  responds?: boolean;
}

function lists(user: ServiceUser): Lists {
  switch (user) {
    case 'registration':
      return {
        pub: [
          ...events('agent', 'enrollment-token', 'address'),
          ...READ_LOG,
          ...CREATE_LOG,
          `$JS.API.STREAM.INFO.${AGENTS_STREAM}`,
          `$JS.API.STREAM.CREATE.${AGENTS_STREAM}`,
          `$JS.API.CONSUMER.INFO.${AGENTS_STREAM}.*`,
          `$JS.API.CONSUMER.CREATE.${AGENTS_STREAM}.*.>`,
          `$JS.API.CONSUMER.DELETE.${AGENTS_STREAM}.*`,
          `$KV.${AGENT_HEARTBEATS_BUCKET}.*`,
          `$JS.API.STREAM.INFO.${HEARTBEATS_KV}`,
          `$JS.API.STREAM.CREATE.${HEARTBEATS_KV}`,
        ],
        sub: ['cmd.registration.*', 'agents.*.out.heartbeat'],
        responds: true,
      };
    case 'projector':
      return {
        pub: [...events('quarantine', 'dead-letter'), ...READ_LOG, ...CREATE_LOG],
        sub: ['cmd.projector.*'],
        responds: true,
      };
    case 'routing': {
      const consumer = durable('routing');
      return {
        pub: [
          ...events('route', 'hostname', 'proxy-node'),
          ...READ_LOG,
          ...CREATE_LOG,
          ...consumer.pub,
          // The proxy nodes' liveness records: a node that stops writing is recorded stale.
          ...watchBucket(KV),
        ],
        sub: ['cmd.routing.*', 'agents.*.out.req.routes.*', ...consumer.sub],
        responds: true,
      };
    }
    case 'certificates': {
      const consumer = durable('certificates');
      return {
        pub: [
          ...events('certificate', 'ca'),
          // Notices to agents go through the AGENTS stream (renew, delivered, revoked).
          'agents.*.in.certificates.*',
          // The current CRL, for the fronts' HAProxy.
          `$KV.${CRL_BUCKET}.*`,
          `$JS.API.STREAM.INFO.${CRL_KV}`,
          `$JS.API.STREAM.CREATE.${CRL_KV}`,
          ...READ_LOG,
          ...CREATE_LOG,
          ...consumer.pub,
        ],
        sub: ['cmd.certificates.*', 'agents.*.out.req.certificates.*', ...consumer.sub],
        responds: true,
      };
    }
    case 'deployments': {
      const deployments = durable('deployments');
      const agents = durable('deployments-agents');
      return {
        pub: [
          ...events('app', 'deployment'),
          ...READ_LOG,
          ...CREATE_LOG,
          ...deployments.pub,
          ...agents.pub,
          // Pokes to agents (assigned, changed) go through the AGENTS stream.
          'agents.*.in.deployments.*',
          `$KV.${DEPLOYMENT_LEASES_BUCKET}.*`,
          `$JS.API.STREAM.INFO.${LEASES_KV}`,
          `$JS.API.STREAM.CREATE.${LEASES_KV}`,
          `$JS.API.STREAM.MSG.GET.${LEASES_KV}`,
          `$JS.API.DIRECT.GET.${LEASES_KV}.>`,
          // The relayed logs: published after the checks, into a stream this service provisions.
          'logs.*',
          `$JS.API.STREAM.INFO.${LOGS_STREAM_NAME}`,
          `$JS.API.STREAM.CREATE.${LOGS_STREAM_NAME}`,
          // An upload is checked (size and digest) before a deployment of it is accepted.
          ...READ_UPLOAD_INFO,
          // A drain asks every front for the streams in flight to the old release (the proxy nodes'
          // records say which fronts to wait for).
          PROXY_STREAMS_SUBJECT,
          ...watchBucket(KV),
          // The agents' last heartbeats: which runtimes each reports (an app must use one of them).
          ...watchBucket(HEARTBEATS_KV),
        ],
        sub: [
          'cmd.deployments.*',
          'agents.*.out.req.deployments.*',
          'agents.*.out.logs.*',
          // Agents' answers to admins' requests about their databases (credentials sealed, passed on unread).
          allAgentDatabaseAnswers,
          ...deployments.sub,
          ...agents.sub,
        ],
        responds: true,
      };
    }
    case 'api':
      return {
        pub: [
          'cmd.registration.*',
          'cmd.deployments.*',
          ...READ_LOGS,
          'cmd.routing.*',
          'cmd.certificates.*',
          'cmd.projector.*',
          'cmd.dead-letters.retry.*',
          ...READ_LOG,
          // The proxy nodes' records and the agents' last heartbeats: keys, gets and watches.
          ...watchBucket(KV),
          ...watchBucket(HEARTBEATS_KV),
          // Uploaded sources: the API provisions the bucket, writes each tarball's chunks and record, and
          // reads them back for the deployment's agent chunk by chunk (direct gets by subject, at the
          // client's pace). Never a purge: an upload that is not used expires with the max age.
          `$O.${DEPLOYMENT_UPLOADS_BUCKET}.C.*`,
          `$O.${DEPLOYMENT_UPLOADS_BUCKET}.M.*`,
          `$JS.API.STREAM.CREATE.${UPLOADS_OBJ}`,
          `$JS.API.DIRECT.GET.${UPLOADS_OBJ}`,
          ...READ_UPLOAD_INFO,
        ],
        sub: [],
      };
    case 'proxy-sync':
      return {
        pub: [
          ...events('route', 'proxy-node'),
          ...READ_LOG,
          ...CREATE_LOG,
          `$KV.${PROXY_NODES_BUCKET}.*`,
          `$JS.API.STREAM.INFO.${KV}`,
          `$JS.API.STREAM.CREATE.${KV}`,
          `$JS.API.STREAM.MSG.GET.${KV}`,
          `$JS.API.DIRECT.GET.${KV}.>`,
          // The CA's current CRL, which HAProxy checks targets against.
          ...watchBucket(CRL_KV),
        ],
        // Answers how many streams its HAProxy has in flight to a target (a deployment's drain asks).
        sub: [PROXY_STREAMS_SUBJECT],
        responds: true,
      };
    case 'cli':
      return {
        pub: [...events('admin'), 'cmd.projector.*', 'cmd.dead-letters.retry.*', ...READ_LOG],
        sub: [],
      };
    case 'cli-read':
      return {
        pub: [
          'cmd.projector.status',
          'cmd.projector.schemas',
          'cmd.projector.rebuilds',
          'cmd.projector.rebuild-status',
          ...READ_LOG,
        ],
        sub: [],
      };
  }
}

export function servicePermissions(user: ServiceUser): Permissions {
  const { pub, sub, responds } = lists(user);
  return {
    pub: { allow: pub, deny: STREAM_ADMIN_SUBJECTS },
    sub: { allow: [INBOX, ...sub], deny: [] },
    ...(responds ? { resp: RESPONSES } : {}),
  };
}
