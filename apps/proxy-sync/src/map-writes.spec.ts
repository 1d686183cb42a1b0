import { describe, expect, it } from '@jest/globals';
import type { MapEntry, MapPlan } from '#haproxy';
import { chooseMapWrite, verifyEach } from './map-writes.js';

const limits = { bulkAbove: 200, appendAbove: 8, verifyEachUpTo: 64 };

function entries(count: number, prefix = 'app'): MapEntry[] {
  return Array.from({ length: count }, (_, index) => ({
    key: `${prefix}${index}.apps.example.com`,
    value: `be_dyn_http|10.0.${Math.floor(index / 250)}.${index % 250}|8080`,
  }));
}

const wantedOf = (list: MapEntry[]) => new Map(list.map(({ key, value }) => [key, value]));
const adding = (list: MapEntry[]): MapPlan => ({ add: list, set: [], del: [] });

describe('how the changes of a map are written', () => {
  it('changes a few entries one call each', () => {
    const add = entries(3);
    const write = chooseMapWrite(adding(add), wantedOf(add), limits);
    expect(write).toEqual({ kind: 'entries', del: [], add, set: [], append: false });
  });

  it('appends more new entries than one round of parallel calls in payloads', () => {
    const add = entries(9);
    expect(chooseMapWrite(adding(add), wantedOf(add), limits)).toMatchObject({
      kind: 'entries',
      append: true,
    });
    expect(chooseMapWrite(adding(add.slice(0, 8)), wantedOf(add), limits)).toMatchObject({ append: false });
  });

  it('replaces the whole map above bulkAbove changes when its payload is above 8 KiB', () => {
    const add = entries(201);
    const write = chooseMapWrite(adding(add), wantedOf(add), limits);
    expect(write).toEqual({ kind: 'replace', entries: add });
  });

  it('keeps to entries above bulkAbove when the payload is at most 8 KiB (the API would append it)', () => {
    const add = entries(201);
    const small = entries(10);
    expect(chooseMapWrite(adding(add), wantedOf(small), limits)).toMatchObject({ kind: 'entries' });
  });

  it('clears a map whose entries all go, above bulkAbove', () => {
    const del = entries(201).map(({ key }) => key);
    expect(chooseMapWrite({ add: [], set: [], del }, new Map(), limits)).toEqual({ kind: 'clear' });
    expect(chooseMapWrite({ add: [], set: [], del: del.slice(0, 200) }, new Map(), limits)).toMatchObject({
      kind: 'entries',
      del: del.slice(0, 200),
    });
  });

  it('reads each change back up to verifyEachUpTo changes, the whole map above', () => {
    expect(verifyEach(adding(entries(64)), limits)).toBe(true);
    expect(verifyEach(adding(entries(65)), limits)).toBe(false);
  });
});
