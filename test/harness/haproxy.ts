/**
 * A real HAProxy (master-worker) with the Data Plane API emulator in front of it, on free loopback ports
 * in a temporary directory, built from deploy/haproxy/haproxy.cfg. `stop()` ends both and removes the
 * directory; call it in afterAll/afterEach so nothing outlives a failed test.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { DataplaneClient, type DataplaneClientOptions } from '#dataplane';
import { createLogger } from '#platform';
import { DataplaneEmulator } from '../dataplane-emulator/emulator.js';
import { HaproxyControl, type ProcList } from '../dataplane-emulator/haproxy.js';
import { freePorts } from './ports.js';
import { makeTempDir, startProcess, waitFor, type RunningProcess } from './processes.js';

const run = promisify(execFile);

export const HAPROXY_BIN = process.env.CL_HAPROXY_BIN ?? '/usr/sbin/haproxy';
export const BASE_CONFIG = resolve(process.cwd(), 'deploy/haproxy/haproxy.cfg');

export interface StackPorts {
  http: number;
  https: number;
  tlsSni: number;
  dataplane: number;
}

export interface StackPaths {
  dir: string;
  config: string;
  mapsDir: string;
  sslDir: string;
  hostsMap: string;
  sniMap: string;
  masterSocket: string;
  statsSocket: string;
  transactionDir: string;
  defaultCertificate: string;
  /** The CA certificate(s) that `be_dyn_https` verifies targets against (`ca-file`). */
  caFile: string;
  /** The Data Plane API's general_storage_dir (the CRL `be_dyn_https` checks targets against). */
  generalDir: string;
}

export interface HaproxyStackOptions {
  /** Data Plane API reload_delay in ms (default 100; the real default is 5 s). */
  reloadDelayMs?: number;
  maxOpenTransactions?: number;
  /** Template to start from (default deploy/haproxy/haproxy.cfg). */
  baseConfig?: string;
  /** Logs of the emulator go to the test output when true. */
  verbose?: boolean;
  /** PEM of the CA that TLS-to-target routes verify against (default: a throwaway self-signed one). */
  caPem?: string;
  /** Start the emulator with dataplaneapi's --disable-inotify (hand edits unnoticed until a restart). */
  disableInotify?: boolean;
}

export interface HaproxyStack {
  ports: StackPorts;
  paths: StackPaths;
  credentials: { username: string; password: string };
  /** `http://127.0.0.1:<port>/v3` */
  dataplaneUrl: string;
  emulator: DataplaneEmulator;
  haproxy: RunningProcess;
  control: HaproxyControl;
  client(options?: Partial<DataplaneClientOptions>): DataplaneClient;
  showProc(): Promise<ProcList>;
  /** Stops HAProxy (SIGTERM, or SIGKILL for a crash) and starts it again from haproxy.cfg as it is on disk. */
  restartHaproxy(signal?: NodeJS.Signals): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Turns the production base configuration into one for a test directory: paths under `dir`, the three
 * public binds on loopback with the given ports. Fails loudly when the template no longer has what it
 * rewrites, so the test stays about the real base configuration.
 */
export function renderBaseConfig(
  template: string,
  dir: string,
  ports: Omit<StackPorts, 'dataplane'>,
): string {
  const rewrites: [RegExp, string][] = [
    [/\/etc\/haproxy\//g, `${dir}/`],
    [/\/run\/haproxy\/admin\.sock/g, `${dir}/haproxy.sock`],
    [/^(\s*bind) :80 /m, `$1 127.0.0.1:${ports.http} `],
    [/^(\s*bind) :443 /m, `$1 127.0.0.1:${ports.https} `],
    [/^(\s*bind) :27017 /m, `$1 127.0.0.1:${ports.tlsSni} `],
  ];
  let text = template;
  for (const [pattern, replacement] of rewrites) {
    if (!pattern.test(text)) throw new Error(`base configuration has no match for ${pattern}`);
    pattern.lastIndex = 0;
    text = text.replace(pattern, replacement);
  }
  return text;
}

/** A self-signed certificate and its key in one PEM (what HAProxy's `crt` and the storage API take). */
export async function selfSignedPem(commonName: string, altNames: string[] = [commonName]): Promise<string> {
  const { stdout } = await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    '-',
    '-out',
    '-',
    '-days',
    '30',
    '-subj',
    `/CN=${commonName}`,
    '-addext',
    `subjectAltName=${altNames.map((name) => `DNS:${name}`).join(',')}`,
  ]);
  const certificate = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/.exec(stdout)?.[0];
  const key = /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----\n/.exec(stdout)?.[0];
  if (!certificate || !key) throw new Error('openssl did not print a certificate and a key');
  return certificate + key;
}

