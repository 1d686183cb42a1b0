import { createServer, type Server } from 'node:tls';
import type { Logger } from '#platform';

/**
 * A TLS endpoint serving the agent's installed certificate: a client that trusts only the CloudLunacy CA
 * can check, by SNI `<agentId>.mongodb.<domain>`, that this agent holds a valid certificate for it. Each
 * connection gets one line (`cloudlunacy-agent <agentId> <serial>`). A new certificate replaces the served
 * one with setSecureContext: no restart, connections already open keep theirs.
 */
export class TlsProbe {
  private server?: Server;
  private serial = '';

  constructor(
    private readonly options: { host: string; port: number },
    private readonly agentId: () => string,
    private readonly logger: Logger,
  ) {}

  async serve(pair: {
    serial: string;
    keyPem: string;
    certificatePem: string;
    chainPem: string;
  }): Promise<void> {
    const context = { key: pair.keyPem, cert: pair.certificatePem + pair.chainPem };
    this.serial = pair.serial;
    if (this.server) {
      this.server.setSecureContext(context);
      this.logger.info('TLS probe serves the new certificate', { serial: pair.serial });
      return;
    }
    const server = createServer(context, (socket) => {
      socket.on('error', () => undefined);
      socket.end(`cloudlunacy-agent ${this.agentId()} ${this.serial}\n`);
    });
    server.on('tlsClientError', () => undefined);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port, this.options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    this.logger.info('TLS probe listening', { ...this.options, serial: pair.serial });
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
