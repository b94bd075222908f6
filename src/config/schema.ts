import { z } from 'zod';
import { BRANDS } from '../domain/brand.js';
import { OUTCOMES } from '../domain/outcome.js';
import { ENTRY_MODES } from '../domain/entry.js';
import { currencyExponent } from '../domain/money.js';
import { ALLOW_LIST_ENTRY_PROBLEM, parseCidr } from '../net/cidr.js';
import { HOST_PORT, isValidNumberPattern, sipTargetOf } from '../net/sip-target.js';
import { normalizeHeaderName } from '../net/sip-header-name.js';
import { MEDIA_THREAD_PRIORITIES, SRTP_POLICIES, SRTP_SUITES } from './media-options.js';
import { edgeSchema } from './edge-schema.js';
import { genesysPlatformSchema } from './genesys-platform-schema.js';
import { DRACHTIO_DEFAULT_SECRET, FREESWITCH_DEFAULT_SECRET, PSP_REQUIRED, checkFailClosed } from './fail-closed.js';

/**
 * The configuration schema. Every parameter of the use case is a profile setting; server-wide
 * settings (listen addresses, backend, store, admin API) sit beside the profiles.
 * Amounts are integers in minor units of the profile currency.
 */

const port = z.number().int().min(1).max(65535);
const host = z.string().min(1);
const ms = z.number().int().min(1).max(600_000);

const listenSchema = z.strictObject({
  transport: z.enum(['udp', 'tcp', 'tls']),
  host: host.default('127.0.0.1'),
  port,
});

const tlsSchema = z
  .strictObject({
    certFile: z.string().min(1),
    keyFile: z.string().min(1),
    caFile: z.string().min(1).optional(),
    minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
    /** TLS 1.2 is what Genesys BYOC speaks; set TLSv1.3 to let peers that can use it. */
    maxVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
  })
  .refine((t) => !(t.minVersion === 'TLSv1.3' && t.maxVersion === 'TLSv1.2'), { message: 'minVersion TLSv1.3 needs maxVersion TLSv1.3', path: ['maxVersion'] });

/** TCP/TLS listener limits: what one source can hold against everyone else. */
const streamsSchema = z.strictObject({
  /** Connections open at once, in all. */
  maxConnections: z.number().int().min(1).max(100_000).default(1024),
  /** Inbound connections open at once from one source address (a Genesys edge needs a few). */
  maxConnectionsPerSource: z.number().int().min(1).max(100_000).default(32),
  /** A whole SIP message (or TLS handshake) must arrive within this long of its first byte. */
  messageTimeoutMs: ms.default(5_000),
  /** A connection silent this long is closed (the trunk reconnects when it next sends). */
  idleTimeoutMs: ms.default(60_000),
});

const sipSchema = z.strictObject({
  listen: z.array(listenSchema).min(1).default([
    { transport: 'udp', host: '127.0.0.1', port: 5060 },
    { transport: 'tcp', host: '127.0.0.1', port: 5060 },
  ]),
  /** Address written in Contact/Via/SDP when it differs from the bind address (NAT). */
  publicAddress: z.string().min(1).optional(),
  tls: tlsSchema.optional(),
  /** Max SIP message size accepted (bytes). */
  maxMessageBytes: z.number().int().min(1024).max(65535).default(16384),
  maxHeaders: z.number().int().min(10).max(500).default(100),
  userAgent: z.string().default('pay-ivr'),
  /** Session-Expires we ask for when the caller supports timers (RFC 4028), seconds. */
  sessionExpires: z.number().int().min(90).max(86400).default(1800),
  streams: streamsSchema.default(streamsSchema.parse({})),
});

