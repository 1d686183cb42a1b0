/**
 * A set of strings in fixed memory that answers "maybe present" or "certainly absent" (a Bloom filter).
 * A rebuild remembers which keys it wrote with one: memory stays the same however many rows the table
 * gets, and a wrong "maybe" only costs a lookup.
 */
export class StringBloomFilter {
  private readonly words: Uint32Array;
  private readonly mask: number;

  /** 2^log2Bits bits (default 8 Mbit, 1 MiB: about 1 % false "maybe" at a million keys with 4 hashes). */
  constructor(
    log2Bits = 23,
    private readonly hashes = 4,
  ) {
    if (log2Bits < 5 || log2Bits > 30) throw new Error('log2Bits must be between 5 and 30');
    this.words = new Uint32Array(2 ** (log2Bits - 5));
    this.mask = 2 ** log2Bits - 1;
  }

  add(value: string): void {
    const [first, second] = hashPair(value);
    for (let index = 0; index < this.hashes; index++) {
      const bit = (first + index * second) & this.mask;
      this.words[bit >>> 5]! |= 1 << (bit & 31);
    }
  }

  mayContain(value: string): boolean {
    const [first, second] = hashPair(value);
    for (let index = 0; index < this.hashes; index++) {
      const bit = (first + index * second) & this.mask;
      if ((this.words[bit >>> 5]! & (1 << (bit & 31))) === 0) return false;
    }
    return true;
  }
}

/** Two independent 32-bit FNV-1a hashes (different offset bases) of the UTF-16 code units, in one pass. */
function hashPair(value: string): [number, number] {
  let first = 0x811c9dc5;
  let second = 0x01000193 ^ 0x5bd1e995;
  for (let index = 0; index < value.length; index++) {
    const code = value.charCodeAt(index);
    first = Math.imul(first ^ code, 0x01000193);
    second = Math.imul(second ^ code, 0x01000193) ^ (second >>> 15);
  }
  // Double hashing needs an odd step so the probes do not collapse onto one bit.
  return [first >>> 0, (second | 1) >>> 0];
}
