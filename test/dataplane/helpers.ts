/** Small helpers shared by the Data Plane API tests: HTTP(S)/TLS probes and a tiny upstream server. */
import { createServer, type Server } from 'node:http';
import { connect as tlsConnect } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { requestReply, type Reply } from '../harness/http.js';

export interface Upstream {
  port: number;
  hits: number;
  close(): Promise<void>;
}

/** An HTTP server on loopback that answers `<name>` to everything. */
export async function startUpstream(name: string): Promise<Upstream> {
  const state = { hits: 0 };
  const server: Server = createServer((_request, response) => {
    state.hits++;
    response.writeHead(200, { 'content-type': 'text/plain', connection: 'close' }).end(name);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    port: (server.address() as AddressInfo).port,
    get hits() {
      return state.hits;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export type Answer = Reply;

/** One HTTPS request to HAProxy with a Host header (certificate not verified: HAProxy's test certs). */
export function httpsGet(port: number, host: string, path = '/'): Promise<Answer> {
  return requestReply({
    https: true,
    port,
    path,
    servername: host,
    headers: { host, connection: 'close' },
    rejectUnauthorized: false,
  });
}

export function httpGet(port: number, host: string, path = '/'): Promise<Answer> {
  return requestReply({ port, path, headers: { host, connection: 'close' } });
}

/** The SHA-256 fingerprint of the certificate HAProxy (or a backend behind it) presents for `servername`. */
export function peerCertificate(
  port: number,
  servername: string,
): Promise<{ fingerprint256: string; subject: string }> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false }, () => {
      const certificate = socket.getPeerCertificate();
      socket.end();
      resolve({ fingerprint256: certificate.fingerprint256, subject: String(certificate.subject?.CN ?? '') });
    });
    socket.setTimeout(5000, () => socket.destroy(new Error('timeout')));
    socket.on('error', reject);
  });
}