const rtpSchema = z.strictObject({
  host: host.default('127.0.0.1'),
  portMin: port.default(20000),
  portMax: port.default(30000),
  /** Hang up when no RTP arrives for this long. */
  noRtpTimeoutMs: ms.default(30_000),
  /**
   * SDES-SRTP (RFC 4568): 'optional' answers RTP/SAVP and RTP/AVP offers in kind, 'required'
   * refuses RTP/AVP offers with 488, 'off' refuses RTP/SAVP ones. Both backends.
   */
  srtp: z.enum(SRTP_POLICIES).default('optional'),
  /** SDES suites accepted (embedded backend); the offerer's order picks among them. */
  srtpSuites: z.array(z.enum(SRTP_SUITES)).min(1).default([...SRTP_SUITES]),
  /** Comfort noise level in dBov when nothing plays (0 = digital silence). */
  comfortNoiseDbov: z.number().int().min(0).max(127).default(0),
  /**
   * Media worker threads (docs/adr/0003-media-workers.md): 'auto' = one per core, at most
   * maxWorkers; 0 or 1 = the media engine runs on the main thread.
   */
  workers: z.union([z.literal('auto'), z.number().int().min(0).max(256)]).default('auto'),
  /** Cap of rtp.workers: 'auto'. */
  maxWorkers: z.number().int().min(1).max(256).default(8),
  /**
   * Scheduling priority of the media worker threads: 'high' = nice -10, 'realtime' = SCHED_FIFO
   * 10; either needs CAP_SYS_NICE (or RLIMIT_NICE / RLIMIT_RTPRIO), else a lower level and one
   * warning. See media-workers/thread-priority.ts.
   */
  workerPriority: z.enum(MEDIA_THREAD_PRIORITIES).default('high'),
});

const drachtioSchema = z.strictObject({
  host: host.default('127.0.0.1'),
  port: port.default(9022),
  /** drachtio-server's own default; refused when host is not loopback (fail-closed.ts). */
  secret: z.string().default(DRACHTIO_DEFAULT_SECRET),
  /** Cap of the reconnect backoff. */
  maxReconnectDelayMs: ms.default(10_000),
});

const freeswitchSchema = z.strictObject({
  host: host.default('127.0.0.1'),
  port: port.default(8021),
  /** FreeSWITCH's own default; refused when host is not loopback (fail-closed.ts). */
  secret: z.string().default(FREESWITCH_DEFAULT_SECRET),
  /** Where FreeSWITCH reads the prompt packs (same layout as ./prompts). */
  promptsDir: z.string().default('/usr/share/pay-ivr/prompts'),
  /** Address fsmrf listens on for FreeSWITCH's outbound event socket. */
  listenAddress: host.default('127.0.0.1'),
  listenPort: port.default(8085),
  connectTimeoutMs: ms.default(5_000),
});

const telephonySchema = z.strictObject({
  backend: z.enum(['embedded', 'drachtio']).default('embedded'),
  drachtio: drachtioSchema.default(drachtioSchema.parse({})),
  freeswitch: freeswitchSchema.default(freeswitchSchema.parse({})),
  /**
   * More FreeSWITCH media servers behind the same drachtio-server: each new call goes to the
   * usable server (this list or `freeswitch`) carrying the fewest of this node's calls. Each
   * needs its own listenPort.
   */
  freeswitchPool: z.array(freeswitchSchema).default([]),
});

const securitySchema = z.strictObject({
  /** CIDRs allowed to send INVITEs; empty = everyone (a warning is logged at start). */
  allowList: z.array(z.string().min(1).refine((s) => parseCidr(s) !== undefined, { message: ALLOW_LIST_ENTRY_PROBLEM })).default([]),
  /**
   * CIDRs of the carrier's media servers (Genesys: docs/genesys.md). Empty = RTP only from the
   * exact address the SDP names. Set: SDP media addresses outside them get 488, and RTP may also
   * come from another address inside them. Both backends.
   */
  mediaRanges: z.array(z.string().min(1).refine((s) => parseCidr(s) !== undefined, { message: ALLOW_LIST_ENTRY_PROBLEM })).default([]),
  /** Static shared-secret trunk header, compared in constant time. */
  sharedSecretHeader: z
    .strictObject({ name: z.string().min(1), value: z.string().min(8) })
    .optional(),
  /** Digest authentication of INVITEs (RFC 3261 section 22). */
  digest: z.strictObject({ realm: z.string().min(1), username: z.string().min(1), password: z.string().min(1) }).optional(),
  /** New INVITEs per source address per second. */
  ratePerSource: z.number().int().min(1).default(20),
  maxConcurrentCalls: z.number().int().min(1).default(2000),
  /**
   * Embedded backend: a refused INVITE (allow-list, rate, capacity, secret, digest) gets one stateless final
   * response ('respond'), or nothing at all ('silent': the sender learns nothing, but a
   * misconfigured trunk then sees timeouts instead of a 403).
   */
  refusal: z.enum(['respond', 'silent']).default('respond'),
});

