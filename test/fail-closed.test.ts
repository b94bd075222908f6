import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { loadConfig, parseConfig } from '../src/config/load.js';
import { isLoopbackHost } from '../src/net/loopback.js';
import { cliArgs } from './support/dist.js';

/**
 * Nothing fails open (issue 20): a profile names its PSP, the sandbox PSP (approves any valid
 * card number, charges nothing) is refused on a node reachable off loopback unless the profile
 * says it is a test node, and the well-known default secrets of drachtio-server and FreeSWITCH
 * are refused when those are not on loopback. Every refusal names the field.
 */

const SANDBOX = { type: 'sandbox' } as const;
const STRIPE = { type: 'stripe', apiKeyEnv: 'STRIPE_API_KEY' } as const;
const listenOn = (host: string): Record<string, unknown> => ({ listen: [{ transport: 'udp', host, port: 5060 }, { transport: 'tcp', host, port: 5060 }] });
/** A drachtio node whose secrets are set (so only the sandbox rule speaks). */
const drachtio = (over: { drachtio?: object; freeswitch?: object; freeswitchPool?: object[] } = {}): Record<string, unknown> => ({
  backend: 'drachtio',
  drachtio: { host: '127.0.0.1', secret: 'a-long-drachtio-secret', ...over.drachtio },
  freeswitch: { host: '127.0.0.1', secret: 'a-long-event-socket-password', ...over.freeswitch },
  ...(over.freeswitchPool === undefined ? {} : { freeswitchPool: over.freeswitchPool }),
});

function refusal(raw: unknown): string {
  try {
    parseConfig(raw);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('accepted');
}

describe('a profile names its PSP', () => {
  it('a production-style config (listening on every interface, a profile without psp) is refused at start with the path and the reason', () => {
    const msg = refusal({ sip: listenOn('0.0.0.0'), defaultProfile: 'sales', profiles: { sales: { currency: 'EUR' } } });
    expect(msg).toMatch(/^profiles\.sales\.psp: required: name the PSP \(stripe, adyen, rest\) or type: sandbox for a test node$/m);
  });

  it('on loopback too: no profile falls back to the sandbox', () => {
    expect(refusal({ profiles: { default: {} } })).toMatch(/^profiles\.default\.psp: required: name the PSP/m);
    expect(parseConfig({ profiles: { default: { psp: SANDBOX } } }).profiles.default?.psp.type).toBe('sandbox');
  });

  it('the built-in defaults (no config file) name the sandbox explicitly, on loopback', () => {
    const c = parseConfig({});
    expect(c.profiles.default?.psp.type).toBe('sandbox');
    expect(c.sip.listen.every((l) => isLoopbackHost(l.host))).toBe(true);
  });
});

describe('the sandbox PSP off loopback', () => {
  const SANDBOX_REFUSED = /^profiles\.default\.psp\.type: sandbox approves any valid card number and charges nothing: refused on a node reachable off loopback \(([^)]+)\); name a real PSP, or set profiles\.default\.psp\.allowOffLoopback: true on a test node$/m;

  it('is refused when the embedded SIP stack listens off loopback, naming the listener', () => {
    for (const host of ['0.0.0.0', '::', '10.1.2.3', '2001:db8::5', 'sip.example.com']) {
      const msg = refusal({ sip: listenOn(host), profiles: { default: { psp: SANDBOX } } });
      expect(SANDBOX_REFUSED.exec(msg)?.[1], host).toBe(`sip.listen.0.host is ${host}`);
    }
    // One loopback listener beside a public one is still a public node.
    const mixed = refusal({ sip: { listen: [{ transport: 'udp', host: '127.0.0.1', port: 5060 }, { transport: 'tcp', host: '0.0.0.0', port: 5060 }] }, profiles: { default: { psp: SANDBOX } } });
    expect(SANDBOX_REFUSED.exec(mixed)?.[1]).toBe('sip.listen.1.host is 0.0.0.0');
  });

  it('is accepted on loopback addresses (127.0.0.0/8, ::1, localhost)', () => {
    for (const host of ['127.0.0.1', '127.0.1.1', '::1', 'localhost']) {
      expect(parseConfig({ sip: listenOn(host), profiles: { default: { psp: SANDBOX } } }).profiles.default?.psp.type, host).toBe('sandbox');
    }
  });

  it('drachtio backend: refused when drachtio-server, FreeSWITCH or a pool member is not on loopback', () => {
    const cases: [Record<string, unknown>, string][] = [
      [drachtio({ drachtio: { host: '10.0.0.5' } }), 'telephony.drachtio.host is 10.0.0.5'],
      [drachtio({ freeswitch: { host: 'fs.internal' } }), 'telephony.freeswitch.host is fs.internal'],
      [drachtio({ freeswitch: { listenAddress: '0.0.0.0' } }), 'telephony.freeswitch.listenAddress is 0.0.0.0'],
      [drachtio({ freeswitchPool: [{ host: '10.0.0.21', secret: 'another-password', listenPort: 8086 }] }), 'telephony.freeswitchPool.0.host is 10.0.0.21'],
    ];
    for (const [telephony, where] of cases) {
      expect(SANDBOX_REFUSED.exec(refusal({ telephony, profiles: { default: { psp: SANDBOX } } }))?.[1], where).toBe(where);
    }
    // All on loopback: a test node.
    expect(parseConfig({ telephony: drachtio(), profiles: { default: { psp: SANDBOX } } }).telephony.backend).toBe('drachtio');
  });

  it('the edge role: its SIP listeners and, with Agent Assist, the admin server that takes the captures', () => {
    const edge = { enabled: true, genesys: { host: 'byoc.example' }, rtpengine: { host: '127.0.0.1', dtmfLogAddress: '127.0.0.1', dtmfLogPort: 1 } };
    expect(SANDBOX_REFUSED.exec(refusal({ edge, sip: listenOn('0.0.0.0'), profiles: { default: { psp: SANDBOX } } }))?.[1]).toBe('sip.listen.0.host is 0.0.0.0');
    const assist = { ...edge, assist: { apiKeys: ['k'.repeat(24)] } };
    expect(SANDBOX_REFUSED.exec(refusal({ edge: assist, admin: { host: '0.0.0.0' }, profiles: { default: { psp: SANDBOX } } }))?.[1]).toBe('admin.host is 0.0.0.0');
    expect(parseConfig({ edge: assist, profiles: { default: { psp: SANDBOX } } }).edge.enabled).toBe(true);
  });

  it('names every sandbox profile and leaves real PSPs alone', () => {
    const msg = refusal({ sip: listenOn('0.0.0.0'), profiles: { default: { psp: STRIPE }, test: { psp: SANDBOX }, demo: { psp: { type: 'sandbox', face: 'adyen' } } } });
    expect(msg).toMatch(/^profiles\.test\.psp\.type: sandbox approves/m);
    expect(msg).toMatch(/^profiles\.demo\.psp\.type: sandbox approves/m);
    expect(msg).not.toMatch(/profiles\.default/);
    expect(parseConfig({ sip: listenOn('0.0.0.0'), profiles: { default: { psp: STRIPE } } }).profiles.default?.psp.type).toBe('stripe');
  });

  it('is allowed off loopback with psp.allowOffLoopback: true on that entry only', () => {
    const c = parseConfig({ sip: listenOn('0.0.0.0'), profiles: { default: { psp: { type: 'sandbox', allowOffLoopback: true } } } });
    expect(c.profiles.default?.psp).toMatchObject({ type: 'sandbox', allowOffLoopback: true });
    const msg = refusal({ sip: listenOn('0.0.0.0'), profiles: { default: { psp: { type: 'sandbox', allowOffLoopback: true } }, other: { psp: SANDBOX } } });
    expect(msg).toMatch(/^profiles\.other\.psp\.type: sandbox approves/m);
    expect(msg).not.toMatch(/profiles\.default/);
    // The setting belongs to the sandbox: a real PSP entry does not take it.
    expect(refusal({ profiles: { default: { psp: { ...STRIPE, allowOffLoopback: true } } } })).toMatch(/profiles\.default\.psp: Unrecognized key: "allowOffLoopback"/);
  });
});

