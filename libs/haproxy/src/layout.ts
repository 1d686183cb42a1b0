/**
 * The HAProxy layout proxy-sync maintains (docs/proxy-sync.md): three frontends, three "dynamic
 * destination" backends and two fallbacks. Routes are never sections or servers: they are entries of
 * two maps whose value is `<backend>|<ip>|<port>`; the frontends send each request or connection to
 * that address with set-dst/set-dst-port. The objects use the Data Plane API's field names, so they are
 * the bodies of `full_section` writes as they are.
 */
import { assertMapWord } from './routes.js';

export interface Bind {
  name: string;
  address?: string;
  port?: number;
  ssl?: boolean;
  ssl_certificate?: string;
  alpn?: string;
}

export interface Server {
  name: string;
  address: string;
  port?: number;
  ssl?: 'enabled' | 'disabled';
  verify?: 'none' | 'required';
  sni?: string;
  ssl_cafile?: string;
  crl_file?: string;
}

export interface HttpRequestRule {
  type: 'redirect' | 'return' | 'deny' | 'set-var' | 'set-dst' | 'set-dst-port' | 'set-header' | 'track-sc';
  redir_type?: 'location' | 'prefix' | 'scheme';
  redir_value?: string;
  redir_code?: 301 | 302 | 303 | 307 | 308;
  return_status_code?: number;
  return_content_type?: string;
  return_content_format?: 'string';
  return_content?: string;
  deny_status?: number;
  var_scope?: string;
  var_name?: string;
  var_expr?: string;
  expr?: string;
  hdr_name?: string;
  hdr_format?: string;
  track_sc_key?: string;
  track_sc_table?: string;
  track_sc_stick_counter?: number;
  cond?: 'if' | 'unless';
  cond_test?: string;
}

export interface TcpRequestRule {
  type: 'content' | 'inspect-delay';
  action?: 'accept' | 'reject' | 'set-var' | 'set-dst' | 'set-dst-port' | 'track-sc';
  timeout?: number;
  track_key?: string;
  track_table?: string;
  track_stick_counter?: number;
  var_scope?: string;
  var_name?: string;
  expr?: string;
  cond?: 'if' | 'unless';
  cond_test?: string;
}

export interface BackendSwitchingRule {
  name: string;
  cond?: 'if' | 'unless';
  cond_test?: string;
}

/** A frontend with its children, as `GET/PUT …/frontends/{name}?full_section=true` carries it. */
export interface FrontendSection {
  name: string;
  mode: 'http' | 'tcp';
  default_backend?: string;
  binds: Record<string, Bind>;
  http_request_rule_list: HttpRequestRule[];
  tcp_request_rule_list: TcpRequestRule[];
  backend_switching_rule_list: BackendSwitchingRule[];
}

export interface StickTable {
  type: 'string';
  keylen: number;
  size: number;
  /** Milliseconds after its last use. */
  expire: number;
  store: string;
}

/** A backend with its children, as `…/backends/{name}?full_section=true` carries it. */
export interface BackendSection {
  name: string;
  mode: 'http' | 'tcp';
  stick_table?: StickTable;
  servers: Record<string, Server>;
  http_request_rule_list: HttpRequestRule[];
  tcp_request_rule_list: TcpRequestRule[];
}

/** The configuration sections proxy-sync owns. */
export interface Structure {
  frontends: FrontendSection[];
  backends: BackendSection[];
}

export interface Endpoint {
  /** Listening address; absent means every address (`bind :443`). */
  address?: string;
  port: number;
}

/** Where things are on the HAProxy host and which ports it serves. */
export interface ProxyLayout {
  /** The Data Plane API's maps_dir as HAProxy sees it (hosts.map and sni.map live there). */
  mapsDir: string;
  /** The directory HTTPS loads certificates from (the Data Plane API's ssl_certs_dir). */
  certsDir: string;
  /** The CloudLunacy CA certificate on the HAProxy host: TLS-to-target routes are verified against it. */
  caFile: string;
  /**
   * The CA's current CRL on the HAProxy host, once proxy-sync has stored it: TLS-to-target routes then
   * refuse a target whose certificate was revoked. Unset until there is a CRL (HAProxy cannot load a
   * crl-file that does not exist, and without any CRL of the CA it would refuse every target).
   */
  crlFile?: string;
  http: Endpoint;
  https: Endpoint;
  tlsSni: Endpoint;
  /** The HTTPS port clients use (redirects name it when it is not 443). */
  publicHttpsPort: number;
}

