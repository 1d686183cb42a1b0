import { isTransientDatabaseError } from './transient.js';

describe('isTransientDatabaseError', () => {
  it.each([
    [{ code: '08006' }, true],
    [{ driverError: { code: '57P01' } }, true],
    [{ code: 'ECONNREFUSED' }, true],
    [new Error('Connection terminated unexpectedly'), true],
    [{ code: '23505' }, false],
    [new Error('cannot project this agent'), false],
  ])('%j → %s', (error, transient) => {
    expect(isTransientDatabaseError(error)).toBe(transient);
  });
});
