import { describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { UndecodableEventError } from '#contracts';
import { refusal } from '#testing';
import { decideQuarantine, decodeFailure, UndecodableLogEntryError } from './quarantine.js';

const payload = new TextEncoder().encode('{"not":"an event"}');
const undecodable = {
  kind: 'undecodable' as const,
  subject: 'events.hostname.a_apps_example_com',
  payload,
  error: 'not an event envelope',
};
const command = { sequence: 42, reason: 'damaged by a bug' };

describe('decideQuarantine', () => {
  it('sets aside an undecodable message with the digest of its bytes, its error and the reason', () => {
    expect(decideQuarantine(false, undecodable, command)).toEqual({
      sequence: 42,
      subject: 'events.hostname.a_apps_example_com',
      payloadSha256: createHash('sha256').update(payload).digest('hex'),
      error: 'not an event envelope',
      reason: 'damaged by a bug',
    });
  });

  it('changes nothing the second time', () => {
    expect(decideQuarantine(true, undecodable, command)).toBeNull();
  });

  it('refuses to hide a message that decodes (409) or one that is not there (404), naming the sequence', () => {
    const good = refusal(() =>
      decideQuarantine(false, { kind: 'decodable', subject: 'events.agent.a' }, command),
    );
    expect([good.code, good.field]).toEqual(['conflict', 'sequence']);
    expect(good.message).toContain('events.agent.a decodes');
    const missing = refusal(() => decideQuarantine(false, { kind: 'missing' }, command));
    expect([missing.code, missing.field]).toEqual(['not_found', 'sequence']);
  });

  it('keeps the stored error short', () => {
    const long = decideQuarantine(false, { ...undecodable, error: 'x'.repeat(2_000) }, command);
    expect(long?.error).toHaveLength(500);
  });
});

describe('the error of an undecodable message', () => {
  it('names the sequence and subject and says how to quarantine it', () => {
    const error = new UndecodableLogEntryError(7, 'events.route.r1', 'unknown event type Nope');
    expect(error.message).toContain('the event at sequence 7 on events.route.r1 cannot be decoded');
    expect(error.message).toContain('cloudlunacy events quarantine 7');
    expect(error.toBody().error).toBe('internal');
  });

  it('says why in one line, for JSON and for envelope failures', () => {
    let syntax: unknown;
    try {
      JSON.parse('{');
    } catch (error) {
      syntax = error;
    }
    expect(decodeFailure(syntax)).toMatch(/^not JSON: /);
    expect(decodeFailure(new UndecodableEventError('unknown event type X', 'type'))).toBe(
      'unknown event type X',
    );
  });
});
