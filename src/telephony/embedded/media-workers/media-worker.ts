/**
 * A media worker thread: one MediaEngine (its own pacer, its share of the RTP ports, the prompt
 * packs) whose MediaSessions run exactly as they do in-process. The main thread drives them
 * through pool.ts; see protocol.ts for the messages.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { isPayIvrError } from '../../../errors.js';
import { createLogger } from '../../../log.js';
import { MediaRanges } from '../../media-ranges.js';
import { MediaEngine, type MediaSession } from '../media/engine.js';
import type { FromWorker, SyncRequest, ToWorker, WireError, WorkerInit } from './protocol.js';
import { replySync } from './sync-call.js';
import { raiseThisThread } from './thread-priority.js';

function wire(e: unknown): WireError {
  if (isPayIvrError(e)) return { code: e.code, message: e.message, ...(e.details !== undefined ? { details: { ...e.details } } : {}) };
  return { code: 'ERR_INTERNAL', message: e instanceof Error ? e.message : String(e) };
}

async function main(port: MessagePort): Promise<void> {
  const init = workerData as WorkerInit;
  const send = (m: FromWorker): void => port.postMessage(m);
  // Log lines go to the main thread, which writes them through its own logger (one writer, one redaction).
  const logger = createLogger({ level: init.logLevel, destination: { write: (line: string) => send({ t: 'log', line }) } });
  const flag = new Int32Array(init.flag);
  const replies = init.replyPort;
  const sessions = new Map<number, MediaSession>();
  /** Spare sessions announced to the main thread and not handed over by a 'create' since. */
  const unclaimed: number[] = [];
  let engine: MediaEngine | undefined;
  // Before anything else runs on this thread: its timers must win the CPU (thread-priority.ts).
  const priority = raiseThisThread(init.priority);
  try {
    if (init.preload !== undefined) await import(init.preload);
    // A worker has nothing else to do just before a burst: it sleeps the last millisecond precisely.
    engine = new MediaEngine({ ...init.engine, preciseWake: init.engine.preciseWake ?? true, mediaRanges: new MediaRanges(init.mediaRanges), logger });
    await engine.start();
  } catch (e) {
    send({ t: 'start-failed', error: wire(e) });
    return;
  }
  const live = engine;

  const create = (sid: number): number => {
    const s = live.createSession();
    sessions.set(sid, s);
    s.on('digit', (digit, source) => send({ t: 'digit', sid, digit, source }));
    s.on('rtp-timeout', () => send({ t: 'rtp-timeout', sid }));
    return s.localPort;
  };

  const syncValue = (m: SyncRequest): unknown => {
    if (m.t === 'has-prompt') return live.hasPrompt(m.language, m.id);
    if (m.t === 'create') {
      try {
        return { sid: m.sid, port: create(m.sid) };
      } catch (e) {
        // The ports are held by spares the main thread has not heard of yet: hand one of those over.
        const spare = unclaimed.shift();
        const s = spare === undefined ? undefined : sessions.get(spare);
        if (spare === undefined || s === undefined) throw e;
        return { sid: spare, port: s.localPort };
      }
    }
    const s = sessions.get(m.sid);
    if (s === undefined) return m.t === 'apply' ? false : m.t === 'offer' ? '' : undefined;
    switch (m.t) {
      case 'answer':
        return s.answerOffer(m.sdp);
      case 'offer':
        return s.createOffer();
      case 'apply':
        return s.applyAnswer(m.sdp);
      case 'update':
        return s.updateOffer(m.sdp);
    }
  };

  port.on('message', (m: ToWorker) => {
    switch (m.t) {
      case 'create':
      case 'answer':
      case 'offer':
      case 'apply':
      case 'update':
      case 'has-prompt': {
        try {
          replySync(flag, replies, { rid: m.rid, ok: true, value: syncValue(m) });
        } catch (e) {
          replySync(flag, replies, { rid: m.rid, ok: false, error: wire(e) });
        }
        return;
      }
      case 'claim': {
        const i = unclaimed.indexOf(m.sid);
        if (i >= 0) unclaimed.splice(i, 1);
        return;
      }
      case 'spare': {
        try {
          const port = create(m.sid);
          unclaimed.push(m.sid);
          send({ t: 'spare-ready', sid: m.sid, port });
        } catch (e) {
          send({ t: 'spare-failed', sid: m.sid, error: wire(e) });
        }
        return;
      }
      case 'play': {
        const s = sessions.get(m.sid);
        if (s === undefined) {
          send({ t: 'played', sid: m.sid, pid: m.pid, result: 'ended' });
          return;
        }
        s.play(m.fragments, m.options).then(
          (result) => send({ t: 'played', sid: m.sid, pid: m.pid, result }),
          (e: unknown) => send({ t: 'play-failed', sid: m.sid, pid: m.pid, error: wire(e) }),
        );
        return;
      }
      case 'confirm':
        sessions.get(m.sid)?.confirm();
        return;
      case 'stop-play':
        sessions.get(m.sid)?.stopPlay();
        return;
      case 'inband':
        sessions.get(m.sid)?.listenForInbandKeys();
        return;
      case 'inject':
        sessions.get(m.sid)?.injectDigit(m.digit, m.source);
        return;
      case 'close':
        sessions.get(m.sid)?.close();
        sessions.delete(m.sid);
        return;
      case 'stop':
        void live.stop().finally(() => {
          sessions.clear();
          send({ t: 'stopped' });
        });
        return;
    }
  });
  send({ t: 'ready', priority: priority.applied, refused: priority.refused });
}

if (parentPort !== null) void main(parentPort);
