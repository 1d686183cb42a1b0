/** Tag Transactions: start, list, read, delete and commit (a commit reloads, as dataplaneapi does). */
import type { StoredTransaction } from '../store.js';
import { forceReload, type Operations } from './operation.js';

function view(transaction: StoredTransaction) {
  return { _version: transaction.version, id: transaction.id, status: transaction.status };
}

export const transactionOperations: Operations = {
  getTransactions: async (emulator, context) => ({
    status: 200,
    body: emulator.store.list(context.query.status as string | undefined).map(view),
  }),
  startTransaction: async (emulator, context) => ({
    status: 201,
    body: view(await emulator.store.start(context.query.version as number)),
  }),
  getTransaction: async (emulator, context) => ({
    status: 200,
    body: view(emulator.store.get(context.path.id)),
  }),
  deleteTransaction: async (emulator, context) => {
    await emulator.store.delete(context.path.id);
    return { status: 204 };
  },
  commitTransaction: async (emulator, context) => {
    const { transaction } = await emulator.store.commit(context.path.id);
    const body = view(transaction);
    if (context.query.force_reload === true) {
      await forceReload(emulator);
      return { status: 200, body };
    }
    return { status: 202, body, headers: { 'Reload-ID': emulator.reloads.reload() } };
  },
};
