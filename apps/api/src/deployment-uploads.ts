import { createHash, randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { Objm, StorageType, type ObjectStore } from '@nats-io/obj';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import { DEPLOYMENT_UPLOADS_BUCKET } from '#auth';
import { DomainError, objectDigestHex, type UploadRef } from '#contracts';
import type { Logger } from '#platform';

/** What `POST /apps/{name}/deployments` takes as a tarball; JSON (or no body) is a request by ref. */
const TARBALL_TYPES = new Set(['application/gzip', 'application/x-gzip', 'application/octet-stream']);
const GZIP_MAGIC = [0x1f, 0x8b];

/**
 * Whether a deployment request carries a tarball: true for gzip (or octet-stream) bodies, false for JSON
 * or none; 415 for anything else, naming both.
 */
export function isTarballRequest(request: IncomingMessage): boolean {
  const contentType = request.headers['content-type'];
  if (contentType === undefined) return false;
  const type = contentType.split(';')[0]!.trim().toLowerCase();
  if (type === 'application/json') return false;
  if (TARBALL_TYPES.has(type)) return true;
  throw new DomainError(
    'unsupported',
    `content type "${type.slice(0, 60)}" is not taken: application/json (a ref) or application/gzip (a .tar.gz)`,
    'Content-Type',
  );
}

export interface UploadLimits {
  /** CL_DEPLOY_UPLOAD_MAX_BYTES: the largest tarball accepted. */
  maxBytes: number;
  /** CL_DEPLOY_UPLOAD_MAX_AGE_S: how long the bucket keeps one. */
  maxAgeS: number;
  /** CL_DEPLOY_UPLOAD_STORE_MAX_BYTES: all of them together (new ones are refused past it). */
  storeMaxBytes: number;
}

/**
 * Uploaded sources in the JetStream object store bucket `deployment-uploads` (one object per upload,
 * named by its id), shared by every front. The API provisions the bucket, stores tarballs as they come
 * (hashing and counting) and streams them back to the deployment's agent. It cannot purge (no running
 * process may): what no deployment uses, or what a client abandoned half way, goes with the max age.
 */
export class DeploymentUploads {
  private bucket?: Promise<ObjectStore>;
  private manager?: Promise<JetStreamManager>;

  constructor(
    private readonly connection: NatsConnection,
    readonly limits: UploadLimits,
    private readonly logger: Logger,
  ) {}

  private open(): Promise<ObjectStore> {
    this.bucket ??= new Objm(this.connection)
      .create(DEPLOYMENT_UPLOADS_BUCKET, {
        ttl: nanos(this.limits.maxAgeS * 1000),
        storage: StorageType.File,
        max_bytes: this.limits.storeMaxBytes,
        description: 'uploaded deployment sources (tarballs), kept for CL_DEPLOY_UPLOAD_MAX_AGE_S',
      })
      .catch((error: unknown) => {
        this.bucket = undefined;
        throw error;
      });
    return this.bucket;
  }

  /**
   * The size the request declares, checked before anything else is done with it: it must be declared
   * (411: a chunked body could only be counted while being stored) and within the limit (413).
   */
  declaredSize(request: IncomingMessage): number {
    const declared = request.headers['content-length'];
    if (declared === undefined || !/^\d+$/.test(declared)) {
      throw new DomainError(
        'length_required',
        'send the tarball with its Content-Length: the size is checked before anything is stored',
        'Content-Length',
      );
    }
    const bytes = Number(declared);
    if (bytes > this.limits.maxBytes) {
      throw new DomainError(
        'too_large',
        `the upload is ${bytes} bytes; at most ${this.limits.maxBytes} are taken (CL_DEPLOY_UPLOAD_MAX_BYTES)`,
        '(body)',
      );
    }
    if (bytes === 0) throw new DomainError('invalid', 'the body is empty: send the .tar.gz', '(body)');
    return bytes;
  }

  /**
   * Stores the request's body (of its `declaredSize`) as a new upload: it must be gzip data (415), and
   * the store must have room (503), both found before anything is written. Node delivers no more than
   * the declared length, and a body cut short fails the store.
   */
  async receive(request: IncomingMessage): Promise<UploadRef> {
    const bytes = this.declaredSize(request);
    const reader = bodyReader(request);
    try {
      return await this.store(request, reader, bytes);
    } finally {
      // Whatever is left of a refused body is the caller's to drain (or to leave).
      reader.release();
    }
  }

  private async store(request: IncomingMessage, reader: BodyReader, bytes: number): Promise<UploadRef> {
    // The first bytes before anything is stored: a body that is not gzip is refused with nothing written.
    let head = Buffer.alloc(0);
    while (head.length < GZIP_MAGIC.length) {
      const next = await reader.next();
      if (next === null) break;
      head = Buffer.concat([head, next]);
    }
    if (!GZIP_MAGIC.every((byte, index) => head[index] === byte)) {
      throw new DomainError('unsupported', 'the body is not gzip data: send a .tar.gz', 'Content-Type');
    }
    const hash = createHash('sha256');
    let counted = 0;
    const count = (chunk: Buffer) => {
      counted += chunk.length;
      if (counted > this.limits.maxBytes) {
        throw new DomainError(
          'too_large',
          `the upload is larger than ${this.limits.maxBytes} bytes`,
          '(body)',
        );
      }
      hash.update(chunk);
      return chunk;
    };
    let pending: Buffer | undefined = head;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          if (pending) {
            controller.enqueue(count(pending));
            pending = undefined;
            return;
          }
          const next = await reader.next();
          if (next === null) controller.close();
          else controller.enqueue(count(next));
        } catch (error) {
          controller.error(error);
        }
      },
    });
    const uploadId = randomUUID();
    const bucket = await this.open();
    // Checked first so that a full store refuses with nothing written (a failed put cannot be purged).
    const status = await bucket.status();
    const room = status.streamInfo.config.max_bytes;
    if (room > 0 && status.size + bytes > room) {
      throw new DomainError(
        'unavailable',
        `the upload store is full (CL_DEPLOY_UPLOAD_STORE_MAX_BYTES); uploads expire after ${this.limits.maxAgeS} s`,
        '(body)',
      );
    }
    let info;
    try {
      info = await bucket.put({ name: uploadId }, body);
    } catch (error) {
      if (error instanceof DomainError) throw error;
      if (request.readableAborted || counted < bytes) {
        throw new DomainError('invalid', `the body ended after ${counted} of its ${bytes} bytes`, '(body)');
      }
      // The store's own cleanup (a purge, which the API may not do) hides the first error: say what is known.
      this.logger.warn('an upload could not be stored', { uploadId, bytes, error });
      throw new DomainError(
        'unavailable',
        'the upload could not be stored (the store may be full: CL_DEPLOY_UPLOAD_STORE_MAX_BYTES); try again',
        '(body)',
      );
    }
    const sha256 = hash.digest('hex');
    // The store hashed what it holds; both must agree, and with the declared length.
    if (counted !== bytes || info.size !== bytes || objectDigestHex(info.digest) !== sha256) {
      throw new DomainError(
        'invalid',
        `the body was not stored as sent (${counted} of ${bytes} bytes)`,
        '(body)',
      );
    }
    return { uploadId, sha256, bytes };
  }

  /**
   * The upload's bytes, checked against what the deployment names: 410 when it is gone (past the max
   * age) or is not that upload. Read chunk by chunk as the client takes them (one direct get each), so a
   * slow agent holds no more than a chunk or two in memory here; the stream errors when the bytes do not
   * hash to the upload's SHA-256.
   */
  async read(upload: UploadRef): Promise<ReadableStream<Uint8Array>> {
    const bucket = await this.open();
    const info = await bucket.info(upload.uploadId);
    if (
      !info ||
      info.deleted ||
      info.size !== upload.bytes ||
      objectDigestHex(info.digest) !== upload.sha256
    ) {
      throw new DomainError(
        'gone',
        `upload ${upload.uploadId} is no longer kept (CL_DEPLOY_UPLOAD_MAX_AGE_S): deploy it again`,
        'deploymentId',
      );
    }
    this.manager ??= jetstreamManager(this.connection);
    const manager = await this.manager;
    const stream = `OBJ_${DEPLOYMENT_UPLOADS_BUCKET}`;
    const chunks = `$O.${DEPLOYMENT_UPLOADS_BUCKET}.C.${info.nuid}`;
    const hash = createHash('sha256');
    let sequence = 0;
    let sent = 0;
    return new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (sent >= upload.bytes) {
          if (hash.digest('hex') === upload.sha256) controller.close();
          else controller.error(new Error(`upload ${upload.uploadId} does not hash to its SHA-256`));
          return;
        }
        const message = await manager.direct.getMessage(stream, { seq: sequence + 1, next_by_subj: chunks });
        if (!message) {
          controller.error(new Error(`upload ${upload.uploadId} ended after ${sent} bytes`));
          return;
        }
        sequence = message.seq;
        sent += message.data.length;
        hash.update(message.data);
        controller.enqueue(message.data);
      },
    });
  }
}

