import type { ReferResult } from './types.js';

/**
 * The hand-back REFER (RFC 3515) as both backends track it: the REFER's own answer, then the
 * NOTIFYs of the implicit subscription, whose message/sipfrag carries the transfer's progress,
 * until a final status, the end of the subscription, the end of the call or the timeout. The
 * backend sends the REFER and feeds in what comes back; the tracker decides the `ReferResult`.
 *
 * A final NOTIFY settles the REFER even before the REFER's 2xx arrives (the two can cross on
 * the wire, and the NOTIFY shows the REFER was accepted); 202 stands in for the status not seen.
 */

/** The Refer-To value for a target: a bare URI is bracketed (a URI with headers must be). */
export function bracketUri(uri: string): string {
  const t = uri.trim();
  return t.startsWith('<') || t.includes('<') ? t : `<${t}>`;
}

/** The status code of a message/sipfrag body ("SIP/2.0 200 OK"), or undefined when it is not one. */
export function sipfragStatus(body: string | undefined): number | undefined {
  if (body === undefined) return undefined;
  // The status line is all that counts; a long body is not read further.
  const m = /^\s*SIP\/2\.0[ \t]+([1-6][0-9]{2})(?![0-9])/.exec(body.slice(0, 200));
  return m?.[1] !== undefined ? Number(m[1]) : undefined;
}

/** True when a Subscription-State header value says the subscription is over. */
export function subscriptionTerminated(value: string | undefined): boolean {
  return value !== undefined && /^\s*terminated(?![A-Za-z0-9-])/i.test(value);
}

/** True when an Event header value names the refer event package ("refer", "refer;id=7"). */
export function isReferEvent(value: string | undefined): boolean {
  return value !== undefined && (value.split(';')[0] ?? '').trim().toLowerCase() === 'refer';
}

interface ReferTrackerOptions {
  /** How long to wait for the final NOTIFY (profile timeouts.referMs). */
  timeoutMs: number;
  /** Called once, synchronously, with the result (the backend frees its REFER slot here). */
  onSettled?: (result: ReferResult) => void;
}

export class ReferTracker {
  /** Resolves once with the REFER's result; never rejects. */
  readonly result: Promise<ReferResult>;
  readonly #timeoutMs: number;
  readonly #onSettled: ((result: ReferResult) => void) | undefined;
  readonly #timer: ReturnType<typeof setTimeout>;
  #resolve!: (r: ReferResult) => void;
  #settled = false;
  /** The REFER's final response status, once one came. */
  #referStatus: number | undefined;

  constructor(options: ReferTrackerOptions) {
    this.#timeoutMs = options.timeoutMs;
    this.#onSettled = options.onSettled;
    this.result = new Promise<ReferResult>((resolve) => {
      this.#resolve = resolve;
    });
    this.#timer = setTimeout(() => this.#timedOut(), options.timeoutMs);
  }

  get settled(): boolean {
    return this.#settled;
  }

  /** A response to the REFER. Provisional ones change nothing; a failure settles it as refused. */
  referAnswered(status: number): void {
    if (this.#settled || status < 200) return;
    this.#referStatus = status;
    if (status >= 300) this.#settle({ ok: false, referStatus: status, detail: `REFER refused with ${status}` });
  }

  /** The REFER could not be sent, or its transaction ended without an answer. */
  referFailed(referStatus: number, detail: string): void {
    this.#settle({ ok: false, referStatus, detail });
  }

  /** A NOTIFY of the refer subscription: its message/sipfrag body and Subscription-State header. */
  notify(sipfrag: string | undefined, subscriptionState: string | undefined): void {
    if (this.#settled) return;
    const status = sipfragStatus(sipfrag);
    if (status !== undefined && status >= 200) {
      const ok = status < 300;
      this.#settle({ ok, referStatus: this.#acceptedStatus(), finalStatus: status, detail: ok ? 'transfer accepted' : `transfer failed: final NOTIFY ${status}` });
    } else if (subscriptionTerminated(subscriptionState)) {
      this.#settle({ ok: false, referStatus: this.#acceptedStatus(), detail: 'subscription terminated without a final status' });
    }
  }

  /** The call ended (either side) before the REFER settled. */
  callEnded(): void {
    this.#settle({ ok: false, referStatus: this.#referStatus ?? 481, detail: 'call ended before the final NOTIFY' });
  }

  #acceptedStatus(): number {
    return this.#referStatus ?? 202;
  }

  #timedOut(): void {
    const detail = this.#referStatus === undefined ? `no answer to REFER within ${this.#timeoutMs} ms` : `no final NOTIFY within ${this.#timeoutMs} ms`;
    this.#settle({ ok: false, referStatus: 408, detail });
  }

  #settle(result: ReferResult): void {
    if (this.#settled) return;
    this.#settled = true;
    clearTimeout(this.#timer);
    this.#resolve(result);
    this.#onSettled?.(result);
  }
}
