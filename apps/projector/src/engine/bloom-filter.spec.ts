import { StringBloomFilter } from './bloom-filter.js';

test('never answers "absent" for a key it was given', () => {
  const filter = new StringBloomFilter(16);
  const keys = Array.from({ length: 20_000 }, (_, index) => `route-${index}-${(index * 7919) % 1000}`);
  for (const key of keys) filter.add(key);
  expect(keys.filter((key) => !filter.mayContain(key))).toEqual([]);
});

test('answers "maybe" for few keys it was not given, at its designed load', () => {
  const filter = new StringBloomFilter(20);
  for (let index = 0; index < 100_000; index++) filter.add(`app-${index}.apps.example.com`);
  let wrong = 0;
  for (let index = 0; index < 100_000; index++)
    if (filter.mayContain(`other-${index}.apps.example.com`)) wrong++;
  // 2^20 bits, 4 hashes, 100k keys: about 1.2 % in theory.
  expect(wrong / 100_000).toBeLessThan(0.03);
});

test('an empty filter holds nothing', () => {
  const filter = new StringBloomFilter();
  expect(filter.mayContain('')).toBe(false);
  expect(filter.mayContain('anything')).toBe(false);
  expect(() => new StringBloomFilter(40)).toThrow(/log2Bits/);
});
