import type { Logger } from '../../../log.js';
import { describeError } from '../../../errors.js';
import { headerValue, parseCSeq, parseVia, rawHeaders, type SipHeader, type SipRequest, type SipResponse } from './message.js';
import type { Flow } from './transport.js';

/**
 * RFC 3261 section 17 transactions (with RFC 6026's "Accepted" state): server INVITE, server
 * non-INVITE, client non-INVITE and a client INVITE for our re-INVITE refreshes. Timers A-K use
 * T1/T2/T4 (scalable for tests). Retransmissions only happen on unreliable (UDP) flows.
 */

export interface TimerConfig {
  t1: number;
  t2: number;
  t4: number;
}

export const DEFAULT_TIMERS: TimerConfig = { t1: 500, t2: 4000, t4: 5000 };

type SendFn = (msg: SipRequest | SipResponse, flow: Flow) => void;

interface LayerContext {
  send: SendFn;
  timers: TimerConfig;
  log: Logger;
  remove(key: string, tx: unknown): void;
}

type Timer = ReturnType<typeof setTimeout>;

abstract class TimedTransaction {
  #timers = new Set<Timer>();

  protected after(ms: number, fn: () => void): Timer {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      fn();
    }, ms);
    this.#timers.add(t);
    return t;
  }

  protected cancel(t: Timer | undefined): void {
    if (t === undefined) return;
    clearTimeout(t);
    this.#timers.delete(t);
  }

  protected clearAll(): void {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }
}

type ServerTxState = 'trying' | 'proceeding' | 'accepted' | 'completed' | 'confirmed' | 'terminated';

/** Server transaction (INVITE or non-INVITE, by the request method). */
export class ServerTransaction extends TimedTransaction {
  readonly key: string;
  readonly request: SipRequest;
  readonly flow: Flow;
  readonly isInvite: boolean;
  state: ServerTxState;
  /** Set for INVITE: called when Timer H fires (no ACK for a non-2xx final). */
  onAckTimeout: (() => void) | undefined;
  #ctx: LayerContext;
  #lastResponse: SipResponse | undefined;
  #timerG: Timer | undefined;

  constructor(key: string, request: SipRequest, flow: Flow, ctx: LayerContext) {
    super();
    this.key = key;
    this.request = request;
    this.flow = flow;
    this.isInvite = request.method === 'INVITE';
    this.state = this.isInvite ? 'proceeding' : 'trying';
    this.#ctx = ctx;
  }

  get finalStatus(): number | undefined {
    return this.#lastResponse !== undefined && this.#lastResponse.status >= 200 ? this.#lastResponse.status : undefined;
  }

  get reliable(): boolean {
    return this.flow.transport !== 'udp';
  }

