import { createHash } from 'node:crypto';
import * as crypto from 'node:crypto';
import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { parseConfig } from '../src/config/load.js';
import type { Config } from '../src/config/schema.js';
import { isPayIvrError } from '../src/errors.js';
import {
  AdmissionControl,
  parseDigestParams,
  safeEqual,
  type AdmissionRequest,
  type AdmissionVerdict,
} from '../src/telephony/admission.js';
import { parseCidr } from '../src/net/cidr.js';

// Spy on the constant-time compare the module imports (the real function still runs).
vi.mock('node:crypto', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:crypto')>();
  return { ...real, timingSafeEqual: vi.fn(real.timingSafeEqual) };
});

const RURI = 'sip:+33140000001@10.0.0.1:5060';
const DIGEST = { realm: 'pay-ivr', username: 'genesys', password: 'pw-123' };

function security(over: Partial<Config['security']> = {}): Config['security'] {
  return { ...parseConfig({}).security, ...over };
}

function request(sourceAddress: string, headers: Record<string, string> = {}, over: Partial<AdmissionRequest> = {}): AdmissionRequest {
  const lower = new Map(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  return { sourceAddress, method: 'INVITE', requestUri: RURI, header: (name) => lower.get(name.toLowerCase()), ...over };
}

function clock(start = 1_700_000_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

function refusal(v: AdmissionVerdict): { status: number; reason: string; headers: Record<string, string>; why: string } | undefined {
  if (v.admitted) return undefined;
  return { status: v.status, reason: v.reason, headers: Object.fromEntries(v.headers.map((h) => [h.name, h.value])), why: v.why };
}

const md5 = (s: string): string => createHash('md5').update(s).digest('hex');

/** An Authorization value answering a WWW-Authenticate challenge, like a UAC computes it. */
function answer(challenge: string, o: { password?: string; uri?: string; method?: string; username?: string; extra?: string } = {}): string {
  const nonce = /nonce="([^"]+)"/.exec(challenge)?.[1] ?? '';
  const uri = o.uri ?? RURI;
  const user = o.username ?? DIGEST.username;
  const ha1 = md5(`${user}:${DIGEST.realm}:${o.password ?? DIGEST.password}`);
  const response = md5(`${ha1}:${nonce}:00000001:c0ffee:auth:${md5(`${o.method ?? 'INVITE'}:${uri}`)}`);
  const extra = o.extra ?? 'algorithm=MD5, qop=auth';
  return `Digest username="${user}", realm="${DIGEST.realm}", nonce="${nonce}", uri="${uri}", response="${response}", ${extra}, nc=00000001, cnonce="c0ffee"`;
}

function challengeOf(v: AdmissionVerdict): string {
  const www = refusal(v)?.headers['WWW-Authenticate'];
  expect(www).toBeDefined();
  return www ?? '';
}

describe('admission: source allow-list', () => {
  const ac = new AdmissionControl(security({ allowList: ['10.0.0.0/8', '2001:db8::/32', '192.0.2.7'] }));

  it('admits sources inside an IPv4 or IPv6 CIDR or equal to a bare address', () => {
    for (const a of ['10.0.0.1', '10.255.255.255', '2001:db8::1', '2001:db8:ffff::5', '192.0.2.7']) {
      expect(ac.check(request(a), 0), a).toEqual({ admitted: true });
    }
  });

  it('refuses every other source with 403', () => {
    for (const a of ['11.0.0.1', '192.0.2.8', '2001:db9::1', '::1', 'not-an-address', '']) {
      expect(refusal(ac.check(request(a), 0)), a).toEqual({ status: 403, reason: 'Forbidden', headers: {}, why: 'source not in security.allowList' });
    }
  });

  it('matches IPv4-mapped IPv6 sources (dual-stack sockets) against IPv4 CIDRs', () => {
    expect(ac.allowed('::ffff:10.1.2.3')).toBe(true);
    expect(ac.allowed('::FFFF:10.1.2.3')).toBe(true);
    expect(ac.allowed('::ffff:a01:203')).toBe(true);
    expect(ac.allowed('::ffff:192.0.2.7')).toBe(true);
    expect(ac.allowed('::ffff:11.1.2.3')).toBe(false);
    expect(ac.check(request('::ffff:10.1.2.3'), 0).admitted).toBe(true);
  });

  it('admits everyone when the list is empty, and says so once at start', () => {
    const open = new AdmissionControl(security({ allowList: [] }));
    expect(open.check(request('203.0.113.9'), 0).admitted).toBe(true);
    const lines: string[] = [];
    const sink = new Writable({ write: (chunk: Buffer, _e, done) => void (lines.push(chunk.toString()), done()) });
    open.announce(pino({ level: 'info' }, sink));
    ac.announce(pino({ level: 'info' }, sink));
    expect(lines.filter((l) => l.includes('security.allowList is empty'))).toHaveLength(1);
  });

  it('a bad entry fails at startup with its config path, in check-config and in the constructor', () => {
    for (const bad of ['10.0.0.0/', '10.0.0.0/33', '2001:db8::/129', '10.0.0/8', 'example.com', '10.0.0.0/8/9', '10.0.0.0/-1', '10.0.0.0/0x8', 'fe80::1%eth0']) {
      expect(parseCidr(bad), bad).toBeUndefined();
      expect(() => parseConfig({ security: { allowList: ['10.0.0.0/8', bad] } }), bad).toThrow(/^security\.allowList\.1: not an IPv4\/IPv6 address or CIDR/m);
      let err: unknown;
      try {
        new AdmissionControl(security({ allowList: ['10.0.0.0/8', bad] }));
      } catch (e) {
        err = e;
      }
      expect(isPayIvrError(err, 'ERR_CONFIG_INVALID') && err.message.startsWith('security.allowList.1:'), bad).toBe(true);
    }
    expect(parseCidr('10.0.0.0/8')).toEqual({ address: '10.0.0.0', prefix: 8, family: 'ipv4' });
    expect(parseCidr('2001:db8::/32')).toEqual({ address: '2001:db8::', prefix: 32, family: 'ipv6' });
    expect(parseCidr('::ffff:10.0.0.1')).toEqual({ address: '::ffff:10.0.0.1', prefix: 128, family: 'ipv6' });
    expect(parseConfig({ security: { allowList: ['0.0.0.0/0', '::/0', '198.51.100.1'] } }).security.allowList).toHaveLength(3);
  });
});

