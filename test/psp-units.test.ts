import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sanitizePspBody, scrubText, hasPanLikeDigits } from '../src/psp/sanitize.js';
import { newIdempotencyKey, isValidIdempotencyKey, MAX_IDEMPOTENCY_KEY_LENGTH } from '../src/psp/idempotency.js';
import { adyenDeclineClass, stripeDeclineClass, isDeclineClass } from '../src/psp/decline-codes.js';
import { loadSecret } from '../src/psp/secrets.js';
import { CardJsonBody } from '../src/psp/card-body.js';
import { httpStatusError, parseRetryAfter } from '../src/psp/errors.js';
import { parseForm } from '../src/psp/sandbox/form.js';
import { SensitiveDigits } from '../src/domain/sensitive.js';
import { isPayIvrError } from '../src/errors.js';
import { findCardData } from './support/psp-fixtures.js';

describe('sanitising PSP bodies before they are logged', () => {
  it('drops card and secret keys, blanks PAN-like digit runs and API keys, truncates', () => {
    const body = {
      error: { message: 'card 4242 4242 4242 4242 declined', code: 'card_declined' },
      card: { number: '4000000000000002', cvc: '123', exp_month: 8, exp_year: 2039, last4: '0002' },
      apiKey: 'secret',
      note: 'Bearer sk_test_abc123 used',
    };
    const s = sanitizePspBody(body);
    expect(s).not.toMatch(/4242 4242|4000000000000002|"123"|2039|sk_test_abc123|secret"/);
    expect(s).toContain('card_declined');
    expect(s).toContain('"last4":"0002"');
    expect(sanitizePspBody('x'.repeat(2000), 100).length).toBeLessThan(130);
    expect(sanitizePspBody('not json 5555-5555-5555-4444')).toBe('not json [redacted]');
    expect(scrubText('ts 1700000000 ok')).toBe('ts 1700000000 ok');
    expect(hasPanLikeDigits('acct 4242424242424242')).toBe(true);
    expect(hasPanLikeDigits('C-1001')).toBe(false);
  });
});

describe('idempotency keys', () => {
  it('are unique, fit Adyen (<= 64) and a header-safe alphabet', () => {
    const keys = new Set(Array.from({ length: 1000 }, () => newIdempotencyKey()));
    expect(keys.size).toBe(1000);
    for (const k of keys) {
      expect(k.length).toBeLessThanOrEqual(MAX_IDEMPOTENCY_KEY_LENGTH);
      expect(isValidIdempotencyKey(k)).toBe(true);
    }
    expect(isValidIdempotencyKey('a b')).toBe(false);
    expect(isValidIdempotencyKey('')).toBe(false);
    expect(() => newIdempotencyKey('bad prefix')).toThrow();
  });
});

describe('decline code maps', () => {
  it('maps Stripe decline_code (then code) and Adyen refusalReasonCode to classes; unknown -> do-not-honor', () => {
    expect(stripeDeclineClass('card_declined', 'insufficient_funds')).toBe('insufficient-funds');
    expect(stripeDeclineClass('expired_card', undefined)).toBe('expired-card');
    expect(stripeDeclineClass('card_declined', 'pickup_card')).toBe('fraud');
    expect(stripeDeclineClass('card_declined', 'something_new')).toBe('do-not-honor');
    expect(stripeDeclineClass('processing_error', '')).toBe('processing-error');
    expect(adyenDeclineClass('12')).toBe('insufficient-funds');
    expect(adyenDeclineClass('24')).toBe('incorrect-cvc');
    expect(adyenDeclineClass('22')).toBe('fraud');
    expect(adyenDeclineClass('999')).toBe('do-not-honor');
    expect(isDeclineClass('fraud')).toBe(true);
    expect(isDeclineClass('broke')).toBe(false);
  });
});

describe('API keys from the environment or a secrets file', () => {
  it('prefers the file, trims it, and names the variable and config path when missing, never the value', () => {
    const dir = mkdtempSync(join(tmpdir(), 'payivr-psp-'));
    const f = join(dir, 'key');
    writeFileSync(f, 'sk_test_fromfile\n');
    expect(loadSecret({ env: 'K', file: f, configPath: 'profiles.a.psp', what: 'Stripe secret key' }, { K: 'sk_test_env' })).toBe('sk_test_fromfile');
    expect(loadSecret({ env: 'K', configPath: 'profiles.a.psp', what: 'Stripe secret key' }, { K: 'sk_test_env' })).toBe('sk_test_env');
    let err: unknown;
    try {
      loadSecret({ env: 'STRIPE_API_KEY', configPath: 'profiles.a.psp', what: 'Stripe secret key' }, {});
    } catch (e) {
      err = e;
    }
    expect(isPayIvrError(err, 'ERR_PSP_CONFIG')).toBe(true);
    expect((err as Error).message).toBe('Stripe secret key missing: set the environment variable STRIPE_API_KEY or profiles.a.psp.apiKeyFile');
    expect(() => loadSecret({ file: join(dir, 'nope'), configPath: 'p', what: 'k' }, {})).toThrow(/p\.apiKeyFile .*ENOENT/);
  });
});

describe('card JSON bodies', () => {
  it('splices the digits into the bytes; the JSON text never holds them; the card is untouched', () => {
    const pan = SensitiveDigits.from('4242424242424242');
    const exp = SensitiveDigits.from('0839');
    const b = new CardJsonBody();
    const value = { n: b.digits(pan), m: b.digits(exp, 0, 2), y: b.digits(exp, 2, 4, '20'), mix: `${b.digits(exp, 0, 2)}/${b.digits(exp, 2, 4)}`, ref: 'é-1' };
    expect(JSON.stringify(value)).not.toContain('4242');
    const buf = b.toBuffer(value);
    expect(JSON.parse(buf.toString('utf8'))).toEqual({ n: '4242424242424242', m: '08', y: '2039', mix: '08/39', ref: 'é-1' });
    buf.fill(0);
    expect(buf.every((x) => x === 0)).toBe(true);
    expect(pan.wiped).toBe(false);
    expect(pan.length).toBe(16);
  });
});

describe('error classification', () => {
  it('5xx, 429, 409 and transient answers are retryable; other 4xx are not; Retry-After parses', () => {
    expect(httpStatusError(503, undefined).retryable).toBe(true);
    expect(httpStatusError(429, 1000).retryable).toBe(true);
    expect(httpStatusError(429, 1000).maybeExecuted).toBe(false);
    expect(httpStatusError(409, undefined).retryable).toBe(true);
    expect(httpStatusError(422, undefined, '704', true).retryable).toBe(true);
    expect(httpStatusError(400, undefined).retryable).toBe(false);
    expect(httpStatusError(401, undefined).code).toBe('ERR_PSP_PROTOCOL');
    expect(parseRetryAfter('2')).toBe(2000);
    expect(parseRetryAfter(new Date(Date.now() + 5000).toUTCString())).toBeGreaterThan(3000);
    expect(parseRetryAfter('soon')).toBeUndefined();
  });
});

describe('Stripe form encoding (sandbox parser)', () => {
  it('parses bracket notation into objects and arrays', () => {
    const f = parseForm('amount=100&payment_method_data[card][number]=42&expand[0]=latest_charge&expand[1]=x&tags[]=a&tags[]=b&__proto__[x]=1&metadata[k]=v%20w');
    expect(f).toEqual({ amount: '100', payment_method_data: { card: { number: '42' } }, expand: ['latest_charge', 'x'], tags: ['a', 'b'], metadata: { k: 'v w' } });
  });
});

describe('the leak scanner used by the PSP suites', () => {
  it('finds a PAN anywhere and expiry/CVC tokens in values, ignoring timestamps and UUIDs', () => {
    expect(findCardData(['{"msg":"x","pan":"4242424242424242"}'], ['4242424242424242'])).toHaveLength(1);
    expect(findCardData(['{"msg":"exp 0839"}'], [])).toHaveLength(1);
    expect(findCardData(['{"msg":"cvc","v":"917"}'], [])).toHaveLength(1);
    expect(findCardData(['{"time":"2026-01-01T00:00:00.917Z","key":"payivr-0839abcd-0917-4000-8000-000000000917","id":"pi_a917b0839"}'], [])).toEqual([]);
  });
});
