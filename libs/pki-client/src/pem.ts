/**
 * Strict PEM (RFC 7468) reading and writing. Certificates, requests and keys cross the network and the
 * disk as PEM; anything that is not a well-formed sequence of blocks is refused rather than guessed at.
 */

export interface PemBlock {
  /** The label between `BEGIN` and the dashes: `CERTIFICATE`, `CERTIFICATE REQUEST`, `PRIVATE KEY`, … */
  type: string;
  der: Buffer;
}

/** A PEM text that cannot be read; the message says what is wrong, never echoes the content. */
export class PemError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PemError';
  }
}

const BLOCK = /-----BEGIN ([A-Z0-9]+(?: [A-Z0-9]+)*)-----\r?\n([\s\S]*?)-----END ([A-Z0-9 ]+)-----/g;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Reads every block of a PEM text. Only whitespace may surround the blocks; headers (`Proc-Type:`, i.e.
 * legacy encrypted PEM) and anything that is not canonical base64 are refused.
 */
export function decodePem(text: string): PemBlock[] {
  if (typeof text !== 'string') throw new PemError('must be a PEM text');
  const blocks: PemBlock[] = [];
  let position = 0;
  for (const match of text.matchAll(BLOCK)) {
    const between = text.slice(position, match.index);
    if (between.trim() !== '') throw new PemError('contains text outside the PEM blocks');
    const [whole, type, body, endType] = match as unknown as [string, string, string, string];
    if (endType !== type) throw new PemError(`BEGIN ${type} is closed by END ${endType}`);
    if (body.includes(':')) throw new PemError(`the ${type} block has headers (encrypted legacy PEM?)`);
    const base64 = body.replace(/\s+/g, '');
    if (base64.length === 0) throw new PemError(`the ${type} block is empty`);
    if (base64.length % 4 !== 0 || !BASE64.test(base64))
      throw new PemError(`the ${type} block is not valid base64`);
    const der = Buffer.from(base64, 'base64');
    if (der.toString('base64') !== base64) throw new PemError(`the ${type} block is not canonical base64`);
    blocks.push({ type, der });
    position = match.index + whole.length;
  }
  if (text.slice(position).trim() !== '') {
    throw new PemError(
      blocks.length === 0 ? 'is not PEM: no -----BEGIN …----- block' : 'contains text after the PEM blocks',
    );
  }
  if (blocks.length === 0) throw new PemError('is not PEM: no -----BEGIN …----- block');
  return blocks;
}

/** Reads a PEM text that must hold exactly one block of `type`. */
export function decodeSinglePem(text: string, type: string): Buffer {
  const blocks = decodePem(text);
  if (blocks.length !== 1) throw new PemError(`must hold exactly one ${type} block, found ${blocks.length}`);
  const [block] = blocks as [PemBlock];
  if (block.type !== type) {
    // Never repeat "PRIVATE KEY" in an error: log scans for private keys must stay clean.
    const found = block.type.includes('PRIVATE')
      ? 'a private key (which must never leave its machine)'
      : `a ${block.type}`;
    throw new PemError(`must be a ${type}, found ${found}`);
  }
  return block.der;
}

/** DER → PEM with 64-character lines and a final newline. */
export function encodePem(type: string, der: Uint8Array): string {
  const base64 = Buffer.from(der).toString('base64');
  const lines = base64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${type}-----\n${lines.join('\n')}\n-----END ${type}-----\n`;
}
