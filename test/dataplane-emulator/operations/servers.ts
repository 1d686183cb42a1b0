/**
 * Tag Server: a backend's servers in haproxy.cfg (applied at runtime without a reload where dataplaneapi
 * does so) and the runtime servers of the running HAProxy (`show servers state`, `add/set/del server`).
 */
import { serverParamsWords, type Json } from '../cfg/objects.js';
import * as resources from '../resources.js';
import { ApiError } from '../store.js';
import {
  readConfiguration,
  writeConfiguration,
  type EmulatorParts,
  type Operations,
  type Reply,
} from './operation.js';

/** `add server` arguments for a server object, as dataplaneapi serialises them for HAProxy < 3.0. */
export function runtimeServerArguments(server: Json): string {
  const address = server.address as string;
  const host = address.includes(':') ? `[${address}]` : address;
  const words = [server.port ? `${host}:${server.port as number}` : host];
  const params = { ...server };
  delete params.name;
  delete params.address;
  delete params.port;
  if (typeof params.id === 'string') params.id = Number(params.id);
  words.push(...serverParamsWords(params));
  // Servers added at runtime start in maintenance before HAProxy 3.0; "disabled" maintenance asks for enabled.
  if (server.maintenance === 'disabled') words.push('enabled');
  return words.join(' ');
}

/**
 * dataplaneapi's PUT shortcut: when only weight, address, port or maintenance changed, `set server`
 * and answer 200 without a reload; undefined (→ reload) when other fields changed or a command failed.
 */
async function serverThroughRuntime(
  emulator: EmulatorParts,
  backend: string,
  name: string,
  next: Json,
  onDisk: Json,
): Promise<Reply | undefined> {
  const keys = new Set([...Object.keys(next), ...Object.keys(onDisk)]);
  const changed = [...keys].filter((key) => JSON.stringify(next[key]) !== JSON.stringify(onDisk[key]));
  if (changed.length === 0) return { status: 200, body: next };
  const supported = new Set(['weight', 'address', 'port', 'maintenance']);
  if (!changed.every((key) => supported.has(key))) return undefined;
  const target = `${backend}/${name}`;
  const ok = (answer: string) => answer.trim() === '' || /changed from|no need to change/i.test(answer);
  try {
    if (changed.includes('weight') && typeof next.weight === 'number') {
      await emulator.haproxy.stats(
        `set server ${target} weight ${next.weight}`,
        (answer) => answer.trim() !== '',
      );
    }
    if (changed.includes('address') || changed.includes('port')) {
      const port = typeof next.port === 'number' ? ` port ${next.port}` : '';
      await emulator.haproxy.stats(
        `set server ${target} addr ${next.address as string}${port}`,
        (answer) => !ok(answer),
      );
    }
    if (changed.includes('maintenance')) {
      const state = next.maintenance === 'enabled' ? 'maint' : 'ready';
      await emulator.haproxy.stats(`set server ${target} state ${state}`, (answer) => answer.trim() !== '');
    }
    return { status: 200, body: next };
  } catch (error) {
    emulator.logger.warn('runtime set server failed; reloading instead', { target, error });
    return undefined;
  }
}

async function serverStates(emulator: EmulatorParts, backend: string): Promise<Json[]> {
  const answer = await emulator.haproxy.stats(`show servers state ${backend}`);
  if (/no such backend|can't find backend/i.test(answer)) {
    throw new ApiError(404, `No such backend: ${backend}`);
  }
  const states: Json[] = [];
  for (const line of answer.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 20 || line.startsWith('#')) continue;
    const [beId, beName, srvId, srvName, address, opState, adminState, uweight, iweight] = fields;
    const admin = Number(adminState);
    states.push({
      name: srvName,
      id: srvId,
      address,
      port: Number(fields[18]) || null,
      admin_state: admin & 0x67 ? 'maint' : admin & 0x18 ? 'drain' : 'ready',
      operational_state: opState === '0' ? 'down' : opState === '3' ? 'stopping' : 'up',
      weight: Number(uweight),
      uweight: Number(uweight),
      iweight: Number(iweight),
      backend_id: Number(beId),
      backend_name: beName,
    });
  }
  return states;
}

async function serverState(emulator: EmulatorParts, backend: string, name: string): Promise<Json> {
  const found = (await serverStates(emulator, backend)).find((state) => state.name === name);
  if (!found) throw new ApiError(404, `Runtime server ${name} not found in backend ${backend}`);
  return found;
}