describe('default secrets of drachtio-server and FreeSWITCH', () => {
  const base = { profiles: { default: { psp: STRIPE } } };

  it('are refused when the host is not loopback: drachtio, FreeSWITCH, a pool entry (each with its path)', () => {
    const d = refusal({ ...base, telephony: { backend: 'drachtio', drachtio: { host: '10.0.0.5' } } });
    expect(d).toMatch(/^telephony\.drachtio\.secret: is drachtio-server's well-known default and telephony\.drachtio\.host \(10\.0\.0\.5\) is not a loopback address: set the <admin> secret of drachtio\.conf\.xml here \(DRACHTIO_SECRET\)$/m);
    const f = refusal({ ...base, telephony: { backend: 'drachtio', freeswitch: { host: 'media-1.internal' } } });
    expect(f).toMatch(/^telephony\.freeswitch\.secret: is FreeSWITCH's well-known default and telephony\.freeswitch\.host \(media-1\.internal\) is not a loopback address/m);
    expect(f).not.toMatch(/drachtio\.secret/);
    const p = refusal({ ...base, telephony: { backend: 'drachtio', freeswitch: { secret: 'set' }, freeswitchPool: [{ host: '127.0.0.1', listenPort: 8086 }, { host: '10.0.0.22', listenPort: 8087 }] } });
    expect(p).toMatch(/^telephony\.freeswitchPool\.1\.secret: is FreeSWITCH's well-known default and telephony\.freeswitchPool\.1\.host \(10\.0\.0\.22\) is not a loopback address/m);
    expect(p).not.toMatch(/freeswitchPool\.0/);
    // Written out explicitly is the same default.
    expect(refusal({ ...base, telephony: { drachtio: { host: '10.0.0.5', secret: 'cymru' } } })).toMatch(/^telephony\.drachtio\.secret: is drachtio-server's well-known default/m);
  });

  it('from the environment too (overrides are validated with the file)', () => {
    expect(() => parseConfig(base, { PAYIVR_BACKEND: 'drachtio', DRACHTIO_HOST: 'drachtio.internal' })).toThrow(/^telephony\.drachtio\.secret: is drachtio-server's well-known default/m);
    expect(parseConfig(base, { PAYIVR_BACKEND: 'drachtio', DRACHTIO_HOST: 'drachtio.internal', DRACHTIO_SECRET: 'a-long-secret', FREESWITCH_HOST: '10.0.0.9', FREESWITCH_SECRET: 'another' }).telephony.drachtio.host).toBe('drachtio.internal');
  });

  it('are accepted on loopback, and changed secrets anywhere', () => {
    for (const host of ['127.0.0.1', '::1', 'localhost']) {
      const c = parseConfig({ ...base, telephony: { backend: 'drachtio', drachtio: { host }, freeswitch: { host }, freeswitchPool: [{ host, listenPort: 8086 }] } });
      expect(c.telephony.drachtio.secret, host).toBe('cymru');
      expect(c.telephony.freeswitchPool[0]?.secret, host).toBe('ClueCon');
    }
    const c = parseConfig({ ...base, telephony: drachtio({ drachtio: { host: '10.0.0.5' }, freeswitch: { host: '10.0.0.6' }, freeswitchPool: [{ host: '10.0.0.7', secret: 'pool-password', listenPort: 8086 }] }) });
    expect(c.telephony.freeswitch.host).toBe('10.0.0.6');
  });
});

describe('loopback', () => {
  it('127.0.0.0/8, ::1 in any spelling and localhost are loopback; wildcards, other addresses and names are not', () => {
    for (const h of ['127.0.0.1', '127.255.0.9', '::1', '0:0:0:0:0:0:0:1', '[::1]', '::ffff:127.0.0.1', 'localhost', 'LOCALHOST']) expect(isLoopbackHost(h), h).toBe(true);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', '128.0.0.1', '::2', '1::1', '::ffff:10.0.0.1', 'fe80::1%lo', 'localhost.example', 'db.internal', '']) expect(isLoopbackHost(h), h).toBe(false);
  });
});

describe('the shipped deployment templates', () => {
  it('name a real PSP (the sandbox only in the SIPp suite overlay)', () => {
    for (const file of ['docker/pay-ivr.yaml', 'docker/fleet/pay-ivr-1.yaml', 'docker/fleet/pay-ivr-2.yaml', 'docker/edge.pay-ivr.yaml']) {
      const c = loadConfig(file, { DRACHTIO_SECRET: 'from-docker-env', FREESWITCH_SECRET: 'from-docker-env' });
      for (const [name, p] of Object.entries(c.profiles)) expect(p.psp.type, `${file} profiles.${name}`).not.toBe('sandbox');
    }
  });
});

describe('pay-ivr check-config', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  function checkConfig(raw: unknown): { code: number; out: string } {
    dir ??= mkdtempSync(join(tmpdir(), 'payivr-failclosed-cli-'));
    const file = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, stringify(raw));
    try {
      const out = execFileSync(process.execPath, cliArgs('check-config', file), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PAYIVR_CONFIG: '' } });
      return { code: 0, out };
    } catch (e) {
      const err = e as { status: number; stdout: string; stderr: string };
      return { code: err.status, out: `${err.stdout}${err.stderr}` };
    }
  }

  it('exits non-zero with the path of each refused field', () => {
    const noPsp = checkConfig({ sip: listenOn('0.0.0.0'), defaultProfile: 'sales', profiles: { sales: { currency: 'EUR' } } });
    expect(noPsp.code).not.toBe(0);
    expect(noPsp.out).toContain('profiles.sales.psp: required: name the PSP (stripe, adyen, rest) or type: sandbox for a test node');
    const sandbox = checkConfig({ sip: listenOn('0.0.0.0'), profiles: { default: { psp: SANDBOX } } });
    expect(sandbox.code).not.toBe(0);
    expect(sandbox.out).toContain('profiles.default.psp.type: sandbox approves any valid card number and charges nothing: refused on a node reachable off loopback (sip.listen.0.host is 0.0.0.0)');
    const secrets = checkConfig({ telephony: { backend: 'drachtio', drachtio: { host: '10.0.0.5' }, freeswitch: { host: '10.0.0.6' }, freeswitchPool: [{ host: '10.0.0.7', listenPort: 8086 }] }, profiles: { default: { psp: STRIPE } } });
    expect(secrets.code).not.toBe(0);
    for (const path of ['telephony.drachtio.secret', 'telephony.freeswitch.secret', 'telephony.freeswitchPool.0.secret']) expect(secrets.out).toContain(`${path}: is `);
  });

  it('accepts the same node once it names the sandbox as a test node (and the built-in defaults)', () => {
    const ok = checkConfig({ sip: listenOn('0.0.0.0'), profiles: { default: { psp: { type: 'sandbox', allowOffLoopback: true } } } });
    expect(ok.out).toMatch(/: ok$/m);
    expect(ok.code).toBe(0);
  });
});
