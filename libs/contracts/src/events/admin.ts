import { z } from 'zod';
import { defineEvent } from '../registry.js';
import { isoTimestamp, label, uuid } from '../fields.js';

/** Admin names: lower-case letters, digits and `. _ @ -`; they are the actor id of admin actions. */
export const adminNameSchema = z
  .string()
  .min(1, 'must not be empty')
  .max(64, 'must be at most 64 characters')
  .regex(
    /^[a-z0-9][a-z0-9._@-]*$/,
    'must be lower-case letters, digits and . _ @ -, starting with a letter or digit',
  );

/** An admin bearer token was signed (aggregate `admin`, id = the token's id, its `jti`). */
export const AdminTokenIssued = defineEvent({
  type: 'AdminTokenIssued',
  aggregate: 'admin',
  version: 1,
  schema: z.strictObject({ tokenId: uuid, name: adminNameSchema, expiresAt: isoTimestamp }),
});

/** The token no longer opens the API, whatever its expiry says. */
export const AdminTokenRevoked = defineEvent({
  type: 'AdminTokenRevoked',
  aggregate: 'admin',
  version: 1,
  schema: z.strictObject({ tokenId: uuid, reason: label(200) }),
});

export const adminEvents = [AdminTokenIssued, AdminTokenRevoked] as const;
