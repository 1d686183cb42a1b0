import { decodePem, decodeSinglePem, encodePem, PemError } from './pem.js';

const der = Buffer.from('3003020105', 'hex');
const block = encodePem('CERTIFICATE REQUEST', der);

describe('encodePem / decodePem', () => {
  it('round-trips with 64-character lines and a final newline', () => {
    const long = Buffer.alloc(100, 7);
    const pem = encodePem('CERTIFICATE', long);
    expect(
      pem
        .split('\n')
        .slice(1, -2)
        .every((line) => line.length <= 64),
    ).toBe(true);
    expect(pem.endsWith('-----END CERTIFICATE-----\n')).toBe(true);
    expect(decodePem(pem)).toEqual([{ type: 'CERTIFICATE', der: long }]);
  });

  it('reads several blocks in order, with CRLF and surrounding whitespace', () => {
    const text = `\n${encodePem('CERTIFICATE', der)}\r\n${encodePem('PRIVATE KEY', der).replace(/\n/g, '\r\n')}  \n`;
    expect(decodePem(text).map((entry) => entry.type)).toEqual(['CERTIFICATE', 'PRIVATE KEY']);
  });

  it.each([
    ['no block', 'hello', /no -----BEGIN/],
    ['text before', `x\n${block}`, /outside the PEM blocks/],
    ['text after', `${block}x`, /after the PEM blocks/],
    [
      'mismatched END',
      block.replace('END CERTIFICATE REQUEST', 'END CERTIFICATE'),
      /BEGIN CERTIFICATE REQUEST is closed by END CERTIFICATE$/,
    ],
    ['headers', block.replace('-----\n', '-----\nProc-Type: 4,ENCRYPTED\n\n'), /headers/],
    ['bad base64', '-----BEGIN X-----\nab$d\n-----END X-----\n', /not valid base64/],
    ['non-canonical base64', '-----BEGIN X-----\nMAN=\n-----END X-----\n', /not canonical/],
    ['empty body', '-----BEGIN X-----\n-----END X-----\n', /the X block is empty/],
  ])('refuses %s', (_what, text, message) => {
    expect(() => decodePem(text)).toThrow(PemError);
    expect(() => decodePem(text)).toThrow(message);
  });
});

describe('decodeSinglePem', () => {
  it('returns the DER of the one block of the expected type', () => {
    expect(decodeSinglePem(block, 'CERTIFICATE REQUEST')).toEqual(der);
  });
  it('refuses two blocks, or another type, without echoing a private key label', () => {
    expect(() => decodeSinglePem(block + block, 'CERTIFICATE REQUEST')).toThrow(
      'exactly one CERTIFICATE REQUEST block, found 2',
    );
    expect(() => decodeSinglePem(encodePem('CERTIFICATE', der), 'CERTIFICATE REQUEST')).toThrow(
      'found a CERTIFICATE',
    );
    let message = '';
    try {
      decodeSinglePem(encodePem('RSA PRIVATE KEY', der), 'CERTIFICATE REQUEST');
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/found a private key/);
    expect(message).not.toMatch(/PRIVATE KEY/);
  });
});
