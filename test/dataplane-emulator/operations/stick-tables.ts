/**
 * Tag StickTable: entries of the stick tables the running HAProxy holds, read through the stats socket
 * (`show table <name> [key <key>]`).
 */
import { hasControlCharacter } from '#contracts';
import type { Json } from '../cfg/objects.js';
import { ApiError } from '../store.js';
import type { Operations } from './operation.js';

/** Counters printed as `name=value` after the key, as the entry's fields (`use` is whether it is in use). */
export function parseShowTable(answer: string): Json[] {
  const entries: Json[] = [];
  for (const line of answer.split('\n')) {
    const match = /^(0x[0-9a-f]+):\s+key=(\S+)\s+(.*)$/i.exec(line.trim());
    if (!match) continue;
    const entry: Json = { id: match[1], key: match[2] };
    for (const pair of match[3].split(/\s+/)) {
      const [name, value] = pair.split('=');
      if (value === undefined || !/^-?\d+$/.test(value)) continue;
      if (name === 'use') entry.use = Number(value) > 0;
      else if (['exp', 'conn_cur', 'conn_cnt', 'http_req_cnt'].includes(name)) entry[name] = Number(value);
    }
    entries.push(entry);
  }
  return entries;
}

function word(value: string, field: string): string {
  if (value === '' || /\s/.test(value) || hasControlCharacter(value)) {
    throw new ApiError(400, `${field} must be a non-empty string without whitespace`);
  }
  return value;
}

export const stickTableOperations: Operations = {
  getStickTableEntries: async (emulator, context) => {
    const name = word(context.path.parent_name, 'parent_name');
    const key = context.query.key;
    const command = `show table ${name}${typeof key === 'string' ? ` key ${word(key, 'key')}` : ''}`;
    const answer = await emulator.haproxy.stats(command);
    if (/unknown table|no such table/i.test(answer)) throw new ApiError(404, `stick table ${name} not found`);
    return { status: 200, body: parseShowTable(answer) };
  },
};