  /** The TU's response. Ignored once a final response was sent. */
  respond(res: SipResponse): void {
    if (this.state !== 'trying' && this.state !== 'proceeding') return;
    this.#lastResponse = res;
    this.#ctx.send(res, this.flow);
    const { t1, t2 } = this.#ctx.timers;
    if (res.status < 200) {
      this.state = 'proceeding';
      return;
    }
    if (!this.isInvite) {
      this.state = 'completed';
      this.after(this.reliable ? 0 : 64 * t1, () => this.terminate()); // Timer J
      return;
    }
    if (res.status < 300) {
      this.state = 'accepted';
      this.after(64 * t1, () => this.terminate()); // Timer L (RFC 6026)
      return;
    }
    this.state = 'completed';
    if (!this.reliable) {
      let interval = t1;
      const retransmit = (): void => {
        if (this.state !== 'completed' || this.#lastResponse === undefined) return;
        this.#ctx.send(this.#lastResponse, this.flow);
        interval = Math.min(2 * interval, t2);
        this.#timerG = this.after(interval, retransmit);
      };
      this.#timerG = this.after(interval, retransmit); // Timer G
    }
    this.after(64 * t1, () => {
      // Timer H: no ACK.
      if (this.state !== 'completed') return;
      this.terminate();
      this.onAckTimeout?.();
    });
  }

  /** A retransmission of the request (or an ACK for a non-2xx final). */
  receive(req: SipRequest): void {
    if (req.method === 'ACK') {
      if (this.isInvite && this.state === 'completed') {
        this.state = 'confirmed';
        this.cancel(this.#timerG);
        this.clearAll();
        this.after(this.reliable ? 0 : this.#ctx.timers.t4, () => this.terminate()); // Timer I
      }
      return;
    }
    if ((this.state === 'proceeding' || this.state === 'completed') && this.#lastResponse !== undefined) {
      this.#ctx.send(this.#lastResponse, this.flow);
    }
  }

  terminate(): void {
    if (this.state === 'terminated') return;
    this.state = 'terminated';
    this.clearAll();
    this.#ctx.remove(this.key, this);
  }
}

/** A final response (with the flow it came on, when known) or Timer B/F. */
export type ClientTxResult = { kind: 'response'; response: SipResponse; source?: Flow | undefined } | { kind: 'timeout' };

/** Client non-INVITE transaction (Timers E, F, K) or client INVITE (A, B, D; ACK for non-2xx). */
export class ClientTransaction extends TimedTransaction {
  readonly branch: string;
  readonly request: SipRequest;
  readonly flow: Flow;
  readonly isInvite: boolean;
  state: 'calling' | 'trying' | 'proceeding' | 'accepted' | 'completed' | 'terminated';
  #ctx: LayerContext;
  #onFinal: (r: ClientTxResult) => void;
  #onProvisional: ((r: SipResponse, source: Flow | undefined) => void) | undefined;
  #retransmit: Timer | undefined;
  #ack: SipRequest | undefined;
  /** For INVITE: 2xx retransmissions go to the TU (it re-sends its ACK). */
  on2xxRetransmission: ((r: SipResponse) => void) | undefined;

  constructor(
    branch: string,
    request: SipRequest,
    flow: Flow,
    ctx: LayerContext,
    onFinal: (r: ClientTxResult) => void,
    onProvisional?: (r: SipResponse, source: Flow | undefined) => void,
  ) {
    super();
    this.branch = branch;
    this.request = request;
    this.flow = flow;
    this.isInvite = request.method === 'INVITE';
    this.state = this.isInvite ? 'calling' : 'trying';
    this.#ctx = ctx;
    this.#onFinal = onFinal;
    this.#onProvisional = onProvisional;
  }

  start(): void {
    const { t1, t2 } = this.#ctx.timers;
    this.#ctx.send(this.request, this.flow);
    if (this.flow.transport === 'udp') {
      let interval = t1;
      const again = (): void => {
        if (this.state !== 'trying' && this.state !== 'proceeding' && this.state !== 'calling') return;
        if (this.isInvite && this.state !== 'calling') return; // Timer A stops on a provisional
        this.#ctx.send(this.request, this.flow);
        // Timer E: doubling up to T2; in Proceeding it fires every T2. Timer A: plain doubling.
        interval = this.isInvite ? 2 * interval : this.state === 'proceeding' ? t2 : Math.min(2 * interval, t2);
        this.#retransmit = this.after(interval, again);
      };
      this.#retransmit = this.after(interval, again);
    }
    this.after(64 * t1, () => {
      // Timer B / F. Timer B only fires in Calling (17.1.1.2): once the peer answered with a
      // provisional, an INVITE may ring as long as it likes, and the TU ends it with CANCEL.
      if (this.state === 'calling' || this.state === 'trying' || (this.state === 'proceeding' && !this.isInvite)) {
        this.terminate();
        this.#safe(() => this.#onFinal({ kind: 'timeout' }));
      }
    });
  }

  /**
   * Ends an INVITE transaction as a timeout 64*T1 from now unless a final response came: after
   * our CANCEL (9.1), and for in-dialog offers, which must not hang on a provisional.
   */
  deadline(): void {
    if (!this.isInvite) return;
    this.after(64 * this.#ctx.timers.t1, () => {
      if (this.state !== 'calling' && this.state !== 'proceeding') return;
      this.terminate();
      this.#safe(() => this.#onFinal({ kind: 'timeout' }));
    });
  }

  receive(res: SipResponse, source?: Flow): void {
    const reliable = this.flow.transport !== 'udp';
    const { t1, t4 } = this.#ctx.timers;
    if (res.status < 200) {
      if (this.state === 'calling' || this.state === 'trying' || this.state === 'proceeding') {
        this.state = 'proceeding';
        if (this.isInvite) this.cancel(this.#retransmit);
        const cb = this.#onProvisional;
        if (cb !== undefined) this.#safe(() => cb(res, source));
      }
      return;
    }
    if (this.state === 'calling' || this.state === 'trying' || this.state === 'proceeding') {
      this.clearAll();
      if (!this.isInvite) {
        this.state = 'completed';
        this.after(reliable ? 0 : t4, () => this.terminate()); // Timer K
      } else if (res.status < 300) {
        this.state = 'accepted';
        this.after(64 * t1, () => this.terminate()); // Timer M
      } else {
        this.state = 'completed';
        this.#ack = buildNonSuccessAck(this.request, res);
        this.#ctx.send(this.#ack, this.flow);
        this.after(reliable ? 0 : 64 * t1, () => this.terminate()); // Timer D
      }
      this.#safe(() => this.#onFinal({ kind: 'response', response: res, source }));
      return;
    }
    if (this.isInvite && this.state === 'accepted' && res.status < 300) {
      const cb = this.on2xxRetransmission;
      if (cb !== undefined) this.#safe(() => cb(res));
    } else if (this.isInvite && this.state === 'completed' && this.#ack !== undefined) {
      this.#ctx.send(this.#ack, this.flow);
    }
  }

  terminate(): void {
    if (this.state === 'terminated') return;
    this.state = 'terminated';
    this.clearAll();
    this.#ctx.remove(this.branch, this);
  }

  #safe(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.#ctx.log.error({ err: describeError(e) }, 'sip: transaction user failed');
    }
  }
}

/** ACK for a non-2xx final response (RFC 3261 17.1.1.3): same branch, To from the response. */
function buildNonSuccessAck(invite: SipRequest, res: SipResponse): SipRequest {
  const headers: SipHeader[] = [];
  const topVia = rawHeaders(invite, 'via')[0];
  if (topVia !== undefined) headers.push({ name: 'via', value: topVia });
  for (const r of rawHeaders(invite, 'route')) headers.push({ name: 'route', value: r });
  headers.push({ name: 'max-forwards', value: '70' });
  headers.push({ name: 'from', value: headerValue(invite, 'from') ?? '' });
  headers.push({ name: 'to', value: headerValue(res, 'to') ?? headerValue(invite, 'to') ?? '' });
  headers.push({ name: 'call-id', value: headerValue(invite, 'call-id') ?? '' });
  const cseq = parseCSeq(headerValue(invite, 'cseq'));
  headers.push({ name: 'cseq', value: `${cseq?.seq ?? 1} ACK` });
  return { kind: 'request', method: 'ACK', uri: invite.uri, headers, body: Buffer.alloc(0) };
}

/** Transaction key of a request (RFC 3261 17.2.3), with a fallback for pre-3261 branches. */
function serverKey(req: SipRequest): string | undefined {
  const top = rawHeaders(req, 'via')[0];
  if (top === undefined) return undefined;
  const via = parseVia(top.split(',')[0] as string);
  if (via === undefined) return undefined;
  const method = req.method === 'ACK' ? 'INVITE' : req.method;
  if (via.branch !== undefined && via.branch.startsWith('z9hG4bK')) {
    return `${via.branch}|${via.host}:${via.port ?? ''}|${method}`;
  }
  const cseq = parseCSeq(headerValue(req, 'cseq'));
  return `legacy|${headerValue(req, 'call-id') ?? ''}|${cseq?.seq ?? ''}|${headerValue(req, 'from') ?? ''}|${top}|${method}`;
}

/** The transaction layer: owns every live transaction and its timers. */
export class TransactionLayer {
  readonly #server = new Map<string, ServerTransaction>();
  readonly #client = new Map<string, ClientTransaction>();
  readonly #ctx: LayerContext;

