/**
 * Conversions between configuration lines and the API objects of the subset (frontend, backend, bind,
 * server, acl, use_backend, tcp-request and http-request rules), and edits of a section's children that
 * keep every other line in place.
 */
import { hasControlCharacter } from '#contracts';
import { indentOf, quoteIfNeeded, tokenize, unquote, type Section } from './document.js';

export type Json = Record<string, unknown>;

/** A request the model cannot represent; `status` is what the API answers. */
export class ModelError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export type ChildKind =
  'bind' | 'server' | 'acl' | 'backend_switching_rule' | 'tcp_request_rule' | 'http_request_rule';

/** Where children go inside a section when it has none of that kind yet. */
const RANK: Record<ChildKind | 'base' | 'other' | 'default_backend', number> = {
  base: 0,
  other: 0,
  bind: 1,
  acl: 2,
  tcp_request_rule: 3,
  http_request_rule: 4,
  backend_switching_rule: 5,
  server: 6,
  default_backend: 7,
};

const CHILD_KEYWORD: Record<string, ChildKind> = {
  bind: 'bind',
  server: 'server',
  acl: 'acl',
  use_backend: 'backend_switching_rule',
  'tcp-request': 'tcp_request_rule',
  'http-request': 'http_request_rule',
};

type LineKind = ChildKind | 'base' | 'other' | 'default_backend' | 'blank';

function isBaseLine(sectionType: string, tokens: string[]): boolean {
  const [first, second] = tokens;
  if (first === 'mode' || first === 'description') return true;
  if (sectionType === 'frontend') {
    if (first === 'maxconn' || first === 'disabled') return true;
    if (first === 'timeout' && second === 'client') return true;
    if (first === 'option' && (second === 'httplog' || second === 'tcplog')) return true;
  }
  if (sectionType === 'backend') {
    if (first === 'balance' || first === 'retries' || first === 'default-server') return true;
    if (first === 'stick-table') return true;
    if (first === 'timeout' && (second === 'connect' || second === 'server')) return true;
  }
  return false;
}

export function classify(sectionType: string, line: string): { kind: LineKind; tokens: string[] } {
  const tokens = tokenize(line);
  if (tokens.length === 0) return { kind: 'blank', tokens };
  const child = CHILD_KEYWORD[tokens[0]];
  if (child) return { kind: child, tokens };
  if (tokens[0] === 'default_backend') return { kind: 'default_backend', tokens };
  if (isBaseLine(sectionType, tokens)) return { kind: 'base', tokens };
  return { kind: 'other', tokens };
}

// ---------------------------------------------------------------------------------------------- values

export function assertSafe(value: unknown, field: string): void {
  if (typeof value === 'string' && hasControlCharacter(value)) {
    throw new ModelError(400, `validation error: ${field} must not contain control characters`);
  }
}

const TIME_UNITS: [string, number][] = [
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', 1000],
];

/** HAProxy time (default unit ms) → milliseconds. */
export function parseTime(raw: string): number | undefined {
  const match = /^(\d+)(us|ms|s|m|h|d)?$/.exec(raw);
  if (!match) return undefined;
  const value = Number(match[1]);
  switch (match[2]) {
    case 'us':
      return Math.floor(value / 1000);
    case 's':
      return value * 1000;
    case 'm':
      return value * 60_000;
    case 'h':
      return value * 3_600_000;
    case 'd':
      return value * 86_400_000;
    default:
      return value;
  }
}

