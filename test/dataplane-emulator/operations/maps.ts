/**
 * Tag Maps: the maps the running HAProxy has loaded, changed through the stats socket (`show/add/set/del/
 * clear map`, `prepare/commit map` for large payloads); `force_sync` writes the result to the map file.
 */
import { rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { hasControlCharacter } from '#contracts';
import type { Json } from '../cfg/objects.js';
import { ApiError, atomicWrite } from '../store.js';
import type { EmulatorParts, Operations } from './operation.js';

interface LoadedMap {
  id: string;
  file: string;
  description: string;
}

/** Map keys and values travel as CLI words: no whitespace, no control characters. */
function assertMapWord(value: unknown, field: string): string {
  if (typeof value !== 'string' || value === '' || /\s/.test(value) || hasControlCharacter(value)) {
    throw new ApiError(400, `${field} must be a non-empty string without whitespace`);
  }
  return value;
}

/** Splits `key value` lines into pieces of at most `limit` bytes, never inside a line. */
export function payloadPieces(payload: string, limit: number): string[] {
  const pieces: string[] = [];
  let current = '';
  for (const line of payload.split(/(?<=\n)/)) {
    if (current !== '' && Buffer.byteLength(current) + Buffer.byteLength(line) > limit) {
      pieces.push(current);
      current = '';
    }
    current += line;
  }
  if (current !== '') pieces.push(current);
  return pieces;
}

/** `<maps_dir>/<name>.map`, or `#<id>` as given. */
function mapFile(emulator: EmulatorParts, name: string): string {
  if (name.startsWith('#')) return name;
  if (name.includes('/')) throw new ApiError(400, `invalid map name ${name}`);
  return join(emulator.config.mapsDir, name.endsWith('.map') ? name : `${name}.map`);
}

async function loadedMaps(emulator: EmulatorParts): Promise<LoadedMap[]> {
  const answer = await emulator.haproxy.stats('show map');
  const maps: LoadedMap[] = [];
  for (const line of answer.split('\n')) {
    const match = /^(\d+)\s+\(([^)]*)\)\s*(.*)$/.exec(line.trim());
    if (match) maps.push({ id: match[1], file: match[2], description: match[3] });
  }
  return maps;
}

async function loadedMap(emulator: EmulatorParts, name: string): Promise<LoadedMap> {
  const reference = mapFile(emulator, name);
  const found = (await loadedMaps(emulator)).find((map) =>
    reference.startsWith('#') ? `#${map.id}` === reference : map.file === reference,
  );
  if (!found) throw new ApiError(404, `map ${name} is not loaded by HAProxy`);
  return found;
}

function mapView(emulator: EmulatorParts, map: LoadedMap): Json {
  const managed = dirname(map.file) === emulator.config.mapsDir;
  return {
    id: map.id,
    file: map.file,
    description: map.description,
    ...(managed ? { storage_name: basename(map.file) } : {}),
  };
}

async function mapEntries(emulator: EmulatorParts, file: string): Promise<Json[]> {
  const answer = await emulator.haproxy.stats(`show map ${file}`);
  if (/unknown map identifier/i.test(answer)) throw new ApiError(404, answer.trim());
  const entries: Json[] = [];
  for (const line of answer.split('\n')) {
    const match = /^(0x[0-9a-f]+)\s+(\S+)\s?(.*)$/i.exec(line.trim());
    if (match) entries.push({ id: match[1], key: match[2], value: match[3] });
  }
  return entries;
}

async function mapLookup(emulator: EmulatorParts, file: string, key: string): Promise<Json | undefined> {
  const answer = await emulator.haproxy.stats(`get map ${file} ${key}`);
  if (/unknown map identifier/i.test(answer)) throw new ApiError(404, answer.trim());
  if (!/found=yes/.test(answer)) return undefined;
  const value = /value="((?:[^"\\]|\\.)*)"/.exec(answer)?.[1] ?? '';
  return { id: key, key, value };
}

/** force_sync: writes the map as HAProxy holds it to its file. */
async function syncMap(emulator: EmulatorParts, file: string): Promise<void> {
  const map = file.startsWith('#') ? await loadedMap(emulator, file) : { file };
  const entries = await mapEntries(emulator, map.file);
  const text = entries.map((entry) => `${entry.key as string} ${entry.value as string}\n`).join('');
  await atomicWrite(map.file, text);
}