export const FRONTENDS = { http: 'fe_http', https: 'fe_https', tlsSni: 'fe_tls_sni' } as const;
export const BACKENDS = {
  http: 'be_dyn_http',
  https: 'be_dyn_https',
  tcp: 'be_dyn_tcp',
  noRoute: 'be_no_route',
  noRouteTcp: 'be_no_route_tcp',
} as const;
export type DynamicBackend = typeof BACKENDS.http | typeof BACKENDS.https | typeof BACKENDS.tcp;

/**
 * Stick tables, each in a backend of its own name. `st_targets` counts the streams in flight to each
 * target (`<ip>|<port>`, tracked when a request or connection is sent there): a deployment's drain ends
 * once no stream is left on the old release's target (docs/deployments.md). Idle pooled connections to
 * a target have no stream, so they do not count.
 */
export const STICK_TABLES = { targets: 'st_targets' } as const;
/** The entry key of a target in `st_targets`. */
export function targetKey(address: string, port: number): string {
  return `${address}|${port}`;
}
/** Targets are IP addresses (at most 45 characters for IPv6) and a port. */
const TARGET_KEY_LENGTH = 52;
/** Entries of targets that served nothing for this long are dropped (one in use never is). */
const TARGET_ENTRY_EXPIRY_MS = 10 * 60_000;
const TARGET_TABLE_SIZE = 200_000;

/** The two maps, by their Data Plane API name (`<maps_dir>/<name>.map`). */
export const MAPS = { hosts: 'hosts', sni: 'sni' } as const;
export type MapName = (typeof MAPS)[keyof typeof MAPS];

export const ACME_CHALLENGE_PATH = '/.well-known/acme-challenge/';
export const NO_ROUTE_MESSAGE = 'no route for this host';

const ROUTE_FOUND = '{ var(txn.route) -m found }';
/** Map values are `<backend>|<ip>|<port>`. */
const FIELD = (index: 1 | 2 | 3) => `var(txn.route),word(${index},|)`;
/** `<ip>|<port>` of the route's map value: the key of its target in `st_targets`. */
const TARGET = 'var(txn.route),field(2,|,2)';

/**
 * The Host header as one value. `req.hdr(host)` would split it at commas and take the last value, so
 * `Host: a.example,b.example` would be routed to b (and `hdr` takes the last of several Host headers).
 * With HTTP/2, HAProxy turns `:authority` into the Host header before these rules run.
 */
const HOST_HEADER = 'req.fhdr(host)';
/** The host name the maps are keyed by: the Host header in lower case, without its port. */
const HOST_NAME = `${HOST_HEADER},lower,word(1,:)`;

/** An RFC 1123 label (letters, digits and inner hyphens, 1–63 characters); matched case-insensitively. */
const LABEL = '[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?';
/** A port 1–65535 without leading zeros. */
const PORT = '([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])';
/**
 * A well-formed Host header: an RFC 1123 host name with an optional `:port` (no whitespace, quotes,
 * `#` or backslash, so it stays one configuration word). The length (at most 253 for the name) is
 * checked beside it: a regex without look-ahead cannot.
 */
export const WELL_FORMED_HOST = `^${LABEL}([.]${LABEL})*(:${PORT})?$`;
export const MAX_HOST_NAME_LENGTH = 253;

/**
 * More than one Host header, or a comma in it (a list of values): refused with 400 before anything
 * looks the host up, so no rule can pick one of several values. The first rule of both HTTP frontends.
 */