const storeSchema = z.strictObject({
  type: z.enum(['memory', 'redis']).default('memory'),
  redisUrl: z.string().default('redis://127.0.0.1:6379'),
  keyPrefix: z.string().default('payivr:'),
  resultTtlSeconds: z.number().int().min(60).default(30 * 24 * 3600),
  /** Results kept in memory (memory store) / in the recent-results index (Redis); oldest evicted. */
  maxResults: z.number().int().min(1).max(10_000_000).default(10_000),
});

const journalSchema = z.strictObject({
  /** Directory of the node's durable local files (the spool); created at start. */
  dataDir: z.string().min(1).default('data'),
  /** The spool file (default <dataDir>/journal-spool.jsonl): the local journal, pending results and dialog state. */
  spoolFile: z.string().min(1).optional(),
  /** Upper bound of the spool file; a write that would exceed it fails with ERR_JOURNAL_FULL (no charge is sent). */
  maxSpoolBytes: z.number().int().min(64 * 1024).max(4 * 1024 * 1024 * 1024).default(64 * 1024 * 1024),
  /** Stable id of this node in journal records (default: the host name); must survive restarts. */
  nodeId: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits, ".", "_" and "-" only').optional(),
  /** Settled attempts kept in the local journal (memory store) before compaction drops them. */
  retainSettledSeconds: z.number().int().min(60).default(7 * 24 * 3600),
  /** How often the spool is replayed to Redis while it holds entries, ms. */
  replayIntervalMs: ms.default(2_000),
});

const reconcileSchema = z.strictObject({
  /** Open attempts are settled by a PSP lookup at start and then every intervalSeconds. */
  intervalSeconds: z.number().int().min(1).max(86_400).default(60),
  /**
   * "The PSP has no record" settles an attempt as not charged only once it is older than this
   * (a request still on its way to the PSP is not on its books yet). Above the PSP timeout plus
   * the retry budget.
   */
  noRecordAfterSeconds: z.number().int().min(1).max(86_400).default(120),
});

const adminSchema = z.strictObject({
  enabled: z.boolean().default(true),
  host: host.default('127.0.0.1'),
  port: port.default(8080),
  /** Bearer token for the result lookup API; unset = lookups refused. */
  apiToken: z.string().min(16).optional(),
});

const reportsSchema = z.strictObject({
  /** Segment records kept this long (Redis keys expire, the memory store drops older ones). */
  retentionDays: z.number().int().min(1).max(3650).default(90),
  /** Segment records kept by the memory store; the oldest go first. */
  maxSegments: z.number().int().min(1).max(5_000_000).default(100_000),
  /** Session cookie lifetime of the reports page. */
  sessionHours: z.number().int().min(1).max(168).default(8),
  /** Mark the session cookie Secure: set it when a TLS reverse proxy serves the page. */
  secureCookie: z.boolean().default(false),
});

/** Graceful drain (SIGTERM, `pay-ivr drain`, POST /v1/admin/drain). */
const drainSchema = z.strictObject({
  /** Longest wait for calls in progress; then the rest are handed back with outcome `error`. */
  maxMs: z.number().int().min(1_000).max(3_600_000).default(300_000),
  /** Retry-After (s) of the 503 that OPTIONS and new INVITEs get while draining. */
  retryAfterSeconds: z.number().int().min(0).max(86_400).default(30),
});

const logSchema = z.strictObject({
  level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Log file (default: stdout). */
  file: z.string().optional(),
});

const uuiKeysSchema = z.strictObject({
  account: z.string().default('acct'),
  amount: z.string().default('amt'),
  currency: z.string().default('cur'),
  reference: z.string().default('ref'),
  mode: z.string().default('mode'),
  agent: z.string().default('agent'),
  returnNumber: z.string().default('ret'),
  language: z.string().default('lang'),
  identified: z.string().default('ident'),
  profile: z.string().default('profile'),
  /** How pay-ivr entered the conversation: `entry=conf` for a conference leg an agent placed (docs/genesys.md). */
  entry: z.string().default('entry'),
});

/** Key names of the result UUI (pay-ivr -> Genesys); see docs/genesys.md for each. */
const resultKeysSchema = z.strictObject({
  res: z.string().default('res'),
  why: z.string().default('why'),
  ref: z.string().default('ref'),
  txn: z.string().default('txn'),
  amt: z.string().default('amt'),
  cur: z.string().default('cur'),
  src: z.string().default('src'),
  brand: z.string().default('brand'),
  last4: z.string().default('last4'),
  att: z.string().default('att'),
  code: z.string().default('code'),
});

