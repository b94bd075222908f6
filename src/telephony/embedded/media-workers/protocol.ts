import type { MessagePort } from 'node:worker_threads';
import type { DtmfDigit } from '../../../domain/dtmf.js';
import type { ErrorCode } from '../../../errors.js';
import type { DtmfSource, PlayOptions, PlayResult } from '../../types.js';
import type { MediaEngineOptions } from '../media/engine.js';
import type { MediaThreadPriority } from '../../../config/media-options.js';

/**
 * Messages between the main thread (pool.ts: SIP and the dialogue) and a media worker
 * (media-worker.ts: a MediaEngine with its share of the RTP ports, its own pacer and sessions).
 * Requests whose answer the SIP side needs at once (a port, an SDP) are synchronous: the main
 * thread posts them and waits on `flag` for the reply on `replyPort` (sync-call.ts).
 */

/** What a worker is started with (workerData). */
export interface WorkerInit {
  engine: Omit<MediaEngineOptions, 'logger' | 'mediaRanges'>;
  /** security.mediaRanges entries. */
  mediaRanges: string[];
  logLevel: string;
  /** Int32 flag the worker sets and notifies after each synchronous reply. */
  flag: SharedArrayBuffer;
  /** Synchronous replies (read on the main thread with receiveMessageOnPort). */
  replyPort: MessagePort;
  /** Module imported before the engine starts (bench instrumentation); never from configuration. */
  preload?: string;
  /** Scheduling priority the worker asks for its thread (rtp.workerPriority). */
  priority: MediaThreadPriority;
}

/** Requests answered on the reply port. */
export type SyncRequest =
  | { t: 'create'; rid: number; sid: number }
  | { t: 'answer'; rid: number; sid: number; sdp: string }
  | { t: 'offer'; rid: number; sid: number }
  | { t: 'apply'; rid: number; sid: number; sdp: string }
  | { t: 'update'; rid: number; sid: number; sdp: string }
  | { t: 'has-prompt'; rid: number; language: string; id: string };

/** Fire-and-forget requests, handled in order with the synchronous ones. */
export type AsyncRequest =
  /** A session created ahead of the call (port bound, nothing negotiated), so createSession needs no round trip. */
  | { t: 'spare'; sid: number }
  /** The main thread took this spare for a call. */
  | { t: 'claim'; sid: number }
  | { t: 'play'; sid: number; pid: number; fragments: string[]; options: PlayOptions }
  | { t: 'confirm'; sid: number }
  | { t: 'stop-play'; sid: number }
  | { t: 'inject'; sid: number; digit: DtmfDigit; source: DtmfSource }
  | { t: 'inband'; sid: number }
  | { t: 'close'; sid: number }
  | { t: 'stop' };

export type ToWorker = SyncRequest | AsyncRequest;

export interface WireError {
  code: ErrorCode;
  message: string;
  details?: Record<string, unknown>;
}

export type SyncReply = { rid: number; ok: true; value: unknown } | { rid: number; ok: false; error: WireError };

/** Events from a worker (its parentPort). Digits stay in memory: a structured clone, never written anywhere. */
export type FromWorker =
  | { t: 'ready'; priority: MediaThreadPriority; refused: string[] }
  | { t: 'stopped' }
  | { t: 'start-failed'; error: WireError }
  | { t: 'spare-ready'; sid: number; port: number }
  | { t: 'spare-failed'; sid: number; error: WireError }
  | { t: 'played'; sid: number; pid: number; result: PlayResult }
  | { t: 'play-failed'; sid: number; pid: number; error: WireError }
  | { t: 'digit'; sid: number; digit: DtmfDigit; source: DtmfSource }
  | { t: 'rtp-timeout'; sid: number }
  | { t: 'log'; line: string };
