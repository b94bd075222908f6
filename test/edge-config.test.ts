import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configSchema } from '../src/config/schema.js';
import { silentLogger } from '../src/log.js';
import { startApp } from '../src/app.js';
import { genesysInvite, passedHeaders, requestUser } from '../src/edge/edge-invite.js';
import { EdgeCallRegistry } from '../src/edge/edge-registry.js';
import type { EdgeCall, EdgeCallEvents } from '../src/edge/types.js';
import { TypedEmitter } from '../src/util/typed-emitter.js';
import type { SipRequest } from '../src/telephony/embedded/sip/message.js';
import { FakeAnchor } from './support/fake-anchor.js';

/** The edge role's configuration, the Genesys INVITE's header rules, the registry, and the app wiring (port 51300). */

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function issues(input: unknown): string[] {
  const r = configSchema.safeParse(input);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

describe('edge configuration', () => {
  it('defaults: off, the session header, UUI headers passed', () => {
    const c = configSchema.parse({});
    expect(c.edge).toMatchObject({ enabled: false, sessionHeader: 'X-PayIvr-Edge-Session', passHeaders: ['User-to-User', 'x-User-To-User'] });
  });

  it('edge.enabled needs edge.genesys and edge.rtpengine; dialog headers and the session header cannot be passed', () => {
    expect(issues({ edge: { enabled: true } })).toEqual([expect.stringMatching(/^edge\.genesys: is required/), expect.stringMatching(/^edge\.rtpengine: is required/)]);
    expect(issues({ edge: { passHeaders: ['Via'] } })).toEqual([expect.stringMatching(/^edge\.passHeaders\.0: is a header the B2BUA writes itself/)]);
    expect(issues({ edge: { passHeaders: ['x-payivr-edge-session'] } })).toEqual([expect.stringMatching(/^edge\.passHeaders\.0: is edge\.sessionHeader/)]);
    expect(issues({ edge: { sessionHeader: 'X Bad' } })).toEqual([expect.stringMatching(/^edge\.sessionHeader: must be a SIP header name/)]);
    expect(issues({ edge: { enabled: true, genesys: { host: 'byoc.example', transport: 'sctp' } } })[0]).toMatch(/^edge\.genesys\.transport/);
  });
});

describe('the INVITE toward Genesys', () => {
  const caller: SipRequest = {
    kind: 'request',
    method: 'INVITE',
    uri: 'tel:+441234567;phone-context=example',
    headers: [
      { name: 'from', value: '"O\'Brien \\"Pat\\"" <sip:+33999@carrier.example>;tag=abc' },
      { name: 'to', value: '<tel:+441234567>' },
      { name: 'max-forwards', value: '5' },
      { name: 'user-to-user', value: 'aa;encoding=hex' },
      { name: 'user-to-user', value: 'bb;encoding=hex' },
      { name: 'via', value: 'SIP/2.0/UDP carrier.example;branch=z9hG4bKx' },
    ],
    body: Buffer.alloc(0),
  };

  it('takes the called number, keeps display names quoted, decrements Max-Forwards, copies every listed occurrence', () => {
    const inv = genesysInvite(caller, {
      genesys: { host: 'byoc.example', port: 5061, transport: 'tls', srtp: 'off' },
      passHeaders: ['User-to-User', 'Via'],
      sessionHeader: 'X-Edge',
      sessionId: 'sid',
      sdp: 'v=0',
      local: { transport: 'tls', host: '192.0.2.1', port: 5061 },
    });
    expect(inv.uri).toBe('sip:+441234567@byoc.example:5061;transport=tls');
    expect(inv.target).toEqual({ transport: 'tls', address: 'byoc.example', port: 5061 });
    expect(inv.from).toBe('"O\'Brien \\"Pat\\"" <sip:+33999@192.0.2.1>');
    expect(inv.to).toBe('<sip:+441234567@byoc.example>');
    expect(inv.maxForwards).toBe(4);
    expect(inv.headers).toEqual([
      { name: 'user-to-user', value: 'aa;encoding=hex' },
      { name: 'user-to-user', value: 'bb;encoding=hex' },
      { name: 'x-edge', value: 'sid' },
    ]);
  });

  it('never passes the session header or dialog headers, even when listed', () => {
    const req: SipRequest = { ...caller, headers: [...caller.headers, { name: 'x-edge', value: 'forged' }] };
    expect(passedHeaders(req, ['x-edge', 'via', 'from'], 'X-Edge')).toEqual([]);
  });

  it('reads the user of sip/tel Request-URIs and refuses odd characters', () => {
    expect(requestUser('sip:+4412@h;user=phone')).toBe('+4412');
    expect(requestUser('tel:+4412;ext=1')).toBe('+4412');
    expect(requestUser('sip:h.example')).toBeUndefined();
    expect(requestUser('sip:a"b@h')).toBeUndefined();
  });
});

class StubCall extends TypedEmitter<EdgeCallEvents> {
  readonly state = 'connected' as const;
  readonly conversationId = undefined;
  readonly anchor;
  constructor(readonly sessionId: string) {
    super();
    this.anchor = { callId: `c-${sessionId}`, fromTag: 't' };
  }
  end(): void {
    this.emit('ended', { by: 'caller', reason: 'BYE' });
  }
  blockCallerKeys = (): Promise<void> => Promise.resolve();
  unblockCallerKeys = (): Promise<void> => Promise.resolve();
  playToCaller = (): Promise<void> => Promise.resolve();
  hangup = (): Promise<void> => Promise.resolve();
}

describe('EdgeCallRegistry', () => {
  it('finds live calls, remembers ended ones within the time and count bounds, forgets the rest', () => {
    let now = 0;
    const reg = new EdgeCallRegistry<EdgeCall & StubCall>({ keepEndedMs: 1000, keepEndedCount: 2, now: () => now });
    const calls = ['a', 'b', 'c', 'd'].map((id) => new StubCall(id) as EdgeCall & StubCall);
    for (const c of calls) reg.add(c);
    expect(reg.find('a')).toBe(calls[0]);
    expect(reg.byAnchorCallId('c-b')).toBe(calls[1]);
    for (const c of calls.slice(0, 3)) c.end();
    // Count bound: only the last two ended are remembered.
    expect(reg.find('a')).toBeUndefined();
    expect(reg.find('b')).toBe('ended');
    expect(reg.find('c')).toBe('ended');
    expect(reg.byAnchorCallId('c-b')).toBeUndefined();
    expect(reg.size).toBe(1);
    // Time bound.
    now = 1001;
    expect(reg.find('b')).toBeUndefined();
    expect(reg.find('d')).toBe(calls[3]);
  });
});

describe('app wiring', () => {
  const base = (): Record<string, unknown> => {
    const dir = mkdtempSync(join(tmpdir(), 'payivr-edge-app-'));
    dirs.push(dir);
    return {
      sip: { listen: [{ transport: 'udp', host: '127.0.0.1', port: 51300 }] },
      admin: { enabled: false },
      journal: { dataDir: join(dir, 'data') },
      edge: { enabled: true, genesys: { host: '127.0.0.1', port: 51301 }, rtpengine: { host: '127.0.0.1', dtmfLogAddress: '127.0.0.1', dtmfLogPort: 51302 } },
    };
  };

  it('edge.enabled starts the B2BUA with the anchor the factory makes, and closes the anchor at stop', async () => {
    const anchor = new FakeAnchor(51302, 51309);
    let closed = false;
    const close = anchor.close.bind(anchor);
    anchor.close = async () => {
      closed = true;
      await close();
    };
    const app = await startApp(configSchema.parse(base()), silentLogger, { mediaAnchor: () => anchor });
    try {
      expect(app.backend.name).toBe('edge');
      expect(app.backend.ready).toBe(true);
      expect(app.captureHost?.find('nothing')).toBeUndefined();
    } finally {
      await app.stop();
    }
    expect(closed).toBe(true);
  });

  it("pay-ivr serve's wiring: with edge.assist, the capture API looks calls up in the B2BUA that start() made", async () => {
    const anchor = new FakeAnchor(51304, 51309);
    const key = 'edge-assist-key-0123456789abcdef';
    const cfg = { ...base(), admin: { host: '127.0.0.1', port: 51303, apiToken: 'edge-admin-token-0123456789' } } as Record<string, unknown>;
    (cfg.edge as Record<string, unknown>).assist = { apiKeys: [key] };
    const app = await startApp(configSchema.parse(cfg), silentLogger, { mediaAnchor: () => anchor });
    try {
      const r = await fetch('http://127.0.0.1:51303/v1/assist/captures', {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ sessionId: 'no-such-session-0123456789', amount: 1000, currency: 'EUR', reference: 'INV-1' }),
      });
      // The assist routes are mounted and asked the B2BUA's registry: an unknown session, not a missing route.
      expect(r.status).toBe(404);
      expect(JSON.stringify(await r.json())).toMatch(/ERR_ASSIST_UNKNOWN_CALL|no call|session/i);
    } finally {
      await app.stop();
    }
  });

  it('edge.enabled without a media anchor fails at start with a clear error', async () => {
    await expect(startApp(configSchema.parse(base()), silentLogger)).rejects.toMatchObject({ code: 'ERR_CONFIG_INVALID', message: expect.stringMatching(/media anchor/) });
  });
});