/** A UUI key name: printable ASCII without spaces, at most 32 characters. */
const UUI_KEY = /^[\x21-\x7E]{1,32}$/;

const genesysSchema = z
  .strictObject({
    /** Max characters of the result UUI (before hex encoding). */
    uuiBudget: z.number().int().min(16).max(1024).default(128),
    /** Field separator and key/value separator of the UUI strings. */
    fieldSeparator: z.string().length(1).default('|'),
    keyValueSeparator: z.string().length(1).default('='),
    keys: uuiKeysSchema.default(uuiKeysSchema.parse({})),
    resultKeys: resultKeysSchema.default(resultKeysSchema.parse({})),
    /** Header carrying the conversation id. */
    conversationHeader: z.string().default('x-inin-cnv'),
    /** The result written onto the conversation through the Platform API (participant data). */
    platform: genesysPlatformSchema.default(genesysPlatformSchema.parse({})),
  })
  .superRefine((g, ctx) => {
    if (g.fieldSeparator === g.keyValueSeparator) ctx.addIssue({ code: 'custom', path: ['keyValueSeparator'], message: 'must differ from fieldSeparator' });
    // Incoming keys are matched case-insensitively, outgoing ones are written as configured.
    for (const [group, keys, fold] of [['keys', g.keys, true], ['resultKeys', g.resultKeys, false]] as const) {
      const seen = new Map<string, string>();
      for (const [name, key] of Object.entries(keys)) {
        if (!UUI_KEY.test(key) || key.includes(g.fieldSeparator) || key.includes(g.keyValueSeparator)) {
          ctx.addIssue({ code: 'custom', path: [group, name], message: 'must be 1-32 printable characters without spaces or the UUI separators' });
          continue;
        }
        const norm = fold ? key.toLowerCase() : key;
        const other = seen.get(norm);
        if (other !== undefined) ctx.addIssue({ code: 'custom', path: [group, name], message: `same key as genesys.${group}.${other}` });
        else seen.set(norm, name);
      }
    }
  });

const pspSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('sandbox'),
    /** Base URL of a sandbox server; unset = the built-in in-process simulator. */
    url: z.string().url().optional(),
    face: z.enum(['stripe', 'adyen']).default('stripe'),
    /** Port of the built-in simulator (default ephemeral); its /_sandbox/* endpoints inject faults. */
    listenPort: port.optional(),
    timeoutMs: ms.default(10_000),
    /**
     * The sandbox approves any valid card number and charges nothing, so it is refused on a node
     * reachable off loopback (fail-closed.ts) unless this says the node is a test node.
     */
    allowOffLoopback: z.boolean().optional(),
  }),
  z.strictObject({
    type: z.literal('stripe'),
    /** Env var holding the secret key (never the key itself in the file). */
    apiKeyEnv: z.string().default('STRIPE_API_KEY'),
    apiKeyFile: z.string().optional(),
    baseUrl: z.string().url().optional(),
    timeoutMs: ms.default(10_000),
  }),
  z.strictObject({
    type: z.literal('adyen'),
    apiKeyEnv: z.string().default('ADYEN_API_KEY'),
    apiKeyFile: z.string().optional(),
    merchantAccount: z.string().min(1),
    environment: z.enum(['test', 'live']).default('test'),
    liveUrlPrefix: z.string().optional(),
    baseUrl: z.string().url().optional(),
    timeoutMs: ms.default(10_000),
  }),
  z.strictObject({
    type: z.literal('rest'),
    url: z.string().url(),
    lookupUrl: z.string().url().optional(),
    /** Auth header name and the env var holding its value. */
    authHeader: z.string().default('Authorization'),
    authEnv: z.string().optional(),
    /** File holding the auth header value (secrets mount); wins over authEnv. */
    authFile: z.string().optional(),
    /**
     * The gateway replays the first answer for a reused idempotency key. When false, a send whose
     * outcome is unknown is never resent (that could charge twice): only lookupUrl is asked.
     */
    idempotent: z.boolean().default(true),
    /** JSON body template; "{{amount}}", "{{currency}}", "{{pan}}", "{{expMonth}}", "{{expYear}}", "{{cvc}}", "{{reference}}", "{{idempotencyKey}}" are replaced. */
    bodyTemplate: z.record(z.string(), z.unknown()),
    idempotencyHeader: z.string().default('Idempotency-Key'),
    response: z.strictObject({
      /** Dotted path of the status field and the value meaning approved. */
      statusPath: z.string(),
      approvedValues: z.array(z.string()).min(1),
      /** Status values meaning declined (a decline code at declineCodePath also means declined). */
      declinedValues: z.array(z.string()).default([]),
      transactionIdPath: z.string(),
      authCodePath: z.string().optional(),
      declineCodePath: z.string().optional(),
      /** PSP decline code -> decline class. */
      declineMap: z.record(z.string(), z.string()).default({}),
    }),
    timeoutMs: ms.default(10_000),
  }),
], { error: (issue) => (issue.input === undefined ? PSP_REQUIRED : undefined) });

