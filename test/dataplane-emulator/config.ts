/**
 * The emulator's configuration: the subset of dataplaneapi's YAML file (config_version 2) it needs.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { z } from 'zod';
import { parseOrThrow } from '#contracts';
import { parse } from 'yaml';

export interface EmulatorUser {
  name: string;
  password: string;
}

export interface EmulatorConfig {
  host: string;
  port: number;
  /** From `dataplaneapi.user`; when empty, the `userlist` named below in haproxy.cfg is used. */
  users: EmulatorUser[];
  userlist: string;
  transactionDir: string;
  maxOpenTransactions: number;
  mapsDir: string;
  sslCertsDir: string;
  /** `resources.general_storage_dir`: general use files (the CRL HAProxy checks targets against). */
  generalStorageDir: string;
  configFile: string;
  haproxyBin: string;
  /** HAProxy's master CLI socket (`haproxy -W -S <path>`): reloads go through it. */
  masterSocket: string;
  /** The stats socket; read from the `stats socket` line of haproxy.cfg when not given. */
  statsSocket?: string;
  /** Seconds (fractions allowed in the emulator; dataplaneapi takes whole seconds). */
  reloadDelayMs: number;
  /** Exit status 0 means "up" for /health; without it /health says "unknown" (as dataplaneapi). */
  statusCmd?: string;
  /** dataplaneapi's --disable-inotify: hand edits of haproxy.cfg are then not noticed until a restart. */
  disableInotify?: boolean;
}

const userSchema = z.object({
  name: z.string().min(1),
  password: z.string().min(1),
  insecure: z.boolean().default(false),
});

const fileSchema = z.object({
  config_version: z.number().int().optional(),
  name: z.string().optional(),
  dataplaneapi: z.object({
    host: z.string().default('localhost'),
    port: z.number().int().min(0).max(65535).default(5555),
    user: z.array(userSchema).default([]),
    disable_inotify: z.boolean().optional(),
    userlist: z.object({ userlist: z.string().default('controller') }).optional(),
    transaction: z
      .object({
        transaction_dir: z.string().default('/tmp/haproxy'),
        max_open_transactions: z.number().int().min(1).default(20),
      })
      .default({ transaction_dir: '/tmp/haproxy', max_open_transactions: 20 }),
    resources: z
      .object({
        maps_dir: z.string().default('/etc/haproxy/maps'),
        ssl_certs_dir: z.string().default('/etc/haproxy/ssl'),
        general_storage_dir: z.string().default('/etc/haproxy/general'),
      })
      .default({
        maps_dir: '/etc/haproxy/maps',
        ssl_certs_dir: '/etc/haproxy/ssl',
        general_storage_dir: '/etc/haproxy/general',
      }),
  }),
  haproxy: z.object({
    config_file: z.string().default('/etc/haproxy/haproxy.cfg'),
    haproxy_bin: z.string().default('haproxy'),
    master_runtime: z.string().min(1),
    stats_socket: z.string().optional(),
    reload: z
      .object({
        reload_delay: z.number().min(0).default(5),
        status_cmd: z.string().optional(),
      })
      .default({ reload_delay: 5 }),
  }),
});

/** `"${NAME}"` reads the environment variable NAME (as dataplaneapi does). */
function fromEnvironment(value: string, field: string): string {
  const match = /^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(value);
  if (!match) return value;
  const found = process.env[match[1]];
  if (found === undefined) throw new Error(`${field}: environment variable ${match[1]} is not set`);
  return found;
}

export function configFromYaml(text: string, baseDir = process.cwd()): EmulatorConfig {
  const raw = parseOrThrow(fileSchema, parse(text) ?? {});
  const users = raw.dataplaneapi.user.map((user, index) => {
    if (!user.insecure) {
      throw new Error(
        `dataplaneapi.user[${index}]: the emulator supports only plain passwords (insecure: true), ` +
          'typically "${ENV_VARIABLE}"; hashed passwords are for the real dataplaneapi',
      );
    }
    return {
      name: user.name,
      password: fromEnvironment(user.password, `dataplaneapi.user[${index}].password`),
    };
  });
  const path = (value: string) => resolve(baseDir, value);
  return {
    host: raw.dataplaneapi.host,
    port: raw.dataplaneapi.port,
    users,
    userlist: raw.dataplaneapi.userlist?.userlist ?? 'controller',
    transactionDir: path(raw.dataplaneapi.transaction.transaction_dir),
    maxOpenTransactions: raw.dataplaneapi.transaction.max_open_transactions,
    mapsDir: path(raw.dataplaneapi.resources.maps_dir),
    sslCertsDir: path(raw.dataplaneapi.resources.ssl_certs_dir),
    generalStorageDir: path(raw.dataplaneapi.resources.general_storage_dir),
    configFile: path(raw.haproxy.config_file),
    haproxyBin: raw.haproxy.haproxy_bin,
    masterSocket: path(raw.haproxy.master_runtime),
    statsSocket: raw.haproxy.stats_socket ? path(raw.haproxy.stats_socket) : undefined,
    reloadDelayMs: Math.round(raw.haproxy.reload.reload_delay * 1000),
    statusCmd: raw.haproxy.reload.status_cmd,
    disableInotify: raw.dataplaneapi.disable_inotify,
  };
}

export async function loadConfigFile(file: string): Promise<EmulatorConfig> {
  const absolute = resolve(file);
  return configFromYaml(await readFile(absolute, 'utf8'), resolve(absolute, '..'));
}
