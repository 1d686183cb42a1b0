import { restartDelayMs, STABLE_AFTER_MS } from './manager.js';

describe('restartDelayMs', () => {
  it('doubles from one second: 1 s, 2 s, 4 s, 8 s, 16 s, 32 s', () => {
    expect([0, 1, 2, 3, 4, 5].map(restartDelayMs)).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 32_000]);
  });

  it('is capped at a minute, however many failures', () => {
    expect(restartDelayMs(6)).toBe(60_000);
    expect(restartDelayMs(7)).toBe(60_000);
    expect(restartDelayMs(50)).toBe(60_000);
    expect(restartDelayMs(10_000)).toBe(60_000);
  });

  it('never shrinks as failures grow', () => {
    for (let failures = 1; failures < 20; failures++)
      expect(restartDelayMs(failures)).toBeGreaterThanOrEqual(restartDelayMs(failures - 1));
  });

  it('a release counts as stable after a minute of running', () => {
    expect(STABLE_AFTER_MS).toBe(60_000);
  });
});