const retrySchema = z.strictObject({
  /** Total time budget for one charge including resends and the lookup. */
  budgetMs: ms.default(20_000),
  maxSends: z.number().int().min(1).max(10).default(3),
  backoffMs: ms.default(500),
  /** Cap of one backoff wait (exponential with jitter; a longer Retry-After still wins within the budget). */
  maxBackoffMs: ms.default(4_000),
  breakerFailures: z.number().int().min(1).default(5),
  breakerResetMs: ms.default(30_000),
});

const outcomeEnum = z.enum(OUTCOMES);

const currencyCode = z
  .string()
  .regex(/^[A-Z]{3}$/, 'must be an ISO 4217 code such as EUR')
  .refine((c) => currencyExponent(c) !== undefined, { message: 'not an ISO 4217 currency code' });

const profileSchema = z.strictObject({
  /** Called numbers (user part of the Request-URI, e.g. "+33140000001") that select this profile. */
  calledNumbers: z.array(z.string()).default([]),
  language: z.enum(['fr-FR', 'en-US']).default('en-US'),
  currency: currencyCode.default('EUR'),
  /**
   * Other currencies a context (`cur=`) may ask for, with the bounds in that currency's minor
   * units; the charge is then made in that currency. Any other currency is refused.
   */
  acceptedCurrencies: z
    .record(z.string(), z.strictObject({ minAmount: z.number().int().min(0, 'must be >= 0'), maxAmount: z.number().int().min(1) }))
    .default({}),
  /**
   * A context with a rejected field (sent twice, or a value that does not parse): 'hand-back'
   * sends the call back at once with outcome error and a reason code; 'enter-amount' goes on
   * without the rejected fields (the caller enters the amount when it was the one rejected).
   */
  onBadContext: z.enum(['hand-back', 'enter-amount']).default('hand-back'),
  /**
   * How calls of this profile reach pay-ivr (docs/genesys.md): 'transfer' (handed back with a
   * REFER) or 'conference' (an agent conferenced pay-ivr in: the result is announced, then pay-ivr
   * leaves with a BYE, never a REFER, and keys are also listened for in the audio). The UUI
   * `entry=` field overrides it per call.
   */
  entry: z.enum(ENTRY_MODES).default('transfer'),
  /** Where the amount comes from: the UUI amount, a "pay full balance or another amount" choice, or always entered. */
  amountSource: z.enum(['context', 'choice', 'entered']).default('context'),
  minAmount: z.number().int().min(0, 'must be >= 0').default(100),
  maxAmount: z.number().int().min(1).default(1_000_000),
  allowedBrands: z.array(z.enum(BRANDS)).min(1).default(['visa', 'mastercard', 'amex']),
  /** 'required': always ask; 'brand': skip where the brand may have none (Maestro). */
  securityCode: z.enum(['required', 'brand']).default('required'),
  maxDeclines: z.number().int().min(1).max(10).default(3),
  attempts: z
    .strictObject({
      amount: z.number().int().min(1).max(10).default(3),
      pan: z.number().int().min(1).max(10).default(3),
      expiry: z.number().int().min(1).max(10).default(3),
      securityCode: z.number().int().min(1).max(10).default(3),
      confirm: z.number().int().min(1).max(10).default(3),
    })
    .default({ amount: 3, pan: 3, expiry: 3, securityCode: 3, confirm: 3 }),
  readback: z
    .strictObject({
      amount: z.boolean().default(true),
      pan: z.boolean().default(true),
      expiry: z.boolean().default(true),
      securityCode: z.boolean().default(false),
    })
    .default({ amount: true, pan: true, expiry: true, securityCode: false }),
  timeouts: z
    .strictObject({
      firstDigitMs: ms.default(8_000),
      interDigitMs: ms.default(5_000),
      /** How long to wait for the REFER's final NOTIFY. */
      referMs: ms.default(15_000),
    })
    .default({ firstDigitMs: 8_000, interDigitMs: 5_000, referMs: 15_000 }),
  /** Required: a profile never falls back to the sandbox. */
  psp: pspSchema,
  retry: retrySchema.default(retrySchema.parse({})),
  /** Hand-back targets (Refer-To URIs without the UUI). */
  handBack: z
    .strictObject({
      /** Automated mode: the queue / IVR number. */
      automated: z.string().min(1).default('sip:+10000000000@127.0.0.1'),
      /** Agent mode without a return number in the UUI. */
      agent: z.string().min(1).optional(),
      /** Host used with a bare return number from the UUI (ret=+33140000000). */
      returnHost: z.string().min(1).default('127.0.0.1'),
      /** Per-outcome overrides, e.g. max-declines -> an agent queue. */
      byOutcome: z.partialRecord(outcomeEnum, z.string().min(1)).default({}),
      /** What the context's `ret=` may pick; anything else is refused and the targets above are used. */
      returnTargets: z
        .strictObject({
          /** Regular expression a return number must match entirely, e.g. '\+33[0-9]{9}' (YAML single quotes). */
          numbers: z.string().min(1).refine(isValidNumberPattern, { message: 'not a valid regular expression' }).optional(),
          /** Hosts (optionally host:port) on which sip:user@host is accepted. */
          hosts: z.array(z.string().regex(HOST_PORT, 'must be a host name or IPv4 address, optionally with :port')).default([]),
          /** SIP URIs accepted exactly as written. */
          uris: z.array(z.string().min(1)).default([]),
        })
        .default({ hosts: [], uris: [] }),
    })
    .default({ automated: 'sip:+10000000000@127.0.0.1', returnHost: '127.0.0.1', byOutcome: {}, returnTargets: { hosts: [], uris: [] } }),
});