describe('admission: rate per source and capacity', () => {
  const unavailable = (retryAfter: string, why: string): ReturnType<typeof refusal> => ({
    status: 503,
    reason: 'Service Unavailable',
    headers: { 'Retry-After': retryAfter },
    why,
  });

  it('refuses INVITEs over ratePerSource with 503 Retry-After: 1, per source', () => {
    const c = clock();
    const ac = new AdmissionControl(security({ ratePerSource: 3 }), c.now);
    for (let i = 0; i < 3; i += 1) expect(ac.check(request('10.0.0.1'), 0).admitted).toBe(true);
    expect(refusal(ac.check(request('10.0.0.1'), 0))).toEqual(unavailable('1', 'security.ratePerSource exceeded'));
    // Same source seen through a dual-stack socket: same bucket.
    expect(ac.check(request('::ffff:10.0.0.1'), 0).admitted).toBe(false);
    expect(ac.check(request('10.0.0.2'), 0).admitted).toBe(true);
    expect(ac.check(request('2001:db8::1'), 0).admitted).toBe(true);
  });

  it('recovers gradually, and fully after a one-second window, never above the rate', () => {
    const c = clock();
    const ac = new AdmissionControl(security({ ratePerSource: 4 }), c.now);
    const admitted = (): number => {
      let n = 0;
      while (n < 100 && ac.check(request('10.0.0.1'), 0).admitted) n += 1;
      return n;
    };
    expect(admitted()).toBe(4);
    c.advance(250);
    expect(admitted()).toBe(1);
    c.advance(1000);
    expect(admitted()).toBe(4);
    c.advance(60_000);
    expect(admitted()).toBe(4);
    // A wall clock stepping back neither refills nor drains the bucket.
    c.advance(-5_000);
    expect(admitted()).toBe(0);
    c.advance(500);
    expect(admitted()).toBe(2);
  });

  it('refuses at maxConcurrentCalls with 503 Retry-After: 5', () => {
    const ac = new AdmissionControl(security({ maxConcurrentCalls: 2, ratePerSource: 100 }));
    expect(ac.check(request('10.0.0.1'), 1).admitted).toBe(true);
    expect(refusal(ac.check(request('10.0.0.1'), 2))).toEqual(unavailable('5', 'security.maxConcurrentCalls reached'));
    expect(ac.check(request('10.0.0.1'), 3).admitted).toBe(false);
  });

  it('charges the rate before capacity and credentials, so refused INVITEs count too', () => {
    const c = clock();
    const ac = new AdmissionControl(security({ ratePerSource: 2, maxConcurrentCalls: 1, sharedSecretHeader: { name: 'X-Trunk', value: 'right-secret' } }), c.now);
    expect(refusal(ac.check(request('10.0.0.1', { 'X-Trunk': 'right-secret' }), 1))?.why).toBe('security.maxConcurrentCalls reached');
    expect(refusal(ac.check(request('10.0.0.1'), 0))?.why).toBe('security.sharedSecretHeader missing or wrong');
    expect(refusal(ac.check(request('10.0.0.1', { 'X-Trunk': 'right-secret' }), 0))?.why).toBe('security.ratePerSource exceeded');
  });

  it('a source outside the allow-list is refused 403 before any rate accounting', () => {
    const ac = new AdmissionControl(security({ allowList: ['10.0.0.0/8'], ratePerSource: 1 }));
    for (let i = 0; i < 5; i += 1) expect(refusal(ac.check(request('192.0.2.1'), 0))?.status).toBe(403);
    expect(ac.check(request('10.0.0.1'), 0).admitted).toBe(true);
  });
});

