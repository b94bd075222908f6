import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.js';
import { silentLogger } from '../src/log.js';
import { AdmissionControl, type AdmissionRequest } from '../src/telephony/admission.js';
import { RedisRateCounter } from '../src/store/redis-rate.js';
import { startRedisServer, type RedisServer } from './support/redis-server.js';

/**
 * What the nodes of a fleet must agree on without talking to each other: the per-source INVITE
 * rate (counted in a real Redis) and digest nonces (one node's challenge answered on another).
 */

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedisServer(16392);
});
afterAll(async () => {
  await redis?.stop();
});

const invite = (sourceAddress: string, headers: Record<string, string> = {}): AdmissionRequest => ({
  sourceAddress,
  method: 'INVITE',
  requestUri: 'sip:+33140000001@10.0.0.1:5060',
  header: (n) => headers[n.toLowerCase()],
});

describe('shared per-source rate', () => {
  it('a source spreading its INVITEs over two nodes gets ratePerSource in all, not per node; other sources are not affected', async () => {
    // Both "nodes" on one frozen clock inside one second: the bucket alone would admit 5 on each.
    const now = (): number => 1_800_000_000_250;
    const security = parseConfig({ security: { ratePerSource: 5 } }).security;
    const counters = [0, 1].map(() => new RedisRateCounter({ url: redis.url, keyPrefix: 'rate-test:', logger: silentLogger, refreshMs: 60_000, now }));
    const [n1, n2] = counters.map((c) => {
      const a = new AdmissionControl(security, now);
      a.shareRateWith(c);
      return a;
    });
    try {
      const admitted = (a: AdmissionControl | undefined, src: string): boolean => a?.check(invite(src), 0).admitted === true;
      expect([1, 2, 3].map(() => admitted(n1, '192.0.2.7'))).toEqual([true, true, true]);
      await counters[0]?.settled();
      await counters[1]?.refresh();
      // Node 2 knows of node 1's three: two more, then refused.
      expect([1, 2, 3].map(() => admitted(n2, '192.0.2.7'))).toEqual([true, true, false]);
      await counters[1]?.settled();
      await counters[0]?.refresh();
      const refused = n1?.check(invite('192.0.2.7'), 0);
      expect(refused?.admitted).toBe(false);
      if (refused?.admitted === false) {
        expect(refused.status).toBe(503);
        expect(refused.why).toBe('security.ratePerSource exceeded');
      }
      expect(admitted(n1, '192.0.2.8')).toBe(true);
    } finally {
      await Promise.all(counters.map((c) => c.close()));
    }
  });

  it('with Redis unreachable each node still limits on its own and admission never throws', async () => {
    const now = (): number => 1_800_000_100_250;
    const counter = new RedisRateCounter({ url: 'redis://127.0.0.1:1', keyPrefix: 'rate-test:', logger: silentLogger, refreshMs: 60_000, now });
    const a = new AdmissionControl(parseConfig({ security: { ratePerSource: 2 } }).security, now);
    a.shareRateWith(counter);
    try {
      await counter.refresh();
      expect([1, 2, 3].map(() => a.check(invite('192.0.2.9'), 0).admitted)).toEqual([true, true, false]);
    } finally {
      await counter.close();
    }
  });
});

describe('digest nonces across nodes', () => {
  it('a nonce issued by one node is accepted by another with the same credentials, and refused by one with other credentials', async () => {
    const { createHash } = await import('node:crypto');
    const md5 = (s: string): string => createHash('md5').update(s).digest('hex');
    const digest = { realm: 'pay-ivr', username: 'genesys', password: 'shared-pw-1' };
    const node1 = new AdmissionControl(parseConfig({ security: { digest } }).security);
    const node2 = new AdmissionControl(parseConfig({ security: { digest } }).security);
    const other = new AdmissionControl(parseConfig({ security: { digest: { ...digest, password: 'another-pw-2' } } }).security);
    const challenge = node1.check(invite('192.0.2.1'), 0);
    expect(challenge.admitted).toBe(false);
    const www = challenge.admitted ? '' : (challenge.headers.find((h) => h.name === 'WWW-Authenticate')?.value ?? '');
    const nonce = /nonce="([^"]+)"/.exec(www)?.[1] ?? '';
    expect(nonce).not.toBe('');
    const uri = 'sip:+33140000001@10.0.0.1:5060';
    const answer = (password: string): string => {
      const ha1 = md5(`${digest.username}:${digest.realm}:${password}`);
      const response = md5(`${ha1}:${nonce}:00000001:c0ffee:auth:${md5(`INVITE:${uri}`)}`);
      return `Digest username="${digest.username}", realm="${digest.realm}", nonce="${nonce}", uri="${uri}", response="${response}", qop=auth, nc=00000001, cnonce="c0ffee", algorithm=MD5`;
    };
    expect(node2.check(invite('192.0.2.1', { authorization: answer(digest.password) }), 0).admitted).toBe(true);
    expect(other.check(invite('192.0.2.1', { authorization: answer('another-pw-2') }), 0).admitted).toBe(false);
  });
});
