/**
 * The media option lists of the configuration (`rtp.*`). Constants only, no imports: the schema
 * validates a file against them and the media code takes its words from them, so the two cannot
 * disagree, and validating a file loads no media code.
 */

/** `rtp.srtp`: which media profiles an offer may use (rule: `src/telephony/srtp-policy.ts`). */
export const SRTP_POLICIES = ['off', 'optional', 'required'] as const;
export type SrtpPolicy = (typeof SRTP_POLICIES)[number];

/** `rtp.srtpSuites`: the SDES suites the embedded SRTP implements (Genesys BYOC uses both). */
export const SRTP_SUITES = ['AES_CM_128_HMAC_SHA1_80', 'AES_CM_128_HMAC_SHA1_32'] as const;
export type SrtpSuite = (typeof SRTP_SUITES)[number];

/** `rtp.workerPriority`: scheduling of the media worker threads (media-workers/thread-priority.ts). */
export const MEDIA_THREAD_PRIORITIES = ['normal', 'high', 'realtime'] as const;
export type MediaThreadPriority = (typeof MEDIA_THREAD_PRIORITIES)[number];