const configurationServers: Operations = {
  getAllServerBackend: async (emulator, context) =>
    readConfiguration(emulator, context, (document) =>
      resources.listNamed(document, 'backend', context.path.parent_name, 'server'),
    ),
  getServerBackend: async (emulator, context) =>
    readConfiguration(emulator, context, (document) =>
      resources.getNamed(document, 'backend', context.path.parent_name, 'server', context.path.name),
    ),
  createServerBackend: async (emulator, context) => {
    const backend = context.path.parent_name;
    const server = context.body as Json;
    return writeConfiguration(
      emulator,
      context,
      201,
      (document) => resources.createNamed(document, 'backend', backend, 'server', server),
      {
        // dataplaneapi: into a backend without default-server, `add server` at runtime and no reload.
        before: (document) => resources.hasDefaultServer(document, backend),
        apply: async (_result, hadDefaultServer) => {
          if (hadDefaultServer) return undefined;
          try {
            await emulator.haproxy.stats(
              `add server ${backend}/${server.name as string} ${runtimeServerArguments(server)}`,
              (answer) => !answer.includes('New server registered'),
            );
            return { status: 201, body: server };
          } catch (error) {
            emulator.logger.warn('runtime add server failed; reloading instead', { backend, error });
            return undefined;
          }
        },
      },
    );
  },
  replaceServerBackend: async (emulator, context) => {
    const backend = context.path.parent_name;
    const name = context.path.name;
    const next = { ...(context.body as Json), name };
    return writeConfiguration(
      emulator,
      context,
      200,
      (document) => resources.replaceNamed(document, 'backend', backend, 'server', name, next),
      {
        before: (document) => resources.getNamed(document, 'backend', backend, 'server', name),
        apply: async (_result, onDisk) => serverThroughRuntime(emulator, backend, name, next, onDisk as Json),
      },
    );
  },
  deleteServerBackend: async (emulator, context) =>
    writeConfiguration(emulator, context, 204, (document) =>
      resources.deleteNamed(document, 'backend', context.path.parent_name, 'server', context.path.name),
    ),
};

const runtimeServers: Operations = {
  getAllRuntimeServer: async (emulator, context) => ({
    status: 200,
    body: await serverStates(emulator, context.path.parent_name),
  }),
  getRuntimeServer: async (emulator, context) => ({
    status: 200,
    body: await serverState(emulator, context.path.parent_name, context.path.name),
  }),
  addRuntimeServer: async (emulator, context) => {
    const server = context.body as Json;
    const backend = context.path.parent_name;
    const answer = await emulator.haproxy.stats(
      `add server ${backend}/${server.name as string} ${runtimeServerArguments(server)}`,
    );
    if (answer.includes('New server registered')) return { status: 201, body: server };
    const message = answer.trim();
    if (/no such backend/i.test(message)) throw new ApiError(404, message);
    if (/already exists/i.test(message)) throw new ApiError(409, message);
    throw new ApiError(400, message);
  },
  replaceRuntimeServer: async (emulator, context) => {
    const backend = context.path.parent_name;
    const name = context.path.name;
    const target = `${backend}/${name}`;
    const wanted = context.body as Json;
    const current = await serverState(emulator, backend, name);
    const failed = (answer: string) =>
      answer.trim() !== '' && !/changed from|no need to change/i.test(answer);
    if (wanted.operational_state && wanted.operational_state !== current.operational_state) {
      await emulator.haproxy.stats(
        `set server ${target} health ${wanted.operational_state as string}`,
        failed,
      );
    }
    if (wanted.admin_state && wanted.admin_state !== current.admin_state) {
      await emulator.haproxy.stats(`set server ${target} state ${wanted.admin_state as string}`, failed);
    }
    if (typeof wanted.weight === 'number' && wanted.weight !== current.weight) {
      await emulator.haproxy.stats(`set server ${target} weight ${wanted.weight}`, failed);
    }
    const address = (wanted.address as string | undefined) ?? (current.address as string);
    const port = (wanted.port as number | undefined) ?? (current.port as number | undefined);
    if (address !== current.address || port !== current.port) {
      await emulator.haproxy.stats(
        `set server ${target} addr ${address}${port ? ` port ${port}` : ''}`,
        failed,
      );
    }
    return { status: 200, body: await serverState(emulator, backend, name) };
  },
  deleteRuntimeServer: async (emulator, context) => {
    const backend = context.path.parent_name;
    const name = context.path.name;
    const state = await serverState(emulator, backend, name);
    const target = `${backend}/${name}`;
    if (state.admin_state !== 'maint') await emulator.haproxy.stats(`disable server ${target}`);
    const answer = await emulator.haproxy.stats(`del server ${target}`);
    if (!/server deleted/i.test(answer)) throw new ApiError(400, answer.trim());
    return { status: 204 };
  },
};

export const serverOperations: Operations = { ...configurationServers, ...runtimeServers };