interface BodyReader {
  /** The next chunk, null at the end; throws when the body was cut short. */
  next(): Promise<Buffer | null>;
  /** Stops listening: a `resume()` after it drains (and drops) the rest. */
  release(): void;
}

/**
 * A request body read chunk by chunk at the reader's pace (paused in between), without taking the
 * stream over as an async iterator does: after `release()` the rest can still be drained, so the
 * client of a refused upload gets its answer.
 */
function bodyReader(request: IncomingMessage): BodyReader {
  const queue: Buffer[] = [];
  let ended = false;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const onData = (chunk: Buffer) => {
    queue.push(chunk);
    request.pause();
    wake?.();
  };
  const onEnd = () => {
    ended = true;
    wake?.();
  };
  const onError = (error: Error) => {
    failure = error;
    wake?.();
  };
  const onClose = () => {
    if (!ended) onError(new Error('the request was closed before its body ended'));
  };
  request.on('data', onData);
  request.on('end', onEnd);
  request.on('error', onError);
  request.on('close', onClose);
  request.pause();
  return {
    async next() {
      for (;;) {
        const chunk = queue.shift();
        if (chunk) return chunk;
        if (failure) throw failure;
        if (ended) return null;
        await new Promise<void>((resolve) => {
          wake = resolve;
          request.resume();
        });
        wake = undefined;
      }
    },
    release() {
      request.off('data', onData);
      request.off('end', onEnd);
      request.off('error', onError);
      request.off('close', onClose);
    },
  };
}
