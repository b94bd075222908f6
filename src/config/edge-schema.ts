import { isIP } from 'node:net';
import { z } from 'zod';
import { normalizeHeaderName } from '../net/sip-header-name.js';

/**
 * The edge role (Agent Assist): pay-ivr as a B2BUA between the carrier and Genesys, media on
 * rtpengine (`edge.rtpengine`), card capture while the agent stays on the call (`edge.assist`).
 */

/**
 * What rtpengine puts in place of a blocked caller key toward Genesys. rtpengine 10.5 lets in-band
 * tones through with 'zero' and crashes with 'random', so only these two.
 */
export const DTMF_SECURITY_MODES = ['silence', 'tone'] as const;

const port = z.number().int().min(1).max(65535);
const host = z.string().min(1);

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
  dtmfSecurity: z.enum(DTMF_SECURITY_MODES, { error: "must be 'silence' or 'tone' (rtpengine 10.5 lets in-band tones through with 'zero' and crashes with 'random')" }).default('tone'),
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

/** An IP literal (IPv4 or IPv6): where an address is compared with packet sources, names cannot be. */
const ipLiteral = z.string().refine((s) => isIP(s) !== 0, { message: 'must be an IP address' });

/**
 * rtpengine as the edge role's media anchor (Agent Assist): the ng control socket, and where
 * rtpengine sends its DTMF events (its `--dtmf-log-dest` must name the same address and port).
 */
const rtpengineSchema = z.strictObject({
  /** rtpengine's ng address; DTMF event datagrams are accepted only from this address. */
  host: ipLiteral,
  /** rtpengine's `--listen-ng` port. */
  port: port.default(22222),
  /** Local address pay-ivr receives DTMF events on (and sends ng commands from). */
  dtmfLogAddress: ipLiteral,
  dtmfLogPort: port,
  /** How long one ng command may wait for rtpengine's answer. */
  timeoutMs: z.number().int().min(50).max(30_000).default(1_000),
  /** Time between two reachability pings. */
  pingIntervalMs: z.number().int().min(100).max(600_000).default(5_000),
  /**
   * Audio delay toward Genesys while keys are blocked: rtpengine replaces a key only inside its
   * delay buffer, and an in-band tone is detected some time after it starts (with 60 ms one 20 ms
   * packet of a tone got through now and then; 100 ms kept every one out).
   */
  delayBufferMs: z.number().int().min(60).max(1_000).default(100),
  /** Key events accepted per call and second (a burst of the same size is allowed); the rest are dropped. */
  maxDtmfEventsPerSecond: z.number().int().min(1).max(1_000).default(20),
});

export type RtpengineConfig = z.infer<typeof rtpengineSchema>;

/** A SIP header name (token characters only), as written in a header line. */
const headerName = z.string().regex(/^[A-Za-z0-9!%*_+`'~.-]+$/, 'must be a SIP header name (token characters)');

/**
 * Headers the B2BUA writes itself on each leg (dialog, transaction, body framing, auth): never
 * copied from one leg to the other, and refused in edge.passHeaders.
 */
export const NEVER_PASSED: ReadonlySet<string> = new Set([
  'via', 'from', 'to', 'call-id', 'cseq', 'contact', 'route', 'record-route', 'max-forwards',
  'content-length', 'content-type', 'content-encoding', 'require', 'proxy-require', 'supported',
  'allow', 'session-expires', 'min-se', 'authorization', 'proxy-authorization', 'www-authenticate',
  'proxy-authenticate', 'rseq', 'rack',
]);

/**
 * The edge role (Agent Assist): a SIP B2BUA between the carrier and Genesys BYOC with media
 * anchored on rtpengine. The carrier side is served on sip.listen with the security.* checks.
 */
export const edgeSchema = z.strictObject({
  /** true: this node is the edge B2BUA instead of the payment IVR. */
  enabled: z.boolean().default(false),
  /** Where relayed calls go: the Genesys BYOC trunk's SIP address. */
  genesys: z
    .strictObject({
      host,
      port: port.default(5060),
      transport: z.enum(['udp', 'tcp', 'tls']).default('udp'),
      /**
       * The media profile toward Genesys: 'off' offers RTP/AVP; 'required' offers RTP/SAVP with
       * SDES (rtpengine makes the keys, rtp.srtpSuites only) and refuses a plain RTP answer.
       */
      srtp: z.enum(['off', 'required']).default('off'),
    })
    .optional(),
  /** Header carrying the edge session id toward Genesys (an Architect flow reads it). */
  sessionHeader: headerName.default('X-PayIvr-Edge-Session'),
  /**
   * Headers copied from the caller's INVITE to the Genesys INVITE (and from Genesys's responses
   * back). Headers that make the dialog or the transaction cannot be listed.
   */
  passHeaders: z
    .array(headerName.refine((n) => !NEVER_PASSED.has(normalizeHeaderName(n)), { message: 'is a header the B2BUA writes itself (dialog, transaction or auth): it cannot be passed through' }))
    .default(['User-to-User', 'x-User-To-User']),
  /** How long, and how many, ended calls are remembered (so the capture API can say "ended"). */
  endedCallsKeptSeconds: z.number().int().min(1).max(86_400).default(3_600),
  endedCallsKept: z.number().int().min(1).max(1_000_000).default(10_000),
  /** Required when enabled: the media of every relayed call is anchored on it. */
  rtpengine: rtpengineSchema.optional(),
  /** Agent Assist card capture over the relayed calls. */
  assist: assistSchema.optional(),
});

export type EdgeConfig = z.infer<typeof edgeSchema>;
