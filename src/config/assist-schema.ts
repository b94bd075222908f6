import { z } from 'zod';
import type { DtmfSecurityMode } from '../edge/types.js';

/** What rtpengine may put in place of a blocked key (src/edge/types.ts). */
export const DTMF_SECURITY_MODES = ['silence', 'tone', 'zero', 'random'] as const satisfies readonly DtmfSecurityMode[];

/**
 * The Genesys Cloud web origins an agent's Script page runs on (the capture panel is framed
 * there). `*.pure.cloud` covers the newer regions.
 */
export const GENESYS_FRAME_ANCESTORS = [
  'https://*.mypurecloud.com',
  'https://*.mypurecloud.ie',
  'https://*.mypurecloud.de',
  'https://*.mypurecloud.jp',
  'https://*.mypurecloud.com.au',
  'https://*.pure.cloud',
] as const;

/** A CSP host source: scheme, host (optionally `*.`), optional port; nothing that could end the directive. */
const FRAME_ANCESTOR = /^https?:\/\/(\*\.)?[A-Za-z0-9.-]+(:[0-9]{1,5})?$/;

/**
 * Agent Assist card capture (`edge.assist`): the caller keys the card while the agent stays on
 * the call; the API under /v1/assist/ and the agent panel on the admin server.
 */
export const assistSchema = z.strictObject({
  /**
   * Bearer keys that may start a capture (the Genesys data action's credential), compared in
   * constant time. Each at least 24 characters.
   */
  apiKeys: z.array(z.string().min(24, 'must be at least 24 characters')).min(1),
  /**
   * Key that signs the panel tokens (HMAC-SHA256). Unset: a random key per process (tokens then
   * work only on the node that issued them and die with it). Set the same value on every node
   * behind one load balancer.
   */
  tokenSecret: z.string().min(32, 'must be at least 32 characters').optional(),
  /** Lifetime of a panel token (it opens one capture only). */
  panelTokenTtlSeconds: z.number().int().min(30).max(86_400).default(900),
  /** A capture not charged or cancelled within this long ends (outcome cancelled, reason timeout). */
  captureTimeoutSeconds: z.number().int().min(1).max(3_600).default(300),
  /** What Genesys (and the agent) hear in place of each blocked caller key. */
  dtmfSecurity: z.enum(DTMF_SECURITY_MODES).default('tone'),
  /** The profile whose PSP, currencies, amount bounds and card rules a capture uses (default: defaultProfile). */
  profile: z.string().regex(/^[A-Za-z0-9_-]+$/).optional(),
  /** Keys one field takes before a key flood ends it invalid. */
  maxKeysPerField: z.number().int().min(8).max(1_000).default(64),
  /** Captures running at once on this node; more get 503. */
  maxCaptures: z.number().int().min(1).max(100_000).default(500),
  /**
   * Short prompts to the caller (enter card number, expiry, security code), played by the media
   * anchor from `<dir>/<language>/<id>.wav`: the prompt packs' layout, as the anchor's host sees
   * them. Unset: no prompts (the agent guides the caller).
   */
  prompts: z
    .strictObject({
      dir: z.string().min(1),
      language: z.enum(['fr-FR', 'en-US']).optional(),
    })
    .optional(),
  /** Origins allowed to frame the agent panel (CSP frame-ancestors). */
  frameAncestors: z
    .array(z.string().regex(FRAME_ANCESTOR, 'must be an origin such as https://*.mypurecloud.com'))
    .min(1)
    .default([...GENESYS_FRAME_ANCESTORS]),
});

export type AssistConfig = z.infer<typeof assistSchema>;

/** The edge role's settings; `assist` enables Agent Assist capture. */
export const edgeSchema = z.strictObject({
  assist: assistSchema.optional(),
});
