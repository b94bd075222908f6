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
const profileCurrency = (c: string | undefined): string => c ?? 'EUR';

describe('extractContext, default key format', () => {
  const uui = 'acct=C-1001|amt=49.90|cur=EUR|ref=INV-77|mode=agent|agent=a-42|ret=+33140000000|lang=fr-FR|ident=1';

  it('reads every field from hex UUI with the 00 discriminator', () => {
    const ctx = extractContext(headers({ 'User-to-User': `${encodeUuiHex(uui)};encoding=hex`, 'X-Inin-Cnv': '5f3c2b1a-0000-4000-8000-123456789abc' }), cfg, profileCurrency);
    expect(ctx).toEqual({
      accountId: 'C-1001',
      amount: 4990,
      currency: 'EUR',
      reference: 'INV-77',
      mode: 'agent',
      agentId: 'a-42',
      returnNumber: '+33140000000',
      language: 'fr-FR',
      identified: true,
      conversationId: '5f3c2b1a-0000-4000-8000-123456789abc',
      uuiStatus: 'ok',
    });
  });

  it('reads ascii UUI and a header name in another case', () => {
    const ctx = extractContext(headers({ 'user-to-user': `${uui};encoding=ascii` }), cfg, profileCurrency);
    expect(ctx.reference).toBe('INV-77');
    expect(ctx.amount).toBe(4990);
  });

  it('falls back to x-User-To-User', () => {
    const ctx = extractContext(headers({ 'X-User-To-User': hexOf('ref=X1|amt=5') }), cfg, profileCurrency);
    expect(ctx).toMatchObject({ reference: 'X1', amount: 500, uuiStatus: 'ok' });
  });

  it('User-to-User wins over x-User-To-User; an unreadable one falls through', () => {
    expect(extractContext(headers({ 'User-to-User': hexOf('ref=A'), 'x-User-To-User': hexOf('ref=B') }), cfg, profileCurrency).reference).toBe('A');
    expect(extractContext(headers({ 'User-to-User': 'zz;encoding=hex', 'x-User-To-User': hexOf('ref=B') }), cfg, profileCurrency)).toMatchObject({
      reference: 'B',
      uuiStatus: 'ok',
    });
  });

  it('absent and unreadable UUI: defaults, never throws', () => {
    expect(extractContext(headers({}), cfg, profileCurrency)).toEqual({ mode: 'automated', identified: true, uuiStatus: 'absent' });
    expect(extractContext(headers({ 'User-to-User': 'GG;encoding=hex' }), cfg, profileCurrency)).toEqual({
      mode: 'automated',
      identified: true,
      uuiStatus: 'unreadable',
    });
    expect(
      extractContext(
        () => {
          throw new Error('boom');
        },
        cfg,
        profileCurrency,
      ),
    ).toEqual({ mode: 'automated', identified: true, uuiStatus: 'absent' });
  });

  it('ident variants', () => {
    const ident = (v: string | undefined): boolean =>
      extractContext(headers({ 'User-to-User': hexOf(v === undefined ? 'ref=1' : `ref=1|ident=${v}`) }), cfg, profileCurrency).identified;
    expect(ident(undefined)).toBe(true);
    for (const v of ['1', 'true', 'TRUE', 'yes', 'Y']) expect(ident(v)).toBe(true);
    for (const v of ['0', 'false', 'False', 'no', 'N']) expect(ident(v)).toBe(false);
    // A bad value is ignored: the field counts as absent, i.e. identified.
    expect(ident('maybe')).toBe(true);
  });

  it('mode: agent/automated, default automated, bad value ignored', () => {
    const mode = (s: string): string => extractContext(headers({ 'User-to-User': hexOf(s) }), cfg, profileCurrency).mode;
    expect(mode('mode=agent')).toBe('agent');
    expect(mode('mode=AGENT')).toBe('agent');
    expect(mode('mode=automated')).toBe('automated');
    expect(mode('ref=1')).toBe('automated');
    expect(mode('mode=robot')).toBe('automated');
  });

  it('amounts per currency (major units with ".")', () => {
    const amount = (s: string, fallback = 'EUR'): number | undefined =>
      extractContext(headers({ 'User-to-User': hexOf(s) }), cfg, (c) => c ?? fallback).amount;
    expect(amount('amt=49.90|cur=EUR')).toBe(4990);
    expect(amount('amt=49.9|cur=EUR')).toBe(4990);
    expect(amount('amt=49|cur=USD')).toBe(4900);
    expect(amount('amt=1500|cur=JPY')).toBe(1500);
    expect(amount('amt=15.5|cur=JPY')).toBeUndefined(); // JPY has no minor unit
    expect(amount('amt=1.234|cur=KWD')).toBe(1234);
    expect(amount('amt=12.5|cur=eur')).toBe(1250); // currency code upper-cased
    expect(amount('amt=10', 'GBP')).toBe(1000); // no cur: the profile currency
    expect(amount('amt=10', 'JPY')).toBe(10);
    for (const bad of ['49,90', '-5', '4e3', '1.2.3', '', ' ', '.5', '5.', '0x10', 'NaN']) expect(amount(`amt=${bad}|cur=EUR`)).toBeUndefined();
  });

  it('unknown currency is ignored, and the amount is read in the currency the caller picks', () => {
    const seen: (string | undefined)[] = [];
    const ctx = extractContext(headers({ 'User-to-User': hexOf('amt=3.50|cur=XYZ') }), cfg, (c) => {
      seen.push(c);
      return 'EUR';
    });
    expect(seen).toEqual([undefined]);
    expect(ctx.currency).toBeUndefined();
    expect(ctx.amount).toBe(350);
  });

  it('language variants, bad values ignored', () => {
    const lang = (v: string): string | undefined => extractContext(headers({ 'User-to-User': hexOf(`lang=${v}`) }), cfg, profileCurrency).language;
    expect(lang('fr-FR')).toBe('fr-FR');
    expect(lang('fr_fr')).toBe('fr-FR');
    expect(lang('fr')).toBe('fr-FR');
    expect(lang('en-US')).toBe('en-US');
    expect(lang('de-DE')).toBeUndefined();
  });

  it('return number: E.164, sip/tel URIs; unsafe ones ignored', () => {
    const ret = (v: string): string | undefined => extractContext(headers({ 'User-to-User': hexOf(`ret=${v}`) }), cfg, profileCurrency).returnNumber;
    expect(ret('+33140000000')).toBe('+33140000000');
    expect(ret('33140000000')).toBe('33140000000');
    expect(ret('sip:+33140000000@genesys.example')).toBe('sip:+33140000000@genesys.example');
    expect(ret('tel:+33140000000')).toBe('tel:+33140000000');
    expect(ret('sip:a@b?Foo=bar')).toBeUndefined();
    expect(ret('sip:a@b>evil')).toBeUndefined();
    expect(ret('call me')).toBeUndefined();
  });

  it('unknown keys are ignored, first occurrence wins, keys case-insensitive, spaces trimmed', () => {
    const ctx = extractContext(headers({ 'User-to-User': hexOf('foo=bar|REF=R1|ref=R2| acct = A1 |noequals|=x') }), cfg, profileCurrency);
    expect(ctx).toMatchObject({ reference: 'R1', accountId: 'A1', uuiStatus: 'ok' });
  });

  it('profile field and bad conversation ids', () => {
    const ctx = extractContext(headers({ 'User-to-User': hexOf('profile=gold_1'), 'x-inin-cnv': 'bad id with spaces' }), cfg, profileCurrency);
    expect(ctx.profile).toBe('gold_1');
    expect(ctx.conversationId).toBeUndefined();
    expect(extractContext(headers({ 'User-to-User': hexOf('profile=../x') }), cfg, profileCurrency).profile).toBeUndefined();
  });

  it('never throws on arbitrary UUI payloads (fuzz)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), fc.string({ maxLength: 50 }), (payload, cnv) => {
        const ctx = extractContext(headers({ 'User-to-User': payload, 'x-inin-cnv': cnv }), cfg, profileCurrency);
        expect(['ok', 'absent', 'unreadable']).toContain(ctx.uuiStatus);
        if (ctx.amount !== undefined) expect(Number.isSafeInteger(ctx.amount)).toBe(true);
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
      profileCurrency,
    );
    expect(ctx).toEqual({
      accountId: '998',
      amount: 1230,
      currency: 'USD',
      reference: 'F-1',
      mode: 'agent',
      agentId: 'bob',
      returnNumber: '+15550001',
      language: 'en-US',
      identified: false,
      conversationId: 'c-1',
      uuiStatus: 'ok',
    });
  });

  it('the default names mean nothing under a custom config', () => {
    const ctx = extractContext(headers({ 'User-to-User': hexOf('acct:1;ref:2') }), custom, profileCurrency);
    expect(ctx.accountId).toBeUndefined();
    expect(ctx.reference).toBeUndefined();
  });
});