export const mapOperations: Operations = {
  getAllRuntimeMapFiles: async (emulator, context) => {
    const all = await loadedMaps(emulator);
    const include = context.query.include_unmanaged === true;
    return {
      status: 200,
      body: all
        .filter((map) => include || dirname(map.file) === emulator.config.mapsDir)
        .map((map) => mapView(emulator, map)),
    };
  },
  getOneRuntimeMap: async (emulator, context) => ({
    status: 200,
    body: mapView(emulator, await loadedMap(emulator, context.path.name)),
  }),
  clearRuntimeMap: async (emulator, context) => {
    const map = await loadedMap(emulator, context.path.name);
    await emulator.haproxy.stats(`clear map ${map.file}`, (answer) => answer.trim() !== '');
    if (context.query.forceDelete === true) await rm(map.file, { force: true });
    else if (context.query.force_sync === true) await syncMap(emulator, map.file);
    return { status: 204 };
  },
  addPayloadRuntimeMap: async (emulator, context) => {
    const file = mapFile(emulator, context.path.name);
    const entries = context.body as Json[];
    const payload = entries
      .map((entry) => `${assertMapWord(entry.key, 'key')} ${assertMapWord(entry.value, 'value')}\n`)
      .join('');
    const isError = (answer: string) => answer.trim() !== '';
    if (Buffer.byteLength(payload) > 8192) {
      // Large payloads replace the map atomically (prepare, fill the new version, commit).
      const prepared = await emulator.haproxy.stats(`prepare map ${file}`);
      const version = /New version created:\s*(\d+)/.exec(prepared)?.[1];
      if (!version) throw new ApiError(/unknown map/i.test(prepared) ? 404 : 400, prepared.trim());
      // The CLI takes a payload of at most one buffer (tune.bufsize, 16 KiB by default): send it in
      // line-aligned pieces, as client-native does, then commit them all at once.
      for (const piece of payloadPieces(payload, 8192)) {
        await emulator.haproxy.stats(`add map @${version} ${file} <<\n${piece}`, isError);
      }
      await emulator.haproxy.stats(`commit map @${version} ${file}`, isError);
    } else if (payload !== '') {
      const answer = await emulator.haproxy.stats(`add map ${file} <<\n${payload}`);
      if (/unknown map identifier/i.test(answer)) throw new ApiError(404, answer.trim());
      if (isError(answer)) throw new ApiError(400, answer.trim());
    }
    if (context.query.force_sync === true) await syncMap(emulator, file);
    return { status: 201, body: entries };
  },
  showRuntimeMap: async (emulator, context) => ({
    status: 200,
    body: await mapEntries(emulator, mapFile(emulator, context.path.parent_name)),
  }),
  addMapEntry: async (emulator, context) => {
    const file = mapFile(emulator, context.path.parent_name);
    const entry = context.body as Json;
    const key = assertMapWord(entry.key, 'key');
    const value = assertMapWord(entry.value, 'value');
    if (await mapLookup(emulator, file, key))
      throw new ApiError(409, `key ${key} already exists in map ${file}`);
    await emulator.haproxy.stats(`add map ${file} ${key} ${value}`, (answer) => answer.trim() !== '');
    if (context.query.force_sync === true) await syncMap(emulator, file);
    return { status: 201, body: { key, value } };
  },
  getRuntimeMapEntry: async (emulator, context) => {
    const found = await mapLookup(emulator, mapFile(emulator, context.path.parent_name), context.path.id);
    if (!found) throw new ApiError(404, `key ${context.path.id} not found`);
    return { status: 200, body: found };
  },
  replaceRuntimeMapEntry: async (emulator, context) => {
    const file = mapFile(emulator, context.path.parent_name);
    const key = assertMapWord(context.path.id, 'id');
    const value = assertMapWord((context.body as Json).value, 'value');
    const answer = await emulator.haproxy.stats(`set map ${file} ${key} ${value}`);
    if (/not found|unknown map/i.test(answer)) throw new ApiError(404, answer.trim());
    if (answer.trim() !== '') throw new ApiError(400, answer.trim());
    const found = await mapLookup(emulator, file, key);
    if (!found) throw new ApiError(404, `key ${key} not found`);
    if (context.query.force_sync === true) await syncMap(emulator, file);
    return { status: 200, body: found };
  },
  deleteRuntimeMapEntry: async (emulator, context) => {
    const file = mapFile(emulator, context.path.parent_name);
    const key = assertMapWord(context.path.id, 'id');
    const answer = await emulator.haproxy.stats(`del map ${file} ${key}`);
    if (/not found|unknown map/i.test(answer)) throw new ApiError(404, answer.trim());
    if (answer.trim() !== '') throw new ApiError(400, answer.trim());
    if (context.query.force_sync === true) await syncMap(emulator, file);
    return { status: 204 };
  },
};
