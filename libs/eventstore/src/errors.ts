/** Another writer appended to the aggregate since it was read: reload, decide again, retry. */
export class ConcurrencyError extends Error {
  constructor(
    readonly subject: string,
    readonly expectedSequence: number,
    readonly actualSequence: number | undefined,
  ) {
    super(
      `concurrent append to ${subject}: expected last sequence ${expectedSequence}` +
        (actualSequence === undefined ? '' : `, found ${actualSequence}`),
    );
    this.name = 'ConcurrencyError';
  }
}
