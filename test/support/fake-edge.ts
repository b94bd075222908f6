import { TypedEmitter } from '../../src/util/typed-emitter.js';
import type { DtmfDigit } from '../../src/domain/dtmf.js';
import type { AnchorIds, CaptureHost, DtmfSecurityMode, EdgeCall, EdgeCallEvents, EdgeLeg } from '../../src/edge/types.js';

/**
 * An in-memory relayed call, as the B2BUA and the rtpengine adapter present one: every key the
 * caller presses is reported as a 'digit' event (blocked or not, as rtpengine reports DTMF), and
 * what the Genesys leg hears is recorded: the key itself while unblocked, the security mode's
 * replacement while blocked. `ops` lists the edge operations in order, with the keys between them.
 */
export class FakeEdgeCall extends TypedEmitter<EdgeCallEvents> implements EdgeCall {
  readonly sessionId: string;
  readonly anchor: AnchorIds;
  conversationId: string | undefined;
  state: EdgeCall['state'] = 'connected';
  blocked: DtmfSecurityMode | undefined;
  /** block:<mode>, unblock, play:<file>, key (one per key pressed), hangup. */
  readonly ops: string[] = [];
  /** What the Genesys side received for each key. */
  readonly genesysHeard: string[] = [];
  /** Makes the next blockCallerKeys() reject (the media anchor refused). */
  failBlock = false;

  constructor(sessionId: string, opts: { conversationId?: string } = {}) {
    super();
    this.sessionId = sessionId;
    this.anchor = { callId: `edge-${sessionId}@127.0.0.1`, fromTag: 'caller-tag', toTag: 'genesys-tag' };
    this.conversationId = opts.conversationId;
  }

  /** The caller presses these keys (one 'digit' event each, synchronously). */
  press(keys: string): void {
    for (const k of keys) {
      if (this.state === 'ended') return;
      this.ops.push('key');
      this.genesysHeard.push(this.blocked === undefined ? k : `<${this.blocked}>`);
      this.emit('digit', k as DtmfDigit);
    }
  }

  /** The caller (or Genesys) hangs up. */
  end(by: EdgeLeg | 'local' = 'caller'): void {
    if (this.state === 'ended') return;
    this.state = 'ended';
    this.ops.push('ended');
    this.emit('ended', { by, reason: 'BYE' });
  }

  async blockCallerKeys(mode: DtmfSecurityMode): Promise<void> {
    await Promise.resolve();
    if (this.failBlock) {
      this.failBlock = false;
      throw new Error('rtpengine: block DTMF failed');
    }
    if (this.state === 'ended') throw new Error('call gone');
    this.blocked = mode;
    this.ops.push(`block:${mode}`);
  }

  async unblockCallerKeys(): Promise<void> {
    await Promise.resolve();
    if (this.state === 'ended') throw new Error('call gone');
    this.blocked = undefined;
    this.ops.push('unblock');
  }

  async playToCaller(file: string): Promise<void> {
    this.ops.push(`play:${file}`);
  }

  async hangup(): Promise<void> {
    this.ops.push('hangup');
    this.end('local');
  }
}

/** The B2BUA's call registry: live calls by session id, and ids of calls that ended recently. */
export class FakeCaptureHost implements CaptureHost {
  readonly calls = new Map<string, FakeEdgeCall>();
  readonly ended = new Set<string>();

  add(call: FakeEdgeCall): FakeEdgeCall {
    this.calls.set(call.sessionId, call);
    call.on('ended', () => {
      this.calls.delete(call.sessionId);
      this.ended.add(call.sessionId);
    });
    return call;
  }

  find(sessionId: string): EdgeCall | 'ended' | undefined {
    return this.calls.get(sessionId) ?? (this.ended.has(sessionId) ? 'ended' : undefined);
  }
}
