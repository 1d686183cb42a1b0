import { fromSeed } from '@nats-io/nkeys';

/** The public key of a NATS user seed (the only part of the key pair that leaves the agent). */
export function natsPublicKeyOf(seed: string): string {
  return fromSeed(new TextEncoder().encode(seed)).getPublicKey();
}
