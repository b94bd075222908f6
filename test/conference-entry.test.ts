import { describe, expect, it } from 'vitest';
import { configSchema, type GenesysConfig } from '../src/config/schema.js';
import { CONFERENCE_LEG_DETAIL, handBackMethod, parseEntryMode, readbackFor, resolveEntryMode } from '../src/domain/entry.js';
import { dialogueSettings } from '../src/config/profiles.js';
import { OUTCOMES } from '../src/domain/outcome.js';
import { extractContext } from '../src/genesys/context.js';
import { resolveContext } from '../src/genesys/resolve-context.js';
import { KeyMerger, SAME_PRESS_MS } from '../src/telephony/key-merger.js';
import { formatReason } from '../src/telephony/sip-reason.js';
import { assertValidSegment } from '../src/reports/segment.js';
import { CallController } from '../src/call/controller.js';
import { MemoryStore } from '../src/store/memory.js';
import { Metrics } from '../src/http/metrics.js';
import { silentLogger } from '../src/log.js';
import { TypedEmitter } from '../src/util/typed-emitter.js';
import type { CallEvents, HangupReason, InboundCall, PlayResult, ReferResult } from '../src/telephony/types.js';
import type { PaymentGateway } from '../src/psp/types.js';

import type { DtmfDigit } from '../src/domain/dtmf.js';
import { encodeUuiHex } from '../src/genesys/uui.js';

const genesys: GenesysConfig = configSchema.parse({}).genesys;
/** A profile must name its PSP (no silent sandbox): these configurations name the sandbox. */
const SANDBOX = { type: 'sandbox' } as const;
const uuiHeader = (ascii: string): ((name: string) => string | undefined) => (name) => (name.toLowerCase() === 'user-to-user' ? `${encodeUuiHex(ascii)};encoding=hex` : undefined);

describe('entry mode: the hand-back rule (domain)', () => {
  it('a transferred call is handed back with a REFER, whatever the outcome', () => {
    for (const o of OUTCOMES) expect(handBackMethod('transfer', o)).toEqual({ kind: 'refer' });
  });

  it('a conference leg is never REFERred: BYE with a Reason naming the outcome, hand-back detail said plainly', () => {
    for (const o of OUTCOMES) {
      const m = handBackMethod('conference', o);
      expect(m).toEqual({ kind: 'bye', reason: { cause: 200, text: `Conference leg ended; outcome ${o}` }, detail: CONFERENCE_LEG_DETAIL });
    }
    const m = handBackMethod('conference', 'approved');
    if (m.kind !== 'bye') throw new Error('expected bye');
    expect(formatReason({ protocol: 'SIP', ...m.reason })).toBe('SIP;cause=200;text="Conference leg ended; outcome approved"');
  });

  it('the context says it per call, else the profile', () => {
    expect(resolveEntryMode('transfer', undefined)).toBe('transfer');
    expect(resolveEntryMode('conference', undefined)).toBe('conference');
    expect(resolveEntryMode('transfer', 'conference')).toBe('conference');
    expect(resolveEntryMode('conference', 'transfer')).toBe('transfer');
    expect(['conf', 'CONF', 'conference', ' Conference '].map(parseEntryMode)).toEqual(['conference', 'conference', 'conference', 'conference']);
    expect(['transfer', 'xfer'].map(parseEntryMode)).toEqual(['transfer', 'transfer']);
    expect(['', 'yes', 'confer', '1'].map(parseEntryMode)).toEqual([undefined, undefined, undefined, undefined]);
  });
});

describe('entry mode: a conference reads back masked digits only', () => {
  it('expiry and security code readbacks are off in a conference whatever the profile says; transfer keeps the profile', () => {
    const all = { amount: true, pan: true, expiry: true, securityCode: true };
    expect(readbackFor('conference', all)).toEqual({ amount: true, pan: true, expiry: false, securityCode: false });
    expect(readbackFor('transfer', all)).toEqual(all);
    const cfg = configSchema.parse({ profiles: { default: { entry: 'conference', readback: all, psp: SANDBOX }, plain: { readback: all, psp: SANDBOX } } });
    expect(dialogueSettings(cfg.profiles.default!).readback).toEqual({ amount: true, pan: true, expiry: false, securityCode: false });
    expect(dialogueSettings(cfg.profiles.plain!).readback).toEqual(all);
    // The call's entry (context entry=conf) decides, not only the profile's.
    expect(dialogueSettings(cfg.profiles.plain!, undefined, { currency: 'EUR', minAmount: 1, maxAmount: 10, entry: 'conference' }).readback.expiry).toBe(false);
  });
});

