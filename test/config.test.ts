import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, loadConfig, SHIPPED_PROMPTS_DIR } from '../src/config/load.js';
import { selectProfile, dialogueSettings } from '../src/config/profiles.js';
import { profileSchema } from '../src/config/schema.js';
import { edgeSchema } from '../src/config/edge-schema.js';
import { parse as parseYaml } from 'yaml';
import { cliArgs } from './support/dist.js';

/** Profiles name their PSP (a profile without one is refused); these test nodes are on loopback. */
const SANDBOX = { type: 'sandbox' } as const;

function cli(args: string[], env: Record<string, string> = {}): { code: number; out: string } {
  try {
    const out = execFileSync(process.execPath, cliArgs(...args), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    return { code: 0, out };
  } catch (e) {
    const err = e as { status: number; stdout: string; stderr: string };
    return { code: err.status, out: `${err.stdout}${err.stderr}` };
  }
}

describe('configuration', () => {
  it('works with no file at all (built-in defaults)', () => {
    const c = parseConfig({});
    expect(c.telephony.backend).toBe('embedded');
    expect(c.sip.listen[0]).toEqual({ transport: 'udp', host: '127.0.0.1', port: 5060 });
    expect(c.profiles.default?.psp.type).toBe('sandbox');
  });

  it('check-config accepts the shipped example', () => {
    const r = cli(['check-config', 'config/example.yaml']);
    expect(r.out).toContain('config/example.yaml: ok');
    expect(r.code).toBe(0);
  });

  it('check-config rejects a broken file with the path of every bad field', () => {
    const r = cli(['check-config', 'test/fixtures/broken-config.yaml']);
    expect(r.code).not.toBe(0);
    expect(r.out).toContain('profiles.default.minAmount: must be >= 0');
    expect(r.out).toContain('profiles.default.currency:');
  });

  it('reports unknown keys, bad enums and cross-field errors with paths', () => {
    expect(() => parseConfig({ profiles: { default: { psp: SANDBOX, maxDeclinez: 3 } } })).toThrow(/profiles\.default/);
    expect(() => parseConfig({ telephony: { backend: 'asterisk' } })).toThrow(/telephony\.backend/);
    expect(() => parseConfig({ profiles: { default: { psp: SANDBOX, minAmount: 500, maxAmount: 100 } } })).toThrow(/profiles\.default\.maxAmount: must be >= minAmount/);
    expect(() => parseConfig({ defaultProfile: 'nope' })).toThrow(/defaultProfile: no profile named "nope"/);
    expect(() => parseConfig({ profiles: { default: { psp: { type: 'adyen' } } } })).toThrow(/profiles\.default\.psp\.merchantAccount/);
    expect(() => parseConfig({ security: { mediaRanges: ['52.129.96.0/20', '10.0.0.0/'] } })).toThrow(/security\.mediaRanges\.1: not an IPv4\/IPv6 address or CIDR/);
  });

  it('context safety settings fail at start with the path of the bad field', () => {
    const bad: [unknown, RegExp][] = [
      [{ profiles: { default: { psp: SANDBOX, currency: 'JPX' } } }, /profiles\.default\.currency: not an ISO 4217 currency code/],
      [{ profiles: { default: { psp: SANDBOX, acceptedCurrencies: { JPX: { minAmount: 1, maxAmount: 2 } } } } }, /profiles\.default\.acceptedCurrencies\.JPX: not an ISO 4217/],
      [{ profiles: { default: { psp: SANDBOX, acceptedCurrencies: { eur: { minAmount: 1, maxAmount: 2 } } } } }, /profiles\.default\.acceptedCurrencies\.eur: not an ISO 4217/],
      [{ profiles: { default: { psp: SANDBOX, acceptedCurrencies: { EUR: { minAmount: 1, maxAmount: 2 } } } } }, /profiles\.default\.acceptedCurrencies\.EUR: is the profile currency/],
      [{ profiles: { default: { psp: SANDBOX, acceptedCurrencies: { GBP: { minAmount: 10, maxAmount: 2 } } } } }, /profiles\.default\.acceptedCurrencies\.GBP\.maxAmount: must be >= minAmount/],
      [{ profiles: { default: { psp: SANDBOX, acceptedCurrencies: { GBP: { minAmount: 10 } } } } }, /profiles\.default\.acceptedCurrencies\.GBP\.maxAmount/],
      [{ profiles: { default: { psp: SANDBOX, onBadContext: 'maybe' } } }, /profiles\.default\.onBadContext/],
      [{ profiles: { default: { psp: SANDBOX, handBack: { returnTargets: { numbers: '(' } } } } }, /profiles\.default\.handBack\.returnTargets\.numbers: not a valid regular expression/],
      [{ profiles: { default: { psp: SANDBOX, handBack: { returnTargets: { hosts: ['evil host'] } } } } }, /profiles\.default\.handBack\.returnTargets\.hosts\.0: must be a host name/],
      [{ profiles: { default: { psp: SANDBOX, handBack: { returnTargets: { uris: ['sip:a b@c'] } } } } }, /profiles\.default\.handBack\.returnTargets\.uris\.0: must be a sip/],
      [{ profiles: { default: { psp: SANDBOX, handBack: { automated: 'not a uri' } } } }, /profiles\.default\.handBack\.automated: must be a sip/],
      [{ profiles: { default: { psp: SANDBOX, handBack: { byOutcome: { error: 'sip:<x>' } } } } }, /profiles\.default\.handBack\.byOutcome\.error: must be a sip/],
      [{ genesys: { keys: { reference: 'ACCT' } } }, /genesys\.keys\.reference: same key as genesys\.keys\.account/],
      [{ genesys: { resultKeys: { src: 'a|b' } } }, /genesys\.resultKeys\.src: must be 1-32 printable characters/],
      [{ genesys: { resultKeys: { src: 'res' } } }, /genesys\.resultKeys\.src: same key as genesys\.resultKeys\.res/],
      [{ genesys: { fieldSeparator: '=' } }, /genesys\.keyValueSeparator: must differ from fieldSeparator/],
    ];
    for (const [input, message] of bad) expect(() => parseConfig(input), JSON.stringify(input)).toThrow(message);
    const ok = parseConfig({ profiles: { default: { psp: SANDBOX, acceptedCurrencies: { GBP: { minAmount: 100, maxAmount: 200 } }, handBack: { returnTargets: { numbers: '\\+33[0-9]{9}', hosts: ['agents.example:5061'] } } } } });
    expect(ok.profiles.default?.onBadContext).toBe('hand-back');
    expect(ok.profiles.default?.handBack.returnTargets).toEqual({ numbers: '\\+33[0-9]{9}', hosts: ['agents.example:5061'], uris: [] });
  });

  it('a missing file is a clear error', () => {
    const r = cli(['check-config', 'no/such/file.yaml']);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/cannot read config file no\/such\/file\.yaml/);
  });

  it('env overrides apply before validation and are validated too', () => {
    const c = parseConfig({}, { PAYIVR_BACKEND: 'drachtio', DRACHTIO_PORT: '9999', PAYIVR_SIP_PORT: '5080' });
    expect(c.telephony.backend).toBe('drachtio');
    expect(c.telephony.drachtio.port).toBe(9999);
    expect(c.sip.listen.map((l) => l.port)).toEqual([5080, 5080]);
    expect(() => parseConfig({}, { DRACHTIO_PORT: 'abc' })).toThrow(/telephony\.drachtio\.port/);
  });

  it('selects a profile by UUI field, then called number, then default', () => {
    const c = loadConfig('config/example.yaml', {});
    expect(selectProfile(c, '+33140000001', undefined).name).toBe('france');
    expect(selectProfile(c, '33140000001', undefined).name).toBe('france');
    expect(selectProfile(c, '+1999', undefined).name).toBe('default');
    expect(selectProfile(c, '+1999', 'france').name).toBe('france');
    expect(selectProfile(c, '+33140000001', 'unknown').name).toBe('france');
    const s = dialogueSettings(c.profiles.france!, 'en-US');
    expect(s.language).toBe('en-US');
    expect(s.currency).toBe('EUR');
  });

  it('finds the shipped prompt packs when started outside the repository', () => {
    const cwd = process.cwd();
    try {
      process.chdir(tmpdir());
      const c = parseConfig({});
      expect(c.promptsDir).toBe(SHIPPED_PROMPTS_DIR);
      expect(existsSync(join(c.promptsDir, 'en-US', 'welcome.wav'))).toBe(true);
      // An explicit relative directory is the operator's: kept as given.
      expect(parseConfig({ promptsDir: 'my-prompts' }).promptsDir).toBe('my-prompts');
    } finally {
      process.chdir(cwd);
    }
  });

  it('config/example.yaml names every setting of the schema (set, or commented with an example)', () => {
    const text = readFileSync('config/example.yaml', 'utf8');
    const defaults = parseConfig({}) as unknown as Record<string, unknown>;
    const missing: string[] = [];
    const need = (path: string, key: string): void => {
      if (!new RegExp(`(^|[\\s{,#])${key}:`, 'm').test(text)) missing.push(`${path}${key}`);
    };
    for (const [section, value] of Object.entries(defaults)) {
      need('', section);
      if (section === 'profiles' || typeof value !== 'object' || value === null || Array.isArray(value)) continue;
      for (const key of Object.keys(value)) need(`${section}.`, key);
    }
    for (const key of Object.keys(profileSchema.parse({ psp: SANDBOX }))) need('profiles.<name>.', key);
    // Optional settings with no default: the example shows each one (commented).
    for (const key of ['tls', 'publicAddress', 'sharedSecretHeader', 'digest', 'apiToken', 'file', 'agent', 'transport: tls']) {
      if (!text.includes(`${key}`)) missing.push(key);
    }
    expect(missing).toEqual([]);
  });

  it('config/example.yaml documents the whole edge section: every key, and the commented values are valid and are the defaults', () => {
    const text = readFileSync('config/example.yaml', 'utf8');
    const lines = text.split('\n');
    const from = lines.indexOf('edge:');
    expect(from).toBeGreaterThan(0);
    const to = lines.findIndex((l, i) => i > from && /^[A-Za-z]/.test(l));
    // The section with its commented settings turned on: `  # key: value` lines and the
    // continuation of a commented flow sequence; prose comments stay comments.
    const section = lines
      .slice(from, to)
      .map((l) => (/^ {2}#( +)([A-Za-z]+:|")/.test(l) ? l.replace(/^ {2}# /, '  ') : l))
      .join('\n');
    const raw = (parseYaml(section) as { edge: Record<string, unknown> }).edge;
    const edgeShape = edgeSchema.shape;
    const rtpengineShape = edgeShape.rtpengine.unwrap().shape;
    const assistShape = edgeShape.assist.unwrap().shape;
    const rtpengineRaw = raw.rtpengine as Record<string, unknown>;
    const assistRaw = raw.assist as Record<string, unknown>;
    expect(Object.keys(raw).sort()).toEqual(Object.keys(edgeShape).sort());
    expect(Object.keys(rtpengineRaw).sort()).toEqual(Object.keys(rtpengineShape).sort());
    expect(Object.keys(raw.genesys as Record<string, unknown>).sort()).toEqual(Object.keys(edgeShape.genesys.unwrap().shape).sort());
    expect(Object.keys(assistRaw).sort()).toEqual(Object.keys(assistShape).sort());
    // Turned on, it is a valid edge node.
    const on = parseConfig({ edge: { ...raw, enabled: true } });
    expect(on.edge.assist?.dtmfSecurity).toBe('tone');
    // Every value shown for a setting that has a default is that default.
    const minimal = parseConfig({
      edge: {
        enabled: true,
        genesys: { host: 'g.example' },
        rtpengine: { host: '127.0.0.1', dtmfLogAddress: '127.0.0.1', dtmfLogPort: 1 },
        assist: { apiKeys: ['x'.repeat(24)] },
      },
    }).edge;
    const sections: [Record<string, unknown>, Record<string, unknown>][] = [
      [raw, minimal as unknown as Record<string, unknown>],
      [rtpengineRaw, minimal.rtpengine as unknown as Record<string, unknown>],
      [assistRaw, minimal.assist as unknown as Record<string, unknown>],
    ];
    const differs: string[] = [];
    for (const [shown, defaults] of sections) {
      for (const [k, v] of Object.entries(shown)) {
        const d = defaults[k];
        if (d === undefined || (typeof v === 'object' && !Array.isArray(v))) continue;
        if (k === 'enabled' || k === 'apiKeys' || k === 'dtmfLogPort') continue;
        if (JSON.stringify(v) !== JSON.stringify(d)) differs.push(`${k}: shown ${JSON.stringify(v)}, default ${JSON.stringify(d)}`);
      }
    }
    expect(differs).toEqual([]);
    expect(raw.enabled).toBe(false);
  });

  it("the README's example call and the example config agree (the UUI currency is the default profile's)", () => {
    const readme = readFileSync('README.md', 'utf8');
    const uui = /res=approved\|[^`\s]*/.exec(readme)?.[0];
    expect(uui, 'README shows an example result UUI').toBeDefined();
    const cur = /\|cur=([A-Z]{3})\|/.exec(uui ?? '')?.[1];
    const c = loadConfig('config/example.yaml', {});
    expect(c.profiles[c.defaultProfile]?.currency).toBe(cur);
    // The example call itself (scripts/sipp-call.ts) sends that currency too.
    expect(readFileSync('scripts/sipp-call.ts', 'utf8')).toContain(`cur=${cur}`);
  });
});