describe('admission: shared-secret header', () => {
  const ac = new AdmissionControl(security({ ratePerSource: 1000, sharedSecretHeader: { name: 'X-Trunk-Token', value: 's3cret-token' } }));

  it('403 when missing or wrong, admitted when right (case-insensitive name, value trimmed)', () => {
    const forbidden = { status: 403, reason: 'Forbidden', headers: {}, why: 'security.sharedSecretHeader missing or wrong' };
    expect(refusal(ac.check(request('10.0.0.1'), 0))).toEqual(forbidden);
    for (const wrong of ['s3cret-tokeX', 's3cret-token-and-more', 's', '', 'S3CRET-TOKEN']) {
      const v = ac.check(request('10.0.0.1', { 'X-Trunk-Token': wrong }), 0);
      expect(refusal(v), wrong).toEqual(forbidden);
    }
    expect(ac.check(request('10.0.0.1', { 'x-trunk-token': 's3cret-token' }), 0).admitted).toBe(true);
    expect(ac.check(request('10.0.0.1', { 'X-Trunk-Token': '  s3cret-token ' }), 0).admitted).toBe(true);
  });

  it('the verdict never carries a header value', () => {
    const v = ac.check(request('10.0.0.1', { 'X-Trunk-Token': 'guess-4111111111111111' }), 0);
    expect(JSON.stringify(v)).not.toContain('4111111111111111');
    expect(JSON.stringify(v)).not.toContain('s3cret-token');
  });

  it('compares in constant time: hashed to equal lengths, then timingSafeEqual', () => {
    const spy = vi.mocked(crypto.timingSafeEqual);
    for (const got of ['x', 's3cret-tokeX', 'a much longer guess than the real secret value']) {
      spy.mockClear();
      ac.check(request('10.0.0.1', { 'X-Trunk-Token': got }), 0);
      expect(spy).toHaveBeenCalledTimes(1);
      const [a, b] = spy.mock.calls[0] as unknown as [Buffer, Buffer];
      expect([a.length, b.length]).toEqual([32, 32]);
    }
    expect(safeEqual('a', 'a')).toBe(true);
    expect(safeEqual('a', 'ab')).toBe(false);
  });
});