export const configSchema = z
  .strictObject({
    sip: sipSchema.default(sipSchema.parse({})),
    rtp: rtpSchema.default(rtpSchema.parse({})),
    telephony: telephonySchema.default(telephonySchema.parse({})),
    security: securitySchema.default(securitySchema.parse({})),
    store: storeSchema.default(storeSchema.parse({})),
    admin: adminSchema.default(adminSchema.parse({})),
    journal: journalSchema.default(journalSchema.parse({})),
    reconcile: reconcileSchema.default(reconcileSchema.parse({})),
    reports: reportsSchema.default(reportsSchema.parse({})),
    log: logSchema.default(logSchema.parse({})),
    drain: drainSchema.default(drainSchema.parse({})),
    genesys: genesysSchema.default(genesysSchema.parse({})),
    /** The edge role (B2BUA in front of Genesys, media on rtpengine) and Agent Assist capture. */
    edge: edgeSchema.default(edgeSchema.parse({})),
    promptsDir: z.string().default('prompts'),
    /** Profile used when no called number or UUI profile field matches. */
    defaultProfile: z.string().default('default'),
    /** Built-in demo default: one profile on the sandbox PSP, named as such (warned at start, shown on /ready). */
    profiles: z.record(z.string().regex(/^[A-Za-z0-9_-]+$/), profileSchema).default({ default: profileSchema.parse({ psp: { type: 'sandbox' } }) }),
  })
  .superRefine((cfg, ctx) => {
    checkFailClosed(cfg, ctx);
    if (cfg.edge.enabled && cfg.edge.genesys === undefined) {
      ctx.addIssue({ code: 'custom', path: ['edge', 'genesys'], message: 'is required when edge.enabled is true (the Genesys BYOC trunk address)' });
    }
    if (cfg.edge.enabled && cfg.edge.rtpengine === undefined) {
      ctx.addIssue({ code: 'custom', path: ['edge', 'rtpengine'], message: 'is required when edge.enabled is true (the media of every relayed call is anchored on rtpengine)' });
    }
    const sessionHeader = normalizeHeaderName(cfg.edge.sessionHeader);
    cfg.edge.passHeaders.forEach((h, i) => {
      // The caller must not be able to choose the session id Genesys reads.
      if (normalizeHeaderName(h) === sessionHeader) ctx.addIssue({ code: 'custom', path: ['edge', 'passHeaders', i], message: 'is edge.sessionHeader: the session id is written by the edge, never passed through' });
    });
    if (cfg.edge.enabled && cfg.telephony.backend !== 'embedded') {
      ctx.addIssue({ code: 'custom', path: ['telephony', 'backend'], message: 'must be embedded when edge.enabled is true (the edge runs on the embedded SIP stack)' });
    }
    if (!(cfg.defaultProfile in cfg.profiles)) {
      ctx.addIssue({ code: 'custom', path: ['defaultProfile'], message: `no profile named "${cfg.defaultProfile}"` });
    }
    const assistProfile = cfg.edge.assist?.profile;
    if (assistProfile !== undefined && !(assistProfile in cfg.profiles)) {
      ctx.addIssue({ code: 'custom', path: ['edge', 'assist', 'profile'], message: `no profile named "${assistProfile}"` });
    }
    const fsListen = new Set<string>();
    for (const [i, fs] of [cfg.telephony.freeswitch, ...cfg.telephony.freeswitchPool].entries()) {
      const where = `${fs.listenAddress}:${fs.listenPort}`;
      if (fsListen.has(where)) {
        const path = i === 0 ? ['telephony', 'freeswitch', 'listenPort'] : ['telephony', 'freeswitchPool', i - 1, 'listenPort'];
        ctx.addIssue({ code: 'custom', path, message: `${where} is already used by another media server: each needs its own` });
      }
      fsListen.add(where);
    }
    if (cfg.rtp.portMin >= cfg.rtp.portMax) {
      ctx.addIssue({ code: 'custom', path: ['rtp', 'portMax'], message: 'must be greater than rtp.portMin' });
    }
    for (const [name, p] of Object.entries(cfg.profiles)) {
      if (p.maxAmount < p.minAmount) {
        ctx.addIssue({ code: 'custom', path: ['profiles', name, 'maxAmount'], message: 'must be >= minAmount' });
      }
      for (const [code, bounds] of Object.entries(p.acceptedCurrencies)) {
        if (!/^[A-Z]{3}$/.test(code) || currencyExponent(code) === undefined) {
          ctx.addIssue({ code: 'custom', path: ['profiles', name, 'acceptedCurrencies', code], message: 'not an ISO 4217 currency code (upper case, such as GBP)' });
        }
        if (code === p.currency) ctx.addIssue({ code: 'custom', path: ['profiles', name, 'acceptedCurrencies', code], message: 'is the profile currency (always accepted)' });
        if (bounds.maxAmount < bounds.minAmount) {
          ctx.addIssue({ code: 'custom', path: ['profiles', name, 'acceptedCurrencies', code, 'maxAmount'], message: 'must be >= minAmount' });
        }
      }
      // Every configured hand-back target must make a Refer-To, checked now rather than at hand-back.
      const hb = p.handBack;
      const targets: [(string | number)[], string | undefined][] = [
        [['automated'], hb.automated],
        [['agent'], hb.agent],
        ...Object.entries(hb.byOutcome).map(([o, t]): [(string | number)[], string | undefined] => [['byOutcome', o], t]),
        ...hb.returnTargets.uris.map((t, i): [(string | number)[], string | undefined] => [['returnTargets', 'uris', i], t]),
      ];
      for (const [path, target] of targets) {
        if (target === undefined) continue;
        if (sipTargetOf(target, hb.returnHost) === undefined) {
          ctx.addIssue({ code: 'custom', path: ['profiles', name, 'handBack', ...path], message: 'must be a sip:/sips: URI, a tel: URI or a number (sent to returnHost)' });
        }
      }
      // Below the time one charge may take, "no record at the PSP" could be a request still on its way.
      if (cfg.reconcile.noRecordAfterSeconds * 1000 <= p.retry.budgetMs) {
        ctx.addIssue({ code: 'custom', path: ['reconcile', 'noRecordAfterSeconds'], message: `must be above profiles.${name}.retry.budgetMs (${p.retry.budgetMs} ms)` });
      }
    }
  });

export type Config = z.infer<typeof configSchema>;
export type Profile = z.infer<typeof profileSchema>;
export type PspConfig = z.infer<typeof pspSchema>;
export type RetryConfig = z.infer<typeof retrySchema>;
export type GenesysConfig = z.infer<typeof genesysSchema>;
export type { AssistConfig, EdgeConfig, RtpengineConfig } from './edge-schema.js';
export { profileSchema };