function ambiguousHostRule(): HttpRequestRule {
  return {
    type: 'deny',
    deny_status: 400,
    cond: 'if',
    cond_test: `{ req.fhdr_cnt(host) gt 1 } or { ${HOST_HEADER} -m sub , }`,
  };
}

const ACME_CHALLENGE = `{ path_beg ${ACME_CHALLENGE_PATH} }`;

/** A path made safe to appear in a configuration word (no whitespace, quotes or comment signs). */
function pathWord(path: string, field: string): string {
  if (!/^\/[A-Za-z0-9._/-]*$/.test(path)) {
    throw new Error(`${field} must be an absolute path of letters, digits, ".", "_", "-" and "/"`);
  }
  return path;
}

function joinPath(dir: string, file: string): string {
  return `${dir.replace(/\/+$/, '')}/${file}`;
}

export function mapFile(layout: ProxyLayout, name: MapName): string {
  return joinPath(pathWord(layout.mapsDir, 'mapsDir'), `${name}.map`);
}

function bind(name: string, endpoint: Endpoint, extra: Partial<Bind> = {}): Bind {
  const out: Bind = { name };
  if (endpoint.address !== undefined) out.address = assertMapWord(endpoint.address, `${name} address`);
  out.port = endpoint.port;
  return { ...out, ...extra };
}

/** The rules that look the Host up in hosts.map and send the request to the route's address. */
function hostRoutingRules(layout: ProxyLayout): HttpRequestRule[] {
  return [
    {
      type: 'set-var',
      var_scope: 'txn',
      var_name: 'route',
      var_expr: `${HOST_NAME},map(${mapFile(layout, MAPS.hosts)})`,
    },
    {
      type: 'return',
      return_status_code: 404,
      return_content_type: 'text/plain',
      return_content_format: 'string',
      return_content: NO_ROUTE_MESSAGE,
      cond: 'if',
      cond_test: `!${ROUTE_FOUND}`,
    },
    { type: 'set-dst', expr: FIELD(2) },
    { type: 'set-dst-port', expr: FIELD(3) },
    {
      type: 'track-sc',
      track_sc_stick_counter: 0,
      track_sc_key: TARGET,
      track_sc_table: STICK_TABLES.targets,
    },
  ];
}

const USE_ROUTE_BACKEND: BackendSwitchingRule = { name: `%[${FIELD(1)}]` };

/**
 * Plain HTTP is redirected to HTTPS only for a well-formed Host: anything else (a path, a query, a space,
 * an empty or missing Host) gets a 400 instead of a Location that reflects it. ACME challenges are
 * exempt from both: they are routed like HTTPS requests (an unknown or malformed host gets the 404).
 */
function httpsRedirectRules(layout: ProxyLayout): HttpRequestRule[] {
  const port = layout.publicHttpsPort === 443 ? '' : `:${layout.publicHttpsPort}`;
  return [
    {
      type: 'deny',
      deny_status: 400,
      cond: 'unless',
      cond_test:
        `${ACME_CHALLENGE} or { ${HOST_HEADER} -m reg -i ${WELL_FORMED_HOST} } ` +
        `{ ${HOST_HEADER},word(1,:) -m len 1:${MAX_HOST_NAME_LENGTH} }`,
    },
    {
      type: 'redirect',
      redir_type: 'location',
      redir_value: `https://%[${HOST_NAME}]${port}%[pathq]`,
      redir_code: 301,
      cond: 'unless',
      cond_test: ACME_CHALLENGE,
    },
  ];
}

function backend(name: string, mode: 'http' | 'tcp', servers: Server[], rules: Partial<BackendSection> = {}) {
  const section: BackendSection = {
    name,
    mode,
    servers: Object.fromEntries(servers.map((server) => [server.name, server])),
    http_request_rule_list: [],
    tcp_request_rule_list: [],
    ...rules,
  };
  return section;
}