export async function startHaproxyStack(options: HaproxyStackOptions = {}): Promise<HaproxyStack> {
  const temporary = await makeTempDir('haproxy');
  const dir = temporary.path;
  const [http, https, tlsSni, dataplane] = await freePorts(4);
  const ports: StackPorts = { http, https, tlsSni, dataplane };
  const paths: StackPaths = {
    dir,
    config: join(dir, 'haproxy.cfg'),
    mapsDir: join(dir, 'maps'),
    sslDir: join(dir, 'ssl'),
    hostsMap: join(dir, 'maps', 'hosts.map'),
    sniMap: join(dir, 'maps', 'sni.map'),
    masterSocket: join(dir, 'master.sock'),
    statsSocket: join(dir, 'haproxy.sock'),
    transactionDir: join(dir, 'transactions'),
    defaultCertificate: join(dir, 'ssl', '00-default.pem'),
    caFile: join(dir, 'ca', 'cloudlunacy-ca.pem'),
    generalDir: join(dir, 'general'),
  };
  let haproxy: RunningProcess | undefined;
  let emulator: DataplaneEmulator | undefined;
  const stop = async () => {
    await emulator?.stop().catch(() => undefined);
    await haproxy?.stop('SIGTERM');
    await temporary.remove();
  };
  try {
    await mkdir(paths.mapsDir, { recursive: true });
    await mkdir(paths.sslDir, { recursive: true });
    await mkdir(paths.transactionDir, { recursive: true });
    await mkdir(paths.generalDir, { recursive: true });
    await mkdir(dirname(paths.caFile), { recursive: true });
    const caPem =
      options.caPem ??
      (await selfSignedPem('placeholder-ca.invalid')).replace(/-----BEGIN PRIVATE KEY-----[\s\S]*$/, '');
    await writeFile(paths.caFile, caPem);
    await writeFile(paths.hostsMap, '');
    await writeFile(paths.sniMap, '');
    await writeFile(paths.defaultCertificate, await selfSignedPem('default.invalid'), { mode: 0o600 });
    const template = await readFile(options.baseConfig ?? BASE_CONFIG, 'utf8');
    await writeFile(paths.config, renderBaseConfig(template, dir, ports));

    const control = new HaproxyControl(HAPROXY_BIN, paths.masterSocket, paths.statsSocket);
    const startHaproxy = async () => {
      const started = startProcess(HAPROXY_BIN, ['-W', '-S', paths.masterSocket, '-f', paths.config]);
      haproxy = started;
      const ready = await waitFor('haproxy to start a worker', async () => {
        if (started.child.exitCode !== null || started.child.signalCode !== null) return 'exited';
        const proc = await control.showProc().catch(() => undefined);
        return proc && proc.workers.length > 0 && 'ready';
      });
      if (ready === 'exited') throw new Error(`haproxy exited\n${started.output()}`);
    };
    await startHaproxy();

    const credentials = { username: 'admin', password: randomBytes(12).toString('hex') };
    emulator = await DataplaneEmulator.start(
      {
        host: '127.0.0.1',
        port: dataplane,
        users: [{ name: credentials.username, password: credentials.password }],
        userlist: 'controller',
        transactionDir: paths.transactionDir,
        maxOpenTransactions: options.maxOpenTransactions ?? 20,
        mapsDir: paths.mapsDir,
        sslCertsDir: paths.sslDir,
        generalStorageDir: paths.generalDir,
        configFile: paths.config,
        haproxyBin: HAPROXY_BIN,
        masterSocket: paths.masterSocket,
        statsSocket: paths.statsSocket,
        reloadDelayMs: options.reloadDelayMs ?? 100,
        disableInotify: options.disableInotify,
      },
      createLogger('dataplane-emulator', options.verbose ? {} : { write: () => undefined }),
    );
    const dataplaneUrl = emulator.url;
    return {
      ports,
      paths,
      credentials,
      dataplaneUrl,
      emulator,
      get haproxy() {
        return haproxy as RunningProcess;
      },
      control,
      client: (overrides = {}) =>
        new DataplaneClient({
          baseUrl: dataplaneUrl,
          username: credentials.username,
          password: credentials.password,
          ...overrides,
        }),
      showProc: () => control.showProc(),
      restartHaproxy: async (signal: NodeJS.Signals = 'SIGTERM') => {
        await haproxy?.stop(signal);
        await startHaproxy();
      },
      stop,
    };
  } catch (error) {
    const output = haproxy?.output() ?? '';
    await stop();
    throw new Error(`${error instanceof Error ? error.message : String(error)}\n${output}`);
  }
}