describe('entry mode: configuration and context', () => {
  it('profiles default to transfer; conference is accepted; anything else fails at start with its path', () => {
    const cfg = configSchema.parse({ profiles: { default: { psp: SANDBOX }, conf: { entry: 'conference', psp: SANDBOX } } });
    expect(cfg.profiles.default?.entry).toBe('transfer');
    expect(cfg.profiles.conf?.entry).toBe('conference');
    const bad = configSchema.safeParse({ profiles: { default: { entry: 'bridge', psp: SANDBOX } } });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]?.path).toEqual(['profiles', 'default', 'entry']);
    expect(genesys.keys.entry).toBe('entry');
    // The key takes part in the duplicate-key rule like the others.
    expect(configSchema.safeParse({ genesys: { keys: { entry: 'mode' } } }).success).toBe(false);
  });

  it('reads entry=conf, refuses a value it does not know (recorded as a problem, value shown) and a key sent twice', () => {
    expect(extractContext(uuiHeader('amt=10.00|entry=conf'), genesys)).toMatchObject({ entry: 'conference', rejected: [] });
    expect(extractContext(uuiHeader('amt=10.00|ENTRY=transfer'), genesys)).toMatchObject({ entry: 'transfer', rejected: [] });
    const bad = extractContext(uuiHeader('amt=10.00|entry=bridge'), genesys);
    expect(bad.entry).toBeUndefined();
    expect(bad.rejected).toEqual([{ key: 'entry', problem: 'bad-field', shown: 'bridge', length: 6 }]);
    const twice = extractContext(uuiHeader('entry=conf|amt=10.00|entry=conf'), genesys);
    expect(twice.entry).toBeUndefined();
    expect(twice.rejected).toEqual([{ key: 'entry', problem: 'duplicate-key', length: 0 }]);
  });

  it('the resolved context carries the entry mode: context first, then the profile; a bad one makes the context bad', () => {
    const cfg = configSchema.parse({ profiles: { default: { entry: 'conference', currency: 'USD', psp: SANDBOX }, plain: { psp: SANDBOX } } });
    const conf = { name: 'default', profile: cfg.profiles.default! };
    const plain = { name: 'plain', profile: cfg.profiles.plain! };
    expect(resolveContext(extractContext(uuiHeader('amt=10.00'), genesys), conf, genesys.keys).entry).toBe('conference');
    expect(resolveContext(extractContext(uuiHeader('amt=10.00'), genesys), plain, genesys.keys).entry).toBe('transfer');
    expect(resolveContext(extractContext(uuiHeader('amt=10.00|entry=conf'), genesys), plain, genesys.keys).entry).toBe('conference');
    const bad = resolveContext(extractContext(uuiHeader('amt=10.00|entry=x'), genesys), plain, genesys.keys);
    expect(bad.entry).toBe('transfer');
    expect(bad.badContext).toBe('bad-field');
  });

  it('segment records may carry the entry mode, and only a known one', () => {
    const seg = {
      id: 'c1', node: 'n1', profile: 'default', mode: 'agent', entry: 'conference', language: 'en-US', startedAt: '2026-01-01T00:00:00Z', endedAt: '2026-01-01T00:01:00Z', durationMs: 60_000,
      steps: [], attempts: { charges: 1, declines: 0, invalidEntries: 0, timeouts: 0 }, declineClasses: [], pspMs: [], outcome: 'approved', currency: 'USD', handBack: { target: '', status: 'skipped' },
    };
    expect(() => assertValidSegment(seg)).not.toThrow();
    expect(() => assertValidSegment({ ...seg, entry: 'bridge' })).toThrow(/entry/);
  });
});

describe('one key press seen by RFC 4733 and in-band counts once (KeyMerger)', () => {
  it('the second source copy of a press is dropped; a real repeat of the key is kept', () => {
    const m = new KeyMerger();
    const seen: string[] = [];
    const feed = (d: DtmfDigit, s: 'rfc4733' | 'inband' | 'sip-info', t: number): void => {
      if (m.accept(d, s, t)) seen.push(`${d}:${s}`);
    };
    feed('4', 'rfc4733', 0);
    feed('4', 'inband', 40); // same press, heard in the mix
    feed('4', 'rfc4733', 200); // "44": the second press
    feed('4', 'inband', 245);
    feed('2', 'inband', 400); // in-band first this time
    feed('2', 'rfc4733', 420);
    feed('2', 'inband', 600); // the event stream lost this press: kept from the audio
    feed('7', 'rfc4733', 800);
    feed('7', 'rfc4733', 860); // same source twice: always two presses
    expect(seen).toEqual(['4:rfc4733', '4:rfc4733', '2:inband', '2:inband', '7:rfc4733', '7:rfc4733']);
  });

  it('another digit, or the same one after the window, is never merged', () => {
    const m = new KeyMerger();
    expect(m.accept('1', 'rfc4733', 0)).toBe(true);
    expect(m.accept('2', 'inband', 10)).toBe(true);
    expect(m.accept('2', 'rfc4733', 10 + SAME_PRESS_MS + 1)).toBe(true);
    // Each press pairs once: a third report within the window is a new press.
    const n = new KeyMerger();
    expect(n.accept('5', 'rfc4733', 0)).toBe(true);
    expect(n.accept('5', 'inband', 30)).toBe(false);
    expect(n.accept('5', 'sip-info', 60)).toBe(true);
  });
});

