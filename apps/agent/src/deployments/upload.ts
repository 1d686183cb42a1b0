import { createHash } from 'node:crypto';
import { closeSync, constants, openSync } from 'node:fs';
import { chmod, chown, lstat, mkdtemp, open, readFile, rm, stat, unlink } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ApiError } from '../api-client.js';
import { spawnIsolated, type IsolationMode } from './isolation.js';
import {
  checkTarListing,
  TAR_MAX_ENTRIES,
  TAR_MAX_UNPACKED_BYTES,
  TarRefused,
  type TarListing,
  type TarListingLimits,
} from './upload-listing.js';

export { checkTarListing, TarRefused, type TarEntry, type TarListing } from './upload-listing.js';

/**
 * The agent's side of an uploaded source (docs/deployments.md, Uploads): download the tarball of a
 * deployment from the API, check it against the deployment's spec, list it, check the listing, and only
 * then extract it as the app's uid. Each failure is an error whose message is the reason the worker
 * reports at `fetched`.
 */

/** The upload a deployment names (`DeploymentRequested.upload`, in the claim's answer). */
export interface UploadRef {
  uploadId: string;
  sha256: string;
  bytes: number;
}

/** A download or a tarball that is not what the deployment names. */
export class UploadFailed extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UploadFailed';
  }
}

