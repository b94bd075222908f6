import { z } from 'zod';

/**
 * `genesys.platform`: the result written onto the Genesys Cloud conversation as participant data
 * (Platform API, OAuth client credentials). Off by default; the UUI in the hand-back REFER works
 * without it. docs/genesys.md lists the OAuth client, its permissions and every attribute.
 */

const ms = z.number().int().min(1).max(600_000);

/** A participant attribute name: printable ASCII without spaces, at most 64 characters. */
const ATTRIBUTE_NAME = /^[\x21-\x7E]{1,64}$/;
const attributeName = z.string().regex(ATTRIBUTE_NAME, 'must be 1-64 printable characters without spaces');

/** Attribute names (before the prefix) of each result field written. */
const attributeNamesSchema = z.strictObject({
  outcome: attributeName.default('outcome'),
  amount: attributeName.default('amount'),
  currency: attributeName.default('currency'),
  amountSource: attributeName.default('amountSource'),
  brand: attributeName.default('brand'),
  last4: attributeName.default('last4'),
  reference: attributeName.default('pspReference'),
  attempts: attributeName.default('attempts'),
  declineClass: attributeName.default('declineClass'),
  mode: attributeName.default('mode'),
  /** How pay-ivr entered the conversation: `transfer` or `conference` (docs/genesys.md 7.1). */
  entry: attributeName.default('entry'),
  node: attributeName.default('node'),
  /** Why an `error` outcome happened (the UUI's `why`). */
  errorReason: attributeName.default('errorReason'),
  /** origin `call` or `reconciled` (settled after the call by a PSP lookup). */
  origin: attributeName.default('origin'),
  /** ISO time the result was last changed; a write never replaces a newer one. */
  updatedAt: attributeName.default('updatedAt'),
});

/** Retries and the dead-letter rule of the write-back queue. */
const deliverySchema = z.strictObject({
  /** First retry delay; doubles per failure up to maxRetryMs (Retry-After wins when longer). */
  retryBaseMs: ms.default(1_000),
  maxRetryMs: ms.default(60_000),
  /** A write still failing after this many tries, or this old, goes to the dead-letter list. */
  maxAttempts: z.number().int().min(1).max(1000).default(30),
  maxAgeMs: z.number().int().min(1_000).max(7 * 24 * 3_600_000).default(24 * 3_600_000),
});

export const genesysPlatformSchema = z
  .strictObject({
    enabled: z.boolean().default(false),
    /** Region host of the Genesys Cloud organization, e.g. mypurecloud.com, mypurecloud.de, euw2.pure.cloud. */
    region: z.string().regex(/^[a-z0-9.-]+\.[a-z]{2,}$/, 'must be a Genesys Cloud region host such as mypurecloud.com').default('mypurecloud.com'),
    /** Environment variables holding the OAuth client credentials (never the secret itself in the file). */
    clientIdEnv: z.string().min(1).default('GENESYS_CLIENT_ID'),
    clientSecretEnv: z.string().min(1).default('GENESYS_CLIENT_SECRET'),
    /**
     * Send the API and login requests to this host instead of the region's (an egress proxy or
     * API gateway in front of Genesys Cloud).
     */
    gateway: z
      .strictObject({
        host: z.string().min(1),
        port: z.number().int().min(1).max(65535).optional(),
        protocol: z.enum(['https']).default('https'),
      })
      .optional(),
    /** Extra CA certificate (PEM file) trusted for the API's TLS, e.g. the gateway's. */
    caFile: z.string().min(1).optional(),
    /** Deadline of one API request. */
    timeoutMs: ms.default(10_000),
    /** Prepended to every attribute name. */
    attributePrefix: z.string().regex(/^[\x21-\x7E]{0,32}$/, 'must be at most 32 printable characters without spaces').default('payivr.'),
    attributes: attributeNamesSchema.default(attributeNamesSchema.parse({})),
    delivery: deliverySchema.default(deliverySchema.parse({})),
  })
  .superRefine((p, ctx) => {
    const seen = new Map<string, string>();
    for (const [field, name] of Object.entries(p.attributes)) {
      const other = seen.get(name);
      if (other !== undefined) ctx.addIssue({ code: 'custom', path: ['attributes', field], message: `same name as attributes.${other}` });
      else seen.set(name, field);
    }
    if (p.delivery.maxRetryMs < p.delivery.retryBaseMs) ctx.addIssue({ code: 'custom', path: ['delivery', 'maxRetryMs'], message: 'must be >= retryBaseMs' });
  });

export type GenesysPlatformConfig = z.infer<typeof genesysPlatformSchema>;
