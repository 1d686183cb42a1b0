import { ApiClient, clean, safeJsonLine, withHint } from './api-client.js';
import { UsageError } from './command.js';
import { stringOption, type Values } from './deployment-output.js';

/** One line of output as the API sends it (`seq`: the stream sequence of its batch). */
interface LogLine {
  seq?: number;
  t: string;
  s: string;
  x: string;
}

/** Options of `deployments logs` and `apps logs`. */
export const logsOptions = {
  follow: { type: 'boolean', short: 'f' },
  tail: { type: 'string' },
} as const;

/** `--tail N`: a whole number of lines (the API says how many at most). */
function tailOption(values: Values): number | undefined {
  const raw = stringOption(values, 'tail');
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw) || Number(raw) < 1)
    throw new UsageError('--tail: must be a whole number of lines, 1 or more');
  return Number(raw);
}

/** `<time> <stream> <text>` for people (the text cleaned of control characters), a JSON line for machines. */
export function logLineText(line: LogLine, json: boolean): string {
  if (json) return safeJsonLine(line);
  return `${clean(line.t)} ${clean(line.s).padEnd(5)} ${clean(line.x)}`;
}

/**
 * Prints the output of `path` (`deployments/{id}/logs` or `apps/{name}/logs`): the last lines, or with
 * `--follow` the event stream, line by line as they come, until its `end` (exit code 0) or Ctrl-C. The
 * stream resumes after a dropped connection without repeats (`ApiClient.events`).
 */
export async function printLogs(
  client: ApiClient,
  path: string,
  values: Values,
  hintOf: (field: string) => string | undefined,
): Promise<void> {
  const json = values.json === true;
  const query = { tail: tailOption(values) };
  const hint = (field: string) => (field === 'tail' ? '--tail' : hintOf(field));
  try {
    if (values.follow !== true) {
      const answer = await client.request<{ lines: LogLine[] }>('GET', path, { query });
      for (const line of answer.body.lines) console.log(logLineText(line, json));
      return;
    }
    await follow(client, path, query, json);
  } catch (error) {
    throw withHint(error, hint);
  }
}

async function follow(
  client: ApiClient,
  path: string,
  query: Record<string, number | undefined>,
  json: boolean,
): Promise<void> {
  const stop = new AbortController();
  const interrupt = () => stop.abort();
  // Ctrl-C ends the stream (its connection closed), not the process in the middle of a line.
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  try {
    for await (const event of client.events(path, { query, signal: stop.signal })) {
      if (event.event === 'lines') {
        const seq = event.id === undefined ? undefined : Number(event.id);
        for (const line of parsed<{ lines?: LogLine[] }>(event.data).lines ?? []) {
          console.log(logLineText({ seq, ...line }, json));
        }
      } else if (event.event === 'end') {
        const end = parsed<{ deploymentId?: string; status?: string }>(event.data);
        // On stderr: stdout holds the lines alone.
        if (!json) {
          console.error(`end of the output of deployment ${clean(end.deploymentId)} (${clean(end.status)})`);
        }
        return;
      } else if (event.event === 'expired' || event.event === 'unauthorized') {
        const { message } = parsed<{ message?: string }>(event.data);
        throw new Error(`the stream ended: ${clean(message ?? event.event)}`);
      }
      // `error` (the server lost its source): the connection closes next, and events() opens it again.
    }
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
  }
}

function parsed<T>(data: string): Partial<T> {
  try {
    const value = JSON.parse(data) as unknown;
    return value && typeof value === 'object' ? (value as Partial<T>) : {};
  } catch {
    return {};
  }
}