/** Milliseconds → the largest unit that divides them exactly (like dataplaneapi's "nearest"). */
export function formatTime(ms: number): string {
  if (ms === 0) return '0';
  for (const [unit, size] of TIME_UNITS) if (ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

function int(raw: string | undefined): number | undefined {
  return raw !== undefined && /^-?\d+$/.test(raw) ? Number(raw) : undefined;
}

function condition(tokens: string[], from: number): { head: string[]; cond?: string; cond_test?: string } {
  for (let index = from; index < tokens.length; index++) {
    if (tokens[index] === 'if' || tokens[index] === 'unless') {
      return {
        head: tokens.slice(from, index),
        cond: tokens[index],
        cond_test: tokens.slice(index + 1).join(' '),
      };
    }
  }
  return { head: tokens.slice(from) };
}

function conditionSuffix(object: Json): string {
  if (!object.cond) return '';
  if (typeof object.cond_test !== 'string' || object.cond_test.trim() === '') {
    throw new ModelError(400, 'validation error: cond_test is required with cond');
  }
  assertSafe(object.cond_test, 'cond_test');
  return ` ${object.cond as string} ${object.cond_test.trim()}`;
}

function compact(object: Json): Json {
  for (const key of Object.keys(object)) if (object[key] === undefined) delete object[key];
  return object;
}

// ---------------------------------------------------------------------------------------------- binds

function splitAddressPort(raw: string): { address?: string; port?: number } {
  const match = /^(.*):(\d+)$/.exec(raw);
  if (!match) return { address: raw };
  let address = match[1];
  if (address.startsWith('[') && address.endsWith(']')) address = address.slice(1, -1);
  return { address: address === '' ? undefined : address, port: Number(match[2]) };
}

export function parseBind(tokens: string[]): Json {
  const endpoint = tokens[1] ?? '';
  const bind: Json = { name: endpoint, ...splitAddressPort(endpoint) };
  for (let index = 2; index < tokens.length; index++) {
    const option = tokens[index];
    const next = tokens[index + 1] !== undefined ? unquote(tokens[index + 1]) : undefined;
    switch (option) {
      case 'name':
        bind.name = next;
        index++;
        break;
      case 'ssl':
      case 'strict-sni':
      case 'accept-proxy':
      case 'v4v6':
      case 'transparent':
        bind[option.replace('-', '_')] = true;
        break;
      case 'crt':
        bind.ssl_certificate = next;
        index++;
        break;
      case 'crt-list':
        bind.crt_list = next;
        index++;
        break;
      case 'ca-file':
        bind.ssl_cafile = next;
        index++;
        break;
      case 'verify':
      case 'alpn':
        bind[option] = next;
        index++;
        break;
      case 'ssl-min-ver':
        bind.ssl_min_ver = next;
        index++;
        break;
      default:
        break;
    }
  }
  return compact(bind);
}

export function bindLine(bind: Json): string {
  for (const [key, value] of Object.entries(bind)) assertSafe(value, key);
  const address = (bind.address as string | undefined) ?? '';
  const host = address.includes(':') && !address.includes('@') ? `[${address}]` : address;
  const endpoint = bind.port !== undefined && bind.port !== null ? `${host}:${bind.port as number}` : host;
  if (endpoint === '') throw new ModelError(400, 'validation error: a bind needs an address or a port');
  const parts = ['bind', endpoint, 'name', bind.name as string];
  if (bind.ssl) parts.push('ssl');
  if (bind.ssl_certificate) parts.push('crt', quoteIfNeeded(bind.ssl_certificate as string));
  if (bind.crt_list) parts.push('crt-list', quoteIfNeeded(bind.crt_list as string));
  if (bind.ssl_cafile) parts.push('ca-file', quoteIfNeeded(bind.ssl_cafile as string));
  if (bind.verify) parts.push('verify', bind.verify as string);
  if (bind.alpn) parts.push('alpn', bind.alpn as string);
  if (bind.ssl_min_ver) parts.push('ssl-min-ver', bind.ssl_min_ver as string);
  if (bind.strict_sni) parts.push('strict-sni');
  if (bind.accept_proxy) parts.push('accept-proxy');
  if (bind.v4v6) parts.push('v4v6');
  if (bind.transparent) parts.push('transparent');
  return parts.join(' ');
}

// ---------------------------------------------------------------------------------------------- servers

const SERVER_FLAGS: [string, string][] = [
  ['check', 'check'],
  ['backup', 'backup'],
  ['ssl', 'ssl'],
  ['send-proxy', 'send-proxy'],
];

/** Server options shared by `server` and `default-server` lines, from `tokens[from]` on. */
export function parseServerParams(tokens: string[], from: number): Json {
  const params: Json = {};
  for (let index = from; index < tokens.length; index++) {
    const option = tokens[index];
    const next = tokens[index + 1] !== undefined ? unquote(tokens[index + 1]) : undefined;
    const flag = SERVER_FLAGS.find(([keyword]) => keyword === option);
    if (flag) {
      params[flag[1]] = 'enabled';
      continue;
    }
    const negated = SERVER_FLAGS.find(([keyword]) => `no-${keyword}` === option);
    if (negated) {
      params[negated[1]] = 'disabled';
      continue;
    }
    switch (option) {
      case 'disabled':
        params.maintenance = 'enabled';
        break;
      case 'enabled':
        params.maintenance = 'disabled';
        break;
      case 'weight':
      case 'rise':
      case 'fall':
      case 'maxconn':
        params[option] = int(next);
        index++;
        break;
      case 'inter':
        params.inter = next !== undefined ? parseTime(next) : undefined;
        index++;
        break;
      case 'verify':
      case 'sni':
        params[option] = next;
        index++;
        break;
      case 'ca-file':
        params.ssl_cafile = next;
        index++;
        break;
      case 'crl-file':
        params.crl_file = next;
        index++;
        break;
      case 'id':
        params.id = int(next);
        index++;
        break;
      default:
        break;
    }
  }
  return compact(params);
}

export function serverParamsWords(params: Json): string[] {
  for (const [key, value] of Object.entries(params)) assertSafe(value, key);
  const words: string[] = [];
  if (params.check === 'enabled') words.push('check');
  if (params.inter !== undefined && params.inter !== null)
    words.push('inter', formatTime(params.inter as number));
  if (params.rise !== undefined && params.rise !== null) words.push('rise', String(params.rise));
  if (params.fall !== undefined && params.fall !== null) words.push('fall', String(params.fall));
  if (params.weight !== undefined && params.weight !== null) words.push('weight', String(params.weight));
  if (params.maxconn !== undefined && params.maxconn !== null) words.push('maxconn', String(params.maxconn));
  if (params.backup === 'enabled') words.push('backup');
  if (params.ssl === 'enabled') words.push('ssl');
  if (params.verify) words.push('verify', params.verify as string);
  if (params.sni) words.push('sni', params.sni as string);
  if (params.ssl_cafile) words.push('ca-file', quoteIfNeeded(params.ssl_cafile as string));
  if (params.crl_file) words.push('crl-file', quoteIfNeeded(params.crl_file as string));
  if (params['send-proxy'] === 'enabled') words.push('send-proxy');
  if (params.maintenance === 'enabled') words.push('disabled');
  if (params.id !== undefined && params.id !== null) words.push('id', String(params.id));
  return words;
}

export function parseServer(tokens: string[]): Json {
  const endpoint = tokens[2] ?? '';
  const { address, port } = splitAddressPort(endpoint);
  return compact({ name: tokens[1], address, port, ...parseServerParams(tokens, 3) });
}

export function serverLine(server: Json): string {
  assertSafe(server.address, 'address');
  const address = server.address as string;
  const host = address.includes(':') ? `[${address}]` : address;
  const endpoint =
    server.port !== undefined && server.port !== null ? `${host}:${server.port as number}` : host;
  return ['server', server.name as string, endpoint, ...serverParamsWords(server)].join(' ');
}

// ---------------------------------------------------------------------------------------------- rules

export function parseAcl(tokens: string[]): Json {
  return compact({
    acl_name: tokens[1],
    criterion: tokens[2],
    value: tokens.length > 3 ? tokens.slice(3).join(' ') : undefined,
  });
}

export function aclLine(acl: Json): string {
  assertSafe(acl.value, 'value');
  const value = typeof acl.value === 'string' && acl.value.trim() !== '' ? ` ${acl.value.trim()}` : '';
  return `acl ${acl.acl_name as string} ${acl.criterion as string}${value}`;
}

export function parseSwitchingRule(tokens: string[]): Json {
  const { cond, cond_test } = condition(tokens, 2);
  return compact({ name: tokens[1], cond, cond_test });
}

export function switchingRuleLine(rule: Json): string {
  return `use_backend ${rule.name as string}${conditionSuffix(rule)}`;
}

/** `set-var(<scope>.<name>)` → scope and name (client-native splits at the first dot). */
function parseSetVar(word: string): { var_scope?: string; var_name?: string } | undefined {
  const match = /^set-var\(([^.()]+)\.([^()]+)\)$/.exec(word);
  return match ? { var_scope: match[1], var_name: match[2] } : undefined;
}

function setVarWord(rule: Json): string {
  if (!rule.var_scope || !rule.var_name) {
    throw new ModelError(400, 'validation error: var_scope and var_name are required');
  }
  return `set-var(${rule.var_scope as string}.${rule.var_name as string})`;
}

function requiredExpression(rule: Json, field: string): string {
  const value = rule[field];
  if (typeof value !== 'string' || value.trim() === '') {
    throw new ModelError(400, `validation error: ${field} is required`);
  }
  return value.trim();
}

/** `track-sc<N> <key> [table <table>]`, the words after `http-request` or `tcp-request <type>`. */
function parseTrack(head: string[]): { counter: number; key?: string; table?: string } | undefined {
  const match = /^track-sc(\d+)$/.exec(head[0] ?? '');
  if (!match) return undefined;
  const tableAt = head.indexOf('table');
  return {
    counter: Number(match[1]),
    key: head[1],
    table: tableAt > 1 ? head[tableAt + 1] : undefined,
  };
}

function trackWords(counter: unknown, key: string, table: unknown): string {
  const number = counter === undefined || counter === null ? 0 : counter;
  if (typeof number !== 'number' || !Number.isInteger(number) || number < 0 || number > 2) {
    throw new ModelError(400, 'validation error: the stick counter must be 0, 1 or 2');
  }
  return `track-sc${number} ${key}${typeof table === 'string' && table !== '' ? ` table ${table}` : ''}`;
}

export function parseTcpRequestRule(tokens: string[]): Json {
  if (tokens[1] === 'inspect-delay')
    return compact({ type: 'inspect-delay', timeout: parseTime(tokens[2] ?? '') });
  const { head, cond, cond_test } = condition(tokens, 2);
  const variable = parseSetVar(head[0] ?? '');
  if (variable) {
    return compact({
      type: tokens[1],
      action: 'set-var',
      ...variable,
      expr: head.slice(1).join(' '),
      cond,
      cond_test,
    });
  }
  if (head[0] === 'set-dst' || head[0] === 'set-dst-port') {
    return compact({ type: tokens[1], action: head[0], expr: head.slice(1).join(' '), cond, cond_test });
  }
  const track = parseTrack(head);
  if (track) {
    return compact({
      type: tokens[1],
      action: 'track-sc',
      track_stick_counter: track.counter,
      track_key: track.key,
      track_table: track.table,
      cond,
      cond_test,
    });
  }
  return compact({ type: tokens[1], action: head[0], cond, cond_test });
}

export function tcpRequestRuleLine(rule: Json): string {
  for (const [key, value] of Object.entries(rule)) assertSafe(value, key);
  if (rule.type === 'inspect-delay') {
    if (typeof rule.timeout !== 'number') throw new ModelError(400, 'validation error: timeout is required');
    return `tcp-request inspect-delay ${formatTime(rule.timeout)}`;
  }
  if (!rule.action) throw new ModelError(400, 'validation error: action is required');
  let action = rule.action as string;
  if (action === 'set-var') action = `${setVarWord(rule)} ${requiredExpression(rule, 'expr')}`;
  else if (action === 'set-dst' || action === 'set-dst-port')
    action = `${action} ${requiredExpression(rule, 'expr')}`;
  else if (action === 'track-sc')
    action = trackWords(rule.track_stick_counter, requiredExpression(rule, 'track_key'), rule.track_table);
  return `tcp-request ${rule.type as string} ${action}${conditionSuffix(rule)}`;
}

export function parseHttpRequestRule(tokens: string[]): Json {
  const track = parseTrack(tokens.slice(1));
  if (track) {
    const { cond, cond_test } = condition(tokens, 2);
    return compact({
      type: 'track-sc',
      track_sc_stick_counter: track.counter,
      track_sc_key: track.key,
      track_sc_table: track.table,
      cond,
      cond_test,
    });
  }
  const variable = parseSetVar(tokens[1] ?? '');
  const type = variable ? 'set-var' : tokens[1];
  const rule: Json = { type, ...variable };
  const { head, cond, cond_test } = condition(tokens, 2);
  rule.cond = cond;
  rule.cond_test = cond_test;
  switch (type) {
    case 'set-var':
      rule.var_expr = head.join(' ');
      break;
    case 'set-dst':
    case 'set-dst-port':
      rule.expr = head.join(' ');
      break;
    case 'redirect': {
      rule.redir_type = head[0];
      rule.redir_value = head[1];
      const options: string[] = [];
      for (let index = 2; index < head.length; index++) {
        if (head[index] === 'code') rule.redir_code = int(head[++index]);
        else options.push(head[index]);
      }
      if (options.length > 0) rule.redir_option = options.join(' ');
      break;
    }
    case 'return':
      for (let index = 0; index < head.length; index++) {
        const word = head[index];
        if (word === 'status') rule.return_status_code = int(head[++index]);
        else if (word === 'content-type') rule.return_content_type = unquote(head[++index] ?? '');
        else if (['string', 'lf-string', 'file', 'lf-file', 'errorfile', 'errorfiles'].includes(word)) {
          rule.return_content_format = word;
          rule.return_content = unquote(head[++index] ?? '');
        } else if (word === 'default-errorfiles') rule.return_content_format = word;
      }
      break;
    case 'deny':
      if (head[0] === 'deny_status') rule.deny_status = int(head[1]);
      break;
    case 'set-header':
    case 'add-header':
      rule.hdr_name = head[0];
      rule.hdr_format = head.slice(1).join(' ');
      break;
    case 'del-header':
      rule.hdr_name = head[0];
      break;
    default:
      break;
  }
  return compact(rule);
}

export function httpRequestRuleLine(rule: Json): string {
  for (const [key, value] of Object.entries(rule)) assertSafe(value, key);
  if (rule.type === 'track-sc') {
    const words = trackWords(
      rule.track_sc_stick_counter,
      requiredExpression(rule, 'track_sc_key'),
      rule.track_sc_table,
    );
    return `http-request ${words}${conditionSuffix(rule)}`;
  }
  const parts = ['http-request', rule.type === 'set-var' ? setVarWord(rule) : (rule.type as string)];
  switch (rule.type) {
    case 'set-var':
      parts.push(requiredExpression(rule, 'var_expr'));
      break;
    case 'set-dst':
    case 'set-dst-port':
      parts.push(requiredExpression(rule, 'expr'));
      break;
    case 'redirect':
      if (!rule.redir_type || !rule.redir_value) {
        throw new ModelError(400, 'validation error: redir_type and redir_value are required');
      }
      parts.push(rule.redir_type as string, rule.redir_value as string);
      if (rule.redir_code) parts.push('code', String(rule.redir_code));
      if (rule.redir_option) parts.push(rule.redir_option as string);
      break;
    case 'return':
      if (rule.return_status_code) parts.push('status', String(rule.return_status_code));
      if (rule.return_content_type)
        parts.push('content-type', quoteIfNeeded(rule.return_content_type as string));
      if (rule.return_content_format) {
        parts.push(rule.return_content_format as string);
        if (rule.return_content_format !== 'default-errorfiles') {
          parts.push(quoteIfNeeded((rule.return_content as string | undefined) ?? ''));
        }
      }
      break;
    case 'deny':
      if (rule.deny_status) parts.push('deny_status', String(rule.deny_status));
      break;
    case 'set-header':
    case 'add-header':
      if (!rule.hdr_name || !rule.hdr_format) {
        throw new ModelError(400, 'validation error: hdr_name and hdr_format are required');
      }
      parts.push(rule.hdr_name as string, rule.hdr_format as string);
      break;
    case 'del-header':
      if (!rule.hdr_name) throw new ModelError(400, 'validation error: hdr_name is required');
      parts.push(rule.hdr_name as string);
      break;
    default:
      break;
  }
  return parts.join(' ') + conditionSuffix(rule);
}

export const CHILD_CODEC: Record<ChildKind, { parse(tokens: string[]): Json; line(object: Json): string }> = {
  bind: { parse: parseBind, line: bindLine },
  server: { parse: parseServer, line: serverLine },
  acl: { parse: parseAcl, line: aclLine },
  backend_switching_rule: { parse: parseSwitchingRule, line: switchingRuleLine },
  tcp_request_rule: { parse: parseTcpRequestRule, line: tcpRequestRuleLine },
  http_request_rule: { parse: parseHttpRequestRule, line: httpRequestRuleLine },
};

// ---------------------------------------------------------------------------------------------- sections

export function parseFrontendBase(section: Section): Json {
  const frontend: Json = { name: section.name };
  for (const line of section.lines) {
    const { kind, tokens } = classify('frontend', line);
    if (kind === 'default_backend') frontend.default_backend = tokens[1];
    if (kind !== 'base') continue;
    const [first, second] = tokens;
    if (first === 'mode') frontend.mode = second;
    else if (first === 'description') frontend.description = unquote(tokens.slice(1).join(' '));
    else if (first === 'maxconn') frontend.maxconn = int(second);
    else if (first === 'disabled') frontend.disabled = true;
    else if (first === 'timeout') frontend.client_timeout = parseTime(tokens[2] ?? '');
    else if (first === 'option') frontend[second] = true;
  }
  return compact(frontend);
}

export function frontendBaseLines(frontend: Json): string[] {
  assertSafe(frontend.description, 'description');
  const lines: string[] = [];
  if (frontend.mode) lines.push(`mode ${frontend.mode as string}`);
  if (frontend.description) lines.push(`description ${frontend.description as string}`);
  if (frontend.maxconn !== undefined && frontend.maxconn !== null)
    lines.push(`maxconn ${frontend.maxconn as number}`);
  if (frontend.client_timeout !== undefined && frontend.client_timeout !== null) {
    lines.push(`timeout client ${formatTime(frontend.client_timeout as number)}`);
  }
  if (frontend.httplog) lines.push('option httplog');
  if (frontend.tcplog) lines.push('option tcplog');
  if (frontend.disabled) lines.push('disabled');
  return lines;
}

/** `stick-table type <t> [len <n>] size <n> [expire <time>] [store <types>]` (sizes as plain numbers or k/m/g). */
function parseStickTable(tokens: string[]): Json {
  const table: Json = {};
  for (let index = 1; index < tokens.length; index++) {
    const [word, value] = [tokens[index], tokens[index + 1]];
    if (word === 'type') table.type = value;
    else if (word === 'len') table.keylen = int(value);
    else if (word === 'size') table.size = parseSize(value ?? '');
    else if (word === 'expire') table.expire = parseTime(value ?? '');
    else if (word === 'store') table.store = value;
    else continue;
    index++;
  }
  return compact(table);
}

function parseSize(raw: string): number | undefined {
  const match = /^(\d+)([kmg]?)$/i.exec(raw);
  if (!match) return undefined;
  const factor = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[
    match[2].toLowerCase() as '' | 'k' | 'm' | 'g'
  ];
  return Number(match[1]) * factor;
}

function stickTableLine(table: Json): string {
  for (const [key, value] of Object.entries(table)) assertSafe(value, `stick_table.${key}`);
  if (!table.type) throw new ModelError(400, 'validation error: stick_table.type is required');
  if (typeof table.size !== 'number')
    throw new ModelError(400, 'validation error: stick_table.size is required');
  const words = ['stick-table', 'type', table.type as string];
  if (typeof table.keylen === 'number') words.push('len', String(table.keylen));
  words.push('size', String(table.size));
  if (typeof table.expire === 'number') words.push('expire', formatTime(table.expire));
  if (table.store) words.push('store', table.store as string);
  return words.join(' ');
}

export function parseBackendBase(section: Section): Json {
  const backend: Json = { name: section.name };
  for (const line of section.lines) {
    const { kind, tokens } = classify('backend', line);
    if (kind !== 'base') continue;
    const [first, second] = tokens;
    if (first === 'mode') backend.mode = second;
    else if (first === 'description') backend.description = unquote(tokens.slice(1).join(' '));
    else if (first === 'balance') backend.balance = { algorithm: second };
    else if (first === 'retries') backend.retries = int(second);
    else if (first === 'default-server') backend.default_server = parseServerParams(tokens, 1);
    else if (first === 'timeout' && second === 'connect')
      backend.connect_timeout = parseTime(tokens[2] ?? '');
    else if (first === 'timeout' && second === 'server') backend.server_timeout = parseTime(tokens[2] ?? '');
    else if (first === 'stick-table') backend.stick_table = parseStickTable(tokens);
  }
  return compact(backend);
}

export function backendBaseLines(backend: Json): string[] {
  assertSafe(backend.description, 'description');
  const lines: string[] = [];
  if (backend.mode) lines.push(`mode ${backend.mode as string}`);
  if (backend.description) lines.push(`description ${backend.description as string}`);
  const balance = backend.balance as { algorithm?: string } | undefined;
  if (balance?.algorithm) lines.push(`balance ${balance.algorithm}`);
  if (backend.connect_timeout !== undefined && backend.connect_timeout !== null) {
    lines.push(`timeout connect ${formatTime(backend.connect_timeout as number)}`);
  }
  if (backend.server_timeout !== undefined && backend.server_timeout !== null) {
    lines.push(`timeout server ${formatTime(backend.server_timeout as number)}`);
  }
  if (backend.retries !== undefined && backend.retries !== null)
    lines.push(`retries ${backend.retries as number}`);
  const defaults = backend.default_server as Json | undefined;
  if (defaults && Object.keys(defaults).length > 0) {
    lines.push(['default-server', ...serverParamsWords(defaults)].join(' '));
  }
  const table = backend.stick_table as Json | undefined;
  if (table && Object.keys(table).length > 0) lines.push(stickTableLine(table));
  return lines;
}

/** Replaces the base lines of a section (what a PUT without full_section changes); children stay. */
export function setBaseLines(section: Section, lines: string[], defaultBackend?: string): void {
  const indent = indentOf(section);
  section.lines = section.lines.filter((line) => {
    const { kind } = classify(section.type, line);
    return kind !== 'base' && kind !== 'default_backend';
  });
  section.lines.splice(0, 0, ...lines.map((line) => indent + line));
  if (defaultBackend) insertAtRank(section, 'default_backend', `default_backend ${defaultBackend}`);
}

// ---------------------------------------------------------------------------------------------- children

/** Positions (in section.lines) and parsed objects of the children of one kind, in order. */
export function childrenOf(section: Section, kind: ChildKind): { position: number; object: Json }[] {
  const out: { position: number; object: Json }[] = [];
  section.lines.forEach((line, position) => {
    const classified = classify(section.type, line);
    if (classified.kind === kind) out.push({ position, object: CHILD_CODEC[kind].parse(classified.tokens) });
  });
  return out;
}

function lastContentIndex(section: Section): number {
  for (let index = section.lines.length - 1; index >= 0; index--) {
    const trimmed = section.lines[index].trim();
    if (trimmed !== '' && !trimmed.startsWith('#')) return index;
  }
  return -1;
}

function insertAtRank(section: Section, kind: keyof typeof RANK, line: string): void {
  const rank = RANK[kind];
  const indent = indentOf(section);
  for (let index = 0; index < section.lines.length; index++) {
    const classified = classify(section.type, section.lines[index]);
    if (classified.kind === 'blank') continue;
    if (RANK[classified.kind] > rank) {
      section.lines.splice(index, 0, indent + line);
      return;
    }
  }
  section.lines.splice(lastContentIndex(section) + 1, 0, indent + line);
}

/** Inserts a child so that it becomes the `index`-th of its kind (appends when index is past the end). */
export function insertChild(section: Section, kind: ChildKind, index: number, line: string): void {
  const siblings = childrenOf(section, kind);
  const indent = indentOf(section);
  if (index < siblings.length) {
    section.lines.splice(siblings[index].position, 0, indent + line);
  } else if (siblings.length > 0) {
    section.lines.splice(siblings[siblings.length - 1].position + 1, 0, indent + line);
  } else {
    insertAtRank(section, kind, line);
  }
}

export function replaceChildAt(section: Section, position: number, line: string): void {
  section.lines[position] = indentOf(section) + line;
}

export function removeChildAt(section: Section, position: number): void {
  section.lines.splice(position, 1);
}

/** Replaces every child of a kind with `lines`, in order. */
export function replaceChildren(section: Section, kind: ChildKind, lines: string[]): void {
  const existing = childrenOf(section, kind);
  const anchor = existing.length > 0 ? existing[0].position : -1;
  for (const child of [...existing].reverse()) section.lines.splice(child.position, 1);
  const indent = indentOf(section);
  if (anchor >= 0) {
    section.lines.splice(anchor, 0, ...lines.map((line) => indent + line));
  } else {
    lines.forEach((line, index) => insertChild(section, kind, index, line));
  }
}