  constructor(send: SendFn, timers: TimerConfig, log: Logger) {
    this.#ctx = {
      send,
      timers,
      log,
      remove: (key, tx) => {
        if (this.#server.get(key) === tx) this.#server.delete(key);
        if (this.#client.get(key) === tx) this.#client.delete(key);
      },
    };
  }

  get timers(): TimerConfig {
    return this.#ctx.timers;
  }

  get size(): number {
    return this.#server.size + this.#client.size;
  }

  /** Sends outside any transaction (2xx retransmissions, ACK for 2xx). */
  resend(msg: SipRequest | SipResponse, flow: Flow): void {
    this.#ctx.send(msg, flow);
  }

  findServer(req: SipRequest): ServerTransaction | undefined {
    const key = serverKey(req);
    return key === undefined ? undefined : this.#server.get(key);
  }

  /** The INVITE server transaction a CANCEL refers to (same branch, 9.2). */
  findInviteForCancel(cancel: SipRequest): ServerTransaction | undefined {
    const key = serverKey({ ...cancel, method: 'INVITE' });
    return key === undefined ? undefined : this.#server.get(key);
  }

  createServer(req: SipRequest, flow: Flow): ServerTransaction | undefined {
    const key = serverKey(req);
    if (key === undefined) return undefined;
    const tx = new ServerTransaction(key, req, flow, this.#ctx);
    this.#server.set(key, tx);
    return tx;
  }

  /** Starts a client transaction; the request's top Via must carry a fresh branch. */
  sendRequest(
    req: SipRequest,
    flow: Flow,
    onFinal: (r: ClientTxResult) => void,
    onProvisional?: (r: SipResponse, source: Flow | undefined) => void,
  ): ClientTransaction {
    const via = parseVia(rawHeaders(req, 'via')[0] ?? '');
    const branch = via?.branch ?? '';
    const key = `${branch}|${req.method}`;
    const tx = new ClientTransaction(key, req, flow, this.#ctx, onFinal, onProvisional);
    this.#client.set(key, tx);
    tx.start();
    return tx;
  }

  /** Routes a response to its client transaction; false when none matches. */
  matchResponse(res: SipResponse, source?: Flow): boolean {
    const via = parseVia((rawHeaders(res, 'via')[0] ?? '').split(',')[0] as string);
    const cseq = parseCSeq(headerValue(res, 'cseq'));
    if (via?.branch === undefined || cseq === undefined) return false;
    const tx = this.#client.get(`${via.branch}|${cseq.method}`);
    if (tx === undefined) return false;
    tx.receive(res, source);
    return true;
  }

  /** Stops every transaction and timer (shutdown). */
  clear(): void {
    for (const tx of [...this.#server.values()]) tx.terminate();
    for (const tx of [...this.#client.values()]) tx.terminate();
    this.#server.clear();
    this.#client.clear();
  }
}
