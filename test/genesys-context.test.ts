import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { configSchema, type GenesysConfig } from '../src/config/schema.js';
import { extractContext } from '../src/genesys/context.js';
import { encodeUuiHex } from '../src/genesys/uui.js';

const cfg: GenesysConfig = configSchema.parse({}).genesys;
const hexOf = (s: string): string => Buffer.from(s, 'latin1').toString('hex');

/** A case-insensitive header lookup over a plain object, like InboundCall.header. */
function headers(h: Record<string, string>): (name: string) => string | undefined {
  const lower = new Map(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));
  return (name) => lower.get(name.toLowerCase());
}

describe('extractContext, default key format', () => {
  const uui = 'acct=C-1001|amt=49.90|cur=EUR|ref=INV-77|mode=agent|agent=a-42|ret=+33140000000|lang=fr-FR|ident=1';

  it('reads every field from hex UUI with the 00 discriminator', () => {
    const ctx = extractContext(headers({ 'User-to-User': `${encodeUuiHex(uui)};encoding=hex`, 'X-Inin-Cnv': '5f3c2b1a-0000-4000-8000-123456789abc' }), cfg);
    expect(ctx).toEqual({
      accountId: 'C-1001',
      amountText: '49.90',
      currency: 'EUR',
      reference: 'INV-77',
      mode: 'agent',
      agentId: 'a-42',
      returnNumber: '+33140000000',
      language: 'fr-FR',
      identified: true,
      conversationId: '5f3c2b1a-0000-4000-8000-123456789abc',
      uuiStatus: 'ok',
      rejected: [],
    });
  });

  it('reads ascii UUI and a header name in another case', () => {
    const ctx = extractContext(headers({ 'user-to-user': `${uui};encoding=ascii` }), cfg);
    expect(ctx.reference).toBe('INV-77');
    expect(ctx.amountText).toBe('49.90');
  });

  it('falls back to x-User-To-User', () => {
    const ctx = extractContext(headers({ 'X-User-To-User': hexOf('ref=X1|amt=5') }), cfg);
    expect(ctx).toMatchObject({ reference: 'X1', amountText: '5', uuiStatus: 'ok' });
  });

  it('User-to-User wins over x-User-To-User; an unreadable one falls through', () => {
    expect(extractContext(headers({ 'User-to-User': hexOf('ref=A'), 'x-User-To-User': hexOf('ref=B') }), cfg).reference).toBe('A');
    expect(extractContext(headers({ 'User-to-User': 'zz;encoding=hex', 'x-User-To-User': hexOf('ref=B') }), cfg)).toMatchObject({
      reference: 'B',
      uuiStatus: 'ok',
    });
  });

  it('absent and unreadable UUI: defaults, never throws', () => {
    expect(extractContext(headers({}), cfg)).toEqual({ mode: 'automated', identified: true, uuiStatus: 'absent', rejected: [] });
    expect(extractContext(headers({ 'User-to-User': 'GG;encoding=hex' }), cfg)).toEqual({
      mode: 'automated',
      identified: true,
      uuiStatus: 'unreadable',
      rejected: [{ key: 'User-to-User', problem: 'unreadable', length: 0 }],
    });
    expect(
      extractContext(
        () => {
          throw new Error('boom');
        },
        cfg,
      ),
    ).toEqual({ mode: 'automated', identified: true, uuiStatus: 'absent', rejected: [] });
  });

  it('ident variants', () => {
    const ident = (v: string | undefined): boolean =>
      extractContext(headers({ 'User-to-User': hexOf(v === undefined ? 'ref=1' : `ref=1|ident=${v}`) }), cfg).identified;
    expect(ident(undefined)).toBe(true);
    for (const v of ['1', 'true', 'TRUE', 'yes', 'Y']) expect(ident(v)).toBe(true);
    for (const v of ['0', 'false', 'False', 'no', 'N']) expect(ident(v)).toBe(false);
    // A bad value is rejected, and a caller whose identification is unclear is not identified.
    expect(ident('maybe')).toBe(false);
    expect(ident(' 1')).toBe(false);
  });

  it('mode: agent/automated, default automated, bad value rejected', () => {
    const mode = (s: string): string => extractContext(headers({ 'User-to-User': hexOf(s) }), cfg).mode;
    expect(mode('mode=agent')).toBe('agent');
    expect(mode('mode=AGENT')).toBe('agent');
    expect(mode('mode=automated')).toBe('automated');
    expect(mode('ref=1')).toBe('automated');
    expect(mode('mode=robot')).toBe('automated');
  });

  it('amt and cur: shape checked here, the minor units once the profile is known (resolveContext)', () => {
    const read = (s: string) => extractContext(headers({ 'User-to-User': hexOf(s) }), cfg);
    expect(read('amt=49.90|cur=EUR')).toMatchObject({ amountText: '49.90', currency: 'EUR', rejected: [] });
    expect(read('amt=12.5|cur=eur')).toMatchObject({ amountText: '12.5', currency: 'EUR', rejected: [] });
    for (const bad of ['49,90', '-5', '4e3', '1.2.3', '', ' ', '.5', '5.', '0x10', 'NaN', ' 5', '5 ']) {
      const ctx = read(`amt=${bad}|cur=EUR`);
      expect(ctx.amountText, bad).toBeUndefined();
      expect(ctx.rejected.map((r) => [r.key, r.problem]), bad).toEqual([['amt', 'bad-amount']]);
    }
    const unknown = read('amt=3.50|cur=XYZ');
    expect(unknown.currency).toBeUndefined();
    expect(unknown.rejected).toEqual([{ key: 'cur', problem: 'bad-currency', shown: 'XYZ', length: 3 }]);
  });

  it('language variants, bad values rejected', () => {
    const lang = (v: string): string | undefined => extractContext(headers({ 'User-to-User': hexOf(`lang=${v}`) }), cfg).language;
    expect(lang('fr-FR')).toBe('fr-FR');
    expect(lang('fr_fr')).toBe('fr-FR');
    expect(lang('fr')).toBe('fr-FR');
    expect(lang('en-US')).toBe('en-US');
    expect(lang('de-DE')).toBeUndefined();
  });

  it('ret is kept as sent for resolveReturnTarget; an empty one is refused', () => {
    const read = (v: string) => extractContext(headers({ 'User-to-User': hexOf(`ret=${v}`) }), cfg);
    expect(read('sip:a@b;maddr=x').returnNumber).toBe('sip:a@b;maddr=x');
    expect(read('').rejected).toEqual([{ key: 'ret', problem: 'return-refused', shown: '', length: 0 }]);
  });

  it('unknown keys are ignored, a key sent twice is rejected (no copy wins), keys case-insensitive', () => {
    const ctx = extractContext(headers({ 'User-to-User': hexOf('foo=bar|foo=baz|REF=R1|ref=R2| acct = A1|=x') }), cfg);
    expect(ctx.reference).toBeUndefined();
    expect(ctx.accountId).toBeUndefined(); // a value is not trimmed: " A1" is not a valid text
    expect(ctx.uuiStatus).toBe('ok');
    expect(ctx.rejected).toEqual([
      { key: 'acct', problem: 'bad-field', shown: ' A1', length: 3 },
      { key: 'ref', problem: 'duplicate-key', length: 0 },
    ]);
  });

  it('profile field and bad conversation ids', () => {
    const ctx = extractContext(headers({ 'User-to-User': hexOf('profile=gold_1'), 'x-inin-cnv': 'bad id with spaces' }), cfg);
    expect(ctx.profile).toBe('gold_1');
    expect(ctx.conversationId).toBeUndefined();
    expect(extractContext(headers({ 'User-to-User': hexOf('profile=../x') }), cfg).profile).toBeUndefined();
  });

  it('never throws on arbitrary UUI payloads (fuzz)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), fc.string({ maxLength: 50 }), (payload, cnv) => {
        const ctx = extractContext(headers({ 'User-to-User': payload, 'x-inin-cnv': cnv }), cfg);
        expect(['ok', 'absent', 'unreadable']).toContain(ctx.uuiStatus);
        if (ctx.amountText !== undefined) expect(ctx.amountText).toMatch(/^[0-9]+(\.[0-9]+)?$/);
        // A rejected field never carries a value with 6 digits or more.
        for (const r of ctx.rejected) if (r.shown !== undefined) expect(r.shown.replace(/[^0-9]/g, '').length).toBeLessThan(6);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('extractContext, custom key names and separators', () => {
  const custom: GenesysConfig = configSchema.parse({
    genesys: {
      fieldSeparator: ';',
      keyValueSeparator: ':',
      keys: { account: 'AccountNo', amount: 'Due', currency: 'Ccy', reference: 'Invoice', mode: 'M', agent: 'Agt', returnNumber: 'Back', language: 'L', identified: 'Verified' },
      conversationHeader: 'X-Conv',
    },
  }).genesys;

  it('reads the configured names', () => {
    const ctx = extractContext(
      headers({ 'User-to-User': `${hexOf('AccountNo:998;Due:12.30;Ccy:USD;Invoice:F-1;M:agent;Agt:bob;Back:+15550001;L:en-US;Verified:no')};encoding=hex`, 'X-Conv': 'c-1' }),
      custom,
    );
    expect(ctx).toEqual({
      accountId: '998',
      amountText: '12.30',
      currency: 'USD',
      reference: 'F-1',
      mode: 'agent',
      agentId: 'bob',
      returnNumber: '+15550001',
      language: 'en-US',
      identified: false,
      conversationId: 'c-1',
      uuiStatus: 'ok',
      rejected: [],
    });
  });

  it('the default names mean nothing under a custom config', () => {
    const ctx = extractContext(headers({ 'User-to-User': hexOf('acct:1;ref:2') }), custom);
    expect(ctx.accountId).toBeUndefined();
    expect(ctx.reference).toBeUndefined();
  });
});
