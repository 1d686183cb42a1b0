import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';

/** Ports for releases (docs/plans/deployments.md §7.5): allocation, and who holds a listener. */

export interface TcpListener {
  address: string;
  port: number;
  uid: number;
  state: 'LISTEN';
}

const LISTEN = '0A';

/** The kernel prints each 32-bit word of an address in host (little-endian) byte order. */
function wordBytes(hex8: string): number[] {
  const n = parseInt(hex8, 16);
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
}

function decodeAddress(hex: string, ipv6: boolean): string {
  if (!ipv6) return wordBytes(hex).join('.');
  const bytes: number[] = [];
  for (let i = 0; i < 32; i += 8) bytes.push(...wordBytes(hex.slice(i, i + 8)));
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  // The WHATWG URL parser gives the canonical (compressed, lower-case) form.
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

/** One line of /proc/net/tcp(6): the local end, the owner and the state (the kernel's hex code). */
interface TcpSocket {
  address: string;
  port: number;
  uid: number;
  state: string;
}

function socketsIn(text: string, ipv6: boolean): TcpSocket[] {
  const out: TcpSocket[] = [];
  for (const line of text.split('\n').slice(1)) {
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid ...
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const [addr, port] = f[1].split(':');
    if (!addr || !port || addr.length !== (ipv6 ? 32 : 8)) continue;
    out.push({
      address: decodeAddress(addr, ipv6),
      port: parseInt(port, 16),
      uid: Number(f[7]),
      state: f[3],
    });
  }
  return out;
}

/** The LISTEN sockets in the text of /proc/net/tcp (or tcp6, with `ipv6`). */
export function parseProcNetTcp(text: string, { ipv6 }: { ipv6: boolean }): TcpListener[] {
  return socketsIn(text, ipv6)
    .filter((socket) => socket.state === LISTEN)
    .map(({ address, port, uid }) => ({ address, port, uid, state: 'LISTEN' }));
}

/** Established, being accepted (SYN_RECV), closed by the peer while the app still answers (CLOSE_WAIT). */
const OPEN_STATES = new Set(['01', '03', '08']);

/**
 * Connections to `port` on `address` that may still carry a request, in the text of /proc/net/tcp(6).
 * An IPv4-mapped IPv6 socket counts as its IPv4 address.
 */
export function openConnectionsIn(
  text: string,
  { ipv6, port, address }: { ipv6: boolean; port: number; address: string },
): number {
  return socketsIn(text, ipv6).filter(
    (socket) =>
      OPEN_STATES.has(socket.state) &&
      socket.port === port &&
      (socket.address === address || mappedIpv4(socket.address) === address),
  ).length;
}

/** `::ffff:7f00:4` (as the URL parser prints a mapped address) as `127.0.0.4`. */
function mappedIpv4(address: string): string | null {
  const match = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(address);
  if (!match) return null;
  const [high, low] = [parseInt(match[1], 16), parseInt(match[2], 16)];
  return [high >> 8, high & 0xff, low >> 8, low & 0xff].join('.');
}

/** Both socket tables, read once (a missing one, IPv6 turned off, reads as empty). */
async function procNetTcp(): Promise<{ v4: string; v6: string }> {
  const read = (path: string) => readFile(path, 'utf8').catch(() => '');
  const [v4, v6] = await Promise.all([read('/proc/net/tcp'), read('/proc/net/tcp6')]);
  return { v4, v6 };
}

/** How many connections to these ports on `address` may still carry a request (see openConnectionsIn). */
export async function openConnections(ports: readonly number[], address: string): Promise<number> {
  const { v4, v6 } = await procNetTcp();
  let count = 0;
  for (const port of ports)
    count +=
      openConnectionsIn(v4, { ipv6: false, port, address }) +
      openConnectionsIn(v6, { ipv6: true, port, address });
  return count;
}

export async function listeners(): Promise<TcpListener[]> {
  const { v4, v6 } = await procNetTcp();
  return [...parseProcNetTcp(v4, { ipv6: false }), ...parseProcNetTcp(v6, { ipv6: true })];
}

/**
 * Whether `port` is listened on by `uid`: 'owned' when every listener on it is that uid's, 'other'
 * when any belongs to someone else (another app took the port), 'none' when nothing listens yet.
 */
export async function listenerOwner(
  port: number,
  uid: number,
  /** Only listeners that receive what is sent to this address count (it, or a wildcard). */
  address?: string,
): Promise<{ owner: 'owned' | 'other' | 'none'; uids: number[] }> {
  const reaches = (l: TcpListener) =>
    address === undefined || l.address === address || l.address === '0.0.0.0' || l.address === '::';
  const uids = [
    ...new Set((await listeners()).filter((l) => l.port === port && reaches(l)).map((l) => l.uid)),
  ];
  if (uids.length === 0) return { owner: 'none', uids };
  return { owner: uids.every((u) => u === uid) ? 'owned' : 'other', uids };
}

function bindable(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    // exclusive: a cluster primary must not hand us a shared handle that hides a conflict.
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/**
 * The lowest port in `range` (inclusive) that no kept release uses and that binds on `host` now. The
 * probe is closed again, so another process may take it before the app binds: the listener check
 * catches that.
 */
export async function allocatePort(
  range: [number, number],
  used: Set<number>,
  host: string,
): Promise<number> {
  const [low, high] = range;
  if (!Number.isInteger(low) || !Number.isInteger(high) || low < 1 || high > 65535 || low > high) {
    throw new Error(`bad port range ${low}-${high}`);
  }
  for (let port = low; port <= high; port++) {
    if (used.has(port)) continue;
    if (await bindable(port, host)) return port;
  }
  throw new Error(`no free port in ${low}-${high} on ${host}`);
}
