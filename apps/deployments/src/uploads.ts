import { Objm, type ObjectStore } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/transport-node';
import { DEPLOYMENT_UPLOADS_BUCKET } from '#auth';
import { DomainError, objectDigestHex, type UploadRef } from '#contracts';

/**
 * The check of an upload before a deployment of it is accepted: the object the API stored must exist
 * with the size and digest the request names (the object store's own hash of what it holds). Read
 * only: the API provisions and writes the bucket.
 */
export class UploadCheck {
  private bucket?: Promise<ObjectStore>;

  constructor(private readonly connection: NatsConnection) {}

  private open(): Promise<ObjectStore> {
    // No stream lookup on open: the bucket may not exist yet, which the first check then reports.
    this.bucket ??= new Objm(this.connection)
      .open(DEPLOYMENT_UPLOADS_BUCKET, false)
      .catch((error: unknown) => {
        this.bucket = undefined;
        throw error;
      });
    return this.bucket;
  }

  async check(upload: UploadRef): Promise<void> {
    const bucket = await this.open();
    const info = await bucket.info(upload.uploadId).catch((error: unknown) => {
      // No bucket yet is no upload; anything else (the broker away) is not an answer.
      if (/stream not found/i.test(String((error as Error).message))) return null;
      throw new DomainError('unavailable', 'the upload store cannot be read now; try again', 'uploadId');
    });
    if (!info || info.deleted) {
      throw new DomainError('invalid', `no upload ${upload.uploadId} (expired or never stored)`, 'uploadId');
    }
    if (info.size !== upload.bytes || objectDigestHex(info.digest) !== upload.sha256) {
      throw new DomainError(
        'invalid',
        `upload ${upload.uploadId} is not the one named: its size or SHA-256 differ`,
        'uploadId',
      );
    }
  }
}
