/**
 * Whether a database error is about the database being unreachable or busy (retry the whole batch
 * later) rather than about the event (a poison event, to be isolated and dead-lettered).
 */
export function isTransientDatabaseError(error: unknown): boolean {
  const candidate = error as
    { code?: unknown; driverError?: { code?: unknown }; message?: unknown } | undefined;
  const code = String(candidate?.driverError?.code ?? candidate?.code ?? '');
  // SQLSTATE classes: 08 connection, 53 insufficient resources, 57P admin/crash shutdown, 40 serialization/deadlock.
  if (/^(08|53|57P|40001|40P01)/.test(code)) return true;
  if (/^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENOTFOUND)$/.test(code)) return true;
  const message = String(candidate?.message ?? '');
  return /Connection terminated|connection is closed|Client has encountered a connection error|timeout exceeded when trying to connect/i.test(
    message,
  );
}