/** The sections of the layout for this front server. Deterministic: the same layout gives equal objects. */
export function desiredStructure(layout: ProxyLayout): Structure {
  const certsDir = pathWord(layout.certsDir, 'certsDir');
  const caFile = pathWord(layout.caFile, 'caFile');
  const frontends: FrontendSection[] = [
    {
      name: FRONTENDS.http,
      mode: 'http',
      default_backend: BACKENDS.noRoute,
      binds: { http: bind('http', layout.http) },
      http_request_rule_list: [
        ambiguousHostRule(),
        ...httpsRedirectRules(layout),
        ...hostRoutingRules(layout),
      ],
      tcp_request_rule_list: [],
      backend_switching_rule_list: [USE_ROUTE_BACKEND],
    },
    {
      name: FRONTENDS.https,
      mode: 'http',
      default_backend: BACKENDS.noRoute,
      binds: {
        https: bind('https', layout.https, {
          ssl: true,
          ssl_certificate: certsDir.endsWith('/') ? certsDir : `${certsDir}/`,
          alpn: 'h2,http/1.1',
        }),
      },
      http_request_rule_list: [
        ambiguousHostRule(),
        ...hostRoutingRules(layout),
        { type: 'set-header', hdr_name: 'X-Forwarded-Proto', hdr_format: 'https' },
        { type: 'set-header', hdr_name: 'X-Forwarded-For', hdr_format: '%[src]' },
      ],
      tcp_request_rule_list: [],
      backend_switching_rule_list: [USE_ROUTE_BACKEND],
    },
    {
      name: FRONTENDS.tlsSni,
      mode: 'tcp',
      default_backend: BACKENDS.noRouteTcp,
      binds: { tls_sni: bind('tls_sni', layout.tlsSni) },
      http_request_rule_list: [],
      tcp_request_rule_list: [
        { type: 'inspect-delay', timeout: 5000 },
        {
          // The condition makes the rule wait for the ClientHello; "accept" first would end the rules.
          type: 'content',
          action: 'set-var',
          var_scope: 'txn',
          var_name: 'route',
          expr: `req.ssl_sni,lower,map(${mapFile(layout, MAPS.sni)})`,
          cond: 'if',
          cond_test: '{ req.ssl_hello_type 1 }',
        },
        { type: 'content', action: 'reject', cond: 'if', cond_test: `!${ROUTE_FOUND}` },
        { type: 'content', action: 'set-dst', expr: FIELD(2) },
        { type: 'content', action: 'set-dst-port', expr: FIELD(3) },
        {
          type: 'content',
          action: 'track-sc',
          track_stick_counter: 0,
          track_key: TARGET,
          track_table: STICK_TABLES.targets,
        },
      ],
      backend_switching_rule_list: [USE_ROUTE_BACKEND],
    },
  ];
  const backends: BackendSection[] = [
    backend(BACKENDS.http, 'http', [{ name: 'dyn', address: '0.0.0.0' }]),
    backend(BACKENDS.https, 'http', [
      {
        name: 'dyn',
        address: '0.0.0.0',
        ssl: 'enabled',
        verify: 'required',
        sni: HOST_NAME,
        ssl_cafile: caFile,
        ...(layout.crlFile ? { crl_file: pathWord(layout.crlFile, 'crlFile') } : {}),
      },
    ]),
    backend(BACKENDS.tcp, 'tcp', [{ name: 'dyn', address: '0.0.0.0' }]),
    backend(BACKENDS.noRoute, 'http', [], {
      http_request_rule_list: [
        {
          type: 'return',
          return_status_code: 503,
          return_content_type: 'text/plain',
          return_content_format: 'string',
          return_content: 'no route: this host name is not served here',
        },
      ],
    }),
    backend(BACKENDS.noRouteTcp, 'tcp', [], {
      tcp_request_rule_list: [{ type: 'content', action: 'reject' }],
    }),
    backend(STICK_TABLES.targets, 'http', [], {
      stick_table: {
        type: 'string',
        keylen: TARGET_KEY_LENGTH,
        size: TARGET_TABLE_SIZE,
        expire: TARGET_ENTRY_EXPIRY_MS,
        store: 'conn_cur',
      },
    }),
  ];
  return { frontends, backends };
}