export interface DownloadUploadOptions {
  /** The API's base URL (as for `ApiClient`), e.g. `https://front.example.com`. */
  apiUrl: string;
  /** The agent's access token: only the deployment's agent may download its source. */
  accessToken: string;
  deploymentId: string;
  upload: UploadRef;
  /** Where the tarball goes; created 0600, must not exist (removed again when the download fails). */
  file: string;
  /** The local address requests leave from (the agent's public address), as for `ApiClient`. */
  localAddress?: string;
  /** The longest silence of the connection, in milliseconds (default 30 s). */
  idleTimeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * Streams `GET /api/v1/deployments/{id}/source` to `file`: at most `upload.bytes` bytes are written,
 * and the SHA-256 of what came must be `upload.sha256`. A 4xx/5xx is an `ApiError` (4xx final);
 * a short, long or different body is an `UploadFailed`. node:http rather than fetch: fetch cannot
 * choose the local address.
 */
export async function downloadUpload(o: DownloadUploadOptions): Promise<{ bytes: number; sha256: string }> {
  const url = new URL(`/api/v1/deployments/${encodeURIComponent(o.deploymentId)}/source`, o.apiUrl);
  const handle = await open(o.file, 'wx', 0o600);
  let done = false;
  try {
    const result = await new Promise<{ bytes: number; sha256: string }>((resolve, reject) => {
      const hash = createHash('sha256');
      let bytes = 0;
      let writing: Promise<unknown> = Promise.resolve();
      const request = (url.protocol === 'https:' ? httpsRequest : httpRequest)(
        url,
        {
          method: 'GET',
          headers: { authorization: `Bearer ${o.accessToken}`, accept: 'application/gzip' },
          timeout: o.idleTimeoutMs ?? 30_000,
          ...(o.localAddress ? { localAddress: o.localAddress } : {}),
          ...(o.signal ? { signal: o.signal } : {}),
        },
        (response) => {
          const status = response.statusCode ?? 0;
          if (status !== 200) {
            const chunks: Buffer[] = [];
            response.on('data', (chunk: Buffer) => {
              if (chunks.length < 16) chunks.push(chunk);
            });
            response.on('end', () => {
              const text = Buffer.concat(chunks).toString('utf8').slice(0, 2000);
              let body: Record<string, string>;
              try {
                body = JSON.parse(text) as Record<string, string>;
              } catch {
                body = { message: text.slice(0, 200) };
              }
              reject(new ApiError(status, body));
            });
            return;
          }
          const announced = response.headers['x-content-sha256'];
          if (typeof announced === 'string' && announced !== o.upload.sha256) {
            response.destroy();
            reject(
              new UploadFailed(
                `the API serves an upload of SHA-256 ${announced.slice(0, 64)}, not ${o.upload.sha256}`,
              ),
            );
            return;
          }
          response.on('data', (chunk: Buffer) => {
            bytes += chunk.length;
            if (bytes > o.upload.bytes) {
              response.destroy();
              reject(
                new UploadFailed(`the upload is longer than the ${o.upload.bytes} bytes it should have`),
              );
              return;
            }
            hash.update(chunk);
            // Writes are chained (in order) and the socket paused while one is under way.
            response.pause();
            writing = writing
              .then(() => handle.write(chunk))
              .then(
                () => response.resume(),
                (error: unknown) => {
                  response.destroy();
                  reject(error instanceof Error ? error : new Error(String(error)));
                },
              );
          });
          response.on('aborted', () => reject(new UploadFailed('the download was cut off')));
          response.on('error', reject);
          response.on('end', () => {
            void writing.then(() => {
              if (bytes !== o.upload.bytes) {
                reject(
                  new UploadFailed(`the upload has ${bytes} bytes, not the ${o.upload.bytes} it should have`),
                );
                return;
              }
              const sha256 = hash.digest('hex');
              if (sha256 !== o.upload.sha256) {
                reject(new UploadFailed(`the upload's SHA-256 is ${sha256}, not ${o.upload.sha256}`));
                return;
              }
              resolve({ bytes, sha256 });
            });
          });
        },
      );
      request.on('timeout', () => request.destroy(new UploadFailed(`no data from ${url.origin} in time`)));
      request.on('error', reject);
      request.end();
    });
    await handle.sync();
    done = true;
    return result;
  } finally {
    await handle.close();
    if (!done) await unlink(o.file).catch(() => undefined);
  }
}

export interface ExtractUploadOptions {
  /**
   * The downloaded tarball: a regular file of the agent's, in a directory only the agent can write (so
   * the app cannot swap it between the listing and the extraction). Its group becomes the app's and its
   * mode 0640, so the app's uid can read it; the directories above it must let that uid through (x).
   */
  file: string;
  /** The empty directory the source goes into, owned by the app's uid. */
  workspace: string;
  isolation: IsolationMode;
  uid: number;
  gid: number;
  nofile: number;
  nproc: number;
  cgroupProcsFiles?: string[];
  /** Defaults: 100,000 entries and 1 GiB from the listed sizes. */
  limits?: TarListingLimits;
  /** For each of the two tar runs (default 5 minutes). */
  timeoutMs?: number;
}

/** The longest listing read: 100,000 entries of ordinary names are far below it. */
const LISTING_MAX_BYTES = 64 * 1024 * 1024;
const TAR_ENV = { PATH: '/usr/bin:/bin', LC_ALL: 'C' };

/**
 * Lists the tarball as the app's uid, refuses it when the listing says so (`TarRefused`, nothing
 * extracted), then extracts it as that uid with `tar -xzf <file> --no-same-owner --no-same-permissions
 * -C <workspace>`. Returns the checked listing.
 */
export async function extractUpload(o: ExtractUploadOptions): Promise<TarListing> {
  await prepareArchive(o);
  const scratch = await mkdtemp(join(tmpdir(), 'cl-upload-'));
  try {
    const listingFile = join(scratch, 'listing');
    const listed = await runTar(
      ['tar', '-tvzf', o.file, '--quoting-style=escape', '--numeric-owner', '--absolute-names'],
      o,
      listingFile,
    );
    if (listed.outputTooLong)
      throw new TarRefused(`the tarball's listing is longer than ${LISTING_MAX_BYTES} bytes`);
    // What was listed is checked even when tar failed: a refusal says more than "unexpected EOF".
    const text = await readFile(listingFile, 'utf8');
    const limits = o.limits ?? { maxEntries: TAR_MAX_ENTRIES, maxUnpackedBytes: TAR_MAX_UNPACKED_BYTES };
    const listing = checkTarListing(
      listed.code === 0 ? text : text.slice(0, text.lastIndexOf('\n') + 1),
      limits,
    );
    if (listed.code !== 0)
      throw new UploadFailed(`tar cannot list the upload: ${listed.stderr || `exit ${String(listed.code)}`}`);
    const extracted = await runTar(
      ['tar', '-xzf', o.file, '--no-same-owner', '--no-same-permissions', '-C', o.workspace],
      o,
      join(scratch, 'extract.out'),
    );
    if (extracted.code !== 0) {
      throw new UploadFailed(
        `tar cannot extract the upload: ${extracted.stderr || `exit ${String(extracted.code)}`}`,
      );
    }
    return listing;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** The archive must be the agent's, in a directory the app cannot write; then the app's group may read it. */
async function prepareArchive(o: ExtractUploadOptions): Promise<void> {
  const self = process.getuid?.() ?? 0;
  const [file, parent] = [await lstat(o.file), await stat(dirname(o.file))];
  if (!file.isFile()) throw new UploadFailed(`${o.file} is not a regular file`);
  if (file.uid !== self || parent.uid !== self || (parent.mode & 0o022) !== 0) {
    throw new UploadFailed(
      `${o.file} must be the agent's, in a directory only the agent can write (the app could swap it)`,
    );
  }
  if (o.isolation === 'uid') await chown(o.file, self, o.gid);
  await chmod(o.file, 0o640);
}

interface TarRun {
  code: number | null;
  stderr: string;
  outputTooLong: boolean;
}

/** One tar as the app's uid: stdout to `outFile`, bounded in size and time; killed with its group past either. */
async function runTar(argv: string[], o: ExtractUploadOptions, outFile: string): Promise<TarRun> {
  const errFile = `${outFile}.err`;
  const out = openSync(outFile, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  const err = openSync(errFile, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  let outputTooLong = false;
  let timedOut = false;
  try {
    const child = spawnIsolated(argv, {
      isolation: o.isolation,
      uid: o.uid,
      gid: o.gid,
      cwd: o.workspace,
      env: TAR_ENV,
      nofile: o.nofile,
      nproc: o.nproc,
      ...(o.cgroupProcsFiles ? { cgroupProcsFiles: o.cgroupProcsFiles } : {}),
      stdout: out,
      stderr: err,
    });
    const killGroup = () => {
      if (child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // Gone already.
        }
      }
    };
    const watch = setInterval(() => {
      void stat(outFile).then(
        (info) => {
          if (info.size > LISTING_MAX_BYTES) {
            outputTooLong = true;
            killGroup();
          }
        },
        () => undefined,
      );
    }, 200);
    const deadline = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, o.timeoutMs ?? 300_000);
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on('error', reject);
      child.on('exit', (exitCode) => resolve(exitCode));
    }).finally(() => {
      clearInterval(watch);
      clearTimeout(deadline);
    });
    if (timedOut) throw new UploadFailed(`tar did not finish within ${o.timeoutMs ?? 300_000} ms`);
    const stderr = (await readFile(errFile, 'utf8')).trim().split('\n').slice(-5).join('; ').slice(0, 1000);
    return { code, stderr, outputTooLong };
  } finally {
    closeSync(out);
    closeSync(err);
  }
}