/** A call whose caller keys `keys` once it is answered; records REFERs and the BYE. */
class ScriptedCall extends TypedEmitter<CallEvents> implements InboundCall {
  readonly id = 'conf-call-1';
  readonly callId = 'call-id-1@test';
  readonly fromUri = 'sip:genesys@127.0.0.1';
  readonly toUri = 'sip:+18005550123@127.0.0.1';
  readonly requestUri = 'sip:+18005550123@127.0.0.1';
  readonly calledUser = '+18005550123';
  readonly remote = { address: '127.0.0.1', port: 5060, transport: 'udp' as const };
  state: 'offered' | 'answered' | 'ended' = 'offered';
  readonly refers: string[] = [];
  hangups: HangupReason[] = [];
  inband = false;
  #keys: string[];

  constructor(
    readonly headerValues: Record<string, string>,
    keys: string[],
  ) {
    super();
    this.#keys = [...keys];
  }

  header(name: string): string | undefined {
    return this.headerValues[name.toLowerCase()];
  }
  headers(name: string): string[] {
    const v = this.header(name);
    return v === undefined ? [] : [v];
  }
  listenForInbandKeys(): void {
    this.inband = true;
  }
  reject(): Promise<void> {
    return Promise.resolve();
  }
  answer(): Promise<void> {
    this.state = 'answered';
    return Promise.resolve();
  }
  play(): Promise<PlayResult> {
    // The caller keys the next group of keys over each prompt (barge-in and type-ahead as in a real call).
    const group = this.#keys.shift();
    return new Promise((r) => {
      setImmediate(() => {
        for (const k of group ?? '') this.emit('digit', k as DtmfDigit, 'inband');
        r(group === undefined ? 'done' : 'interrupted');
      });
    });
  }
  stopPlay(): void {}
  refer(referTo: string): Promise<ReferResult> {
    this.refers.push(referTo);
    return Promise.resolve({ ok: false, referStatus: 603, detail: 'a conference leg must never REFER' });
  }
  hangup(reason?: HangupReason): Promise<void> {
    if (reason !== undefined) this.hangups.push(reason);
    if (this.state !== 'ended') {
      this.state = 'ended';
      this.emit('ended', { by: 'local', reason: 'hangup' });
    }
    return Promise.resolve();
  }
}

describe('a conference leg end to end through the controller (scripted call)', () => {
  it('approved: result announced, BYE with its Reason, no REFER; the result says conference, hand-back skipped', async () => {
    const config = configSchema.parse({ profiles: { default: { entry: 'conference', currency: 'USD', amountSource: 'context', psp: { type: 'sandbox' } } } });
    const charges: number[] = [];
    const gateway: PaymentGateway = {
      name: 'scripted',
      charge: (req) => {
        charges.push(req.amount);
        return Promise.resolve({ status: 'approved', transactionId: 'txn-1', authCode: 'A1' });
      },
      lookup: () => Promise.resolve(undefined),
    };
    const store = new MemoryStore();
    const call = new ScriptedCall(
      { 'user-to-user': `${encodeUuiHex('acct=C-1|amt=12.00|ref=INV-1|mode=agent')};encoding=hex`, 'x-inin-cnv': 'cnv-1234' },
      // Amount confirmed, card, its masked readback confirmed, expiry (no readback in a conference), CVV.
      ['1', '4242424242424242#', '1', '1234', '737'],
    );
    const controller = new CallController(call, { config, logger: silentLogger, store, metrics: new Metrics(), gatewayFor: () => gateway });
    const result = await controller.run();
    expect(call.inband).toBe(true);
    expect(charges).toEqual([1200]);
    expect(call.refers).toEqual([]);
    expect(call.hangups).toEqual([{ protocol: 'SIP', cause: 200, text: 'Conference leg ended; outcome approved' }]);
    expect(result).toMatchObject({ outcome: 'approved', entry: 'conference', mode: 'agent', conversationId: 'cnv-1234', last4: '4242', handBack: { target: '', status: 'skipped', detail: CONFERENCE_LEG_DETAIL } });
    const stored = await store.getById(call.id);
    expect(stored).toMatchObject({ outcome: 'approved', entry: 'conference', handBack: { status: 'skipped', detail: CONFERENCE_LEG_DETAIL } });
  });

  it('a transfer profile still hands back with a REFER, and the result says transfer', async () => {
    const config = configSchema.parse({ profiles: { default: { currency: 'USD', psp: { type: 'sandbox' } } } });
    const call = new ScriptedCall({ 'user-to-user': `${encodeUuiHex('amt=12.00|ident=0')};encoding=hex` }, []);
    const gateway: PaymentGateway = { name: 'unused', charge: () => Promise.reject(new Error('no charge expected')), lookup: () => Promise.resolve(undefined) };
    const result = await new CallController(call, { config, logger: silentLogger, store: new MemoryStore(), metrics: new Metrics(), gatewayFor: () => gateway }).run();
    expect(call.inband).toBe(false);
    expect(call.refers.length).toBe(1);
    expect(result).toMatchObject({ outcome: 'not-identified', entry: 'transfer', handBack: { status: 'failed' } });
  });
});