describe('admission: digest authentication', () => {
  function digestControl(): { ac: AdmissionControl; c: ReturnType<typeof clock> } {
    const c = clock();
    return { ac: new AdmissionControl(security({ ratePerSource: 1000, digest: DIGEST }), c.now), c };
  }

  it('401 with an MD5 qop=auth challenge, then the right credentials are admitted', () => {
    const { ac } = digestControl();
    const first = ac.check(request('10.0.0.1'), 0);
    expect(refusal(first)).toMatchObject({ status: 401, reason: 'Unauthorized', why: 'digest credentials missing or malformed' });
    const www = challengeOf(first);
    expect(www).toMatch(/^Digest realm="pay-ivr", nonce="[0-9a-f]+\.[A-Za-z0-9_-]{22}", algorithm=MD5, qop="auth"$/);
    expect(ac.check(request('10.0.0.1', { Authorization: answer(www) }), 0)).toEqual({ admitted: true });
  });

  it('wrong password, user, method or missing qop get a fresh challenge without stale', () => {
    const { ac } = digestControl();
    const www = challengeOf(ac.check(request('10.0.0.1'), 0));
    const cases: [string, string][] = [
      ['password', answer(www, { password: 'wrong' })],
      ['username', answer(www, { username: 'someone' })],
      ['method', answer(www, { method: 'OPTIONS' })],
      ['no qop (RFC 2069)', answer(www, { extra: 'algorithm=MD5' })],
      ['MD5-sess', answer(www, { extra: 'algorithm=MD5-sess, qop=auth' })],
      ['Basic', 'Basic Z2VuZXN5czpwdy0xMjM='],
      ['unterminated', 'Digest username="genesys'],
      ['huge', `Digest username="${'a'.repeat(5000)}"`],
    ];
    for (const [name, auth] of cases) {
      const v = ac.check(request('10.0.0.1', { Authorization: auth }), 0);
      expect(refusal(v)?.status, name).toBe(401);
      expect(challengeOf(v), name).not.toContain('stale');
      expect(JSON.stringify(v), name).not.toContain('response=');
    }
  });

  it('a nonce we did not issue (tampered, or from another instance) is refused', () => {
    const { ac } = digestControl();
    const www = challengeOf(ac.check(request('10.0.0.1'), 0));
    const nonce = /nonce="([^"]+)"/.exec(www)?.[1] ?? '';
    const tampered = www.replace(nonce, `${(parseInt(nonce, 16) + 1).toString(16)}${nonce.slice(nonce.indexOf('.'))}`);
    expect(ac.check(request('10.0.0.1', { Authorization: answer(tampered) }), 0).admitted).toBe(false);
    const other = new AdmissionControl(security({ digest: DIGEST }));
    expect(other.check(request('10.0.0.1', { Authorization: answer(www) }), 0).admitted).toBe(false);
  });

  it('an expired nonce with the right response gets stale=true; the new nonce then works', () => {
    const { ac, c } = digestControl();
    const www = challengeOf(ac.check(request('10.0.0.1'), 0));
    c.advance(4 * 60_000);
    expect(ac.check(request('10.0.0.1', { Authorization: answer(www) }), 0).admitted).toBe(true);
    c.advance(2 * 60_000);
    const stale = ac.check(request('10.0.0.1', { Authorization: answer(www) }), 0);
    expect(refusal(stale)).toMatchObject({ status: 401, why: 'digest nonce expired' });
    const renewed = challengeOf(stale);
    expect(renewed).toMatch(/, stale=true$/);
    // Wrong credentials on an expired nonce: not stale (stale tells the client its password is right).
    expect(challengeOf(ac.check(request('10.0.0.1', { Authorization: answer(www, { password: 'x' }) }), 0))).not.toContain('stale');
    expect(ac.check(request('10.0.0.1', { Authorization: answer(renewed) }), 0).admitted).toBe(true);
  });

  it('credentials for another Request-URI get 400', () => {
    const { ac } = digestControl();
    const www = challengeOf(ac.check(request('10.0.0.1'), 0));
    const v = ac.check(request('10.0.0.1', { Authorization: answer(www, { uri: 'sip:+33999@10.0.0.1:5060' }) }), 0);
    expect(refusal(v)).toEqual({ status: 400, reason: 'Bad Request', headers: {}, why: 'digest uri is not the Request-URI' });
    expect(ac.check(request('10.0.0.1', { Authorization: answer(www) }, { requestUri: RURI.toUpperCase() }), 0).admitted).toBe(true);
  });

  it('the response is compared with timingSafeEqual', () => {
    const { ac } = digestControl();
    const www = challengeOf(ac.check(request('10.0.0.1'), 0));
    const spy = vi.mocked(crypto.timingSafeEqual);
    spy.mockClear();
    ac.check(request('10.0.0.1', { Authorization: answer(www, { password: 'wrong' }) }), 0);
    // One for the nonce MAC, one for the response.
    expect(spy).toHaveBeenCalledTimes(2);
  });

  it('shared secret and digest both apply when both are configured', () => {
    const ac = new AdmissionControl(security({ digest: DIGEST, sharedSecretHeader: { name: 'X-Trunk', value: 'right-secret' } }));
    expect(refusal(ac.check(request('10.0.0.1'), 0))?.status).toBe(403);
    const www = challengeOf(ac.check(request('10.0.0.1', { 'X-Trunk': 'right-secret' }), 0));
    expect(ac.check(request('10.0.0.1', { 'X-Trunk': 'right-secret', Authorization: answer(www) }), 0).admitted).toBe(true);
    expect(refusal(ac.check(request('10.0.0.1', { Authorization: answer(www) }), 0))?.status).toBe(403);
  });
});

describe('admission: digest parameter parsing', () => {
  it('reads quoted and token values, unescapes quoted pairs, lower-cases names', () => {
    const p = parseDigestParams('Digest username="genesys", Realm="r", nonce="n.1", uri="sip:a@b", response="ab", qop=auth, nc=00000001, cnonce="x\\"y"');
    expect(p === undefined ? undefined : Object.fromEntries(p)).toEqual({
      username: 'genesys',
      realm: 'r',
      nonce: 'n.1',
      uri: 'sip:a@b',
      response: 'ab',
      qop: 'auth',
      nc: '00000001',
      cnonce: 'x"y',
    });
    expect(parseDigestParams('digest\tuser = "a,b" ,qop=auth,')?.get('user')).toBe('a,b');
  });

  it('refuses what is not a well-formed Digest value', () => {
    for (const bad of ['Basic abc', 'Digest', 'Digest a="x', 'Digest a=1, a=2', 'Digest a=1 b=2', 'Digest =1', 'Digest a', `Digest ${'a'.repeat(100_000)}`]) {
      expect(parseDigestParams(bad), bad.slice(0, 20)).toBeUndefined();
    }
  });
});
