import { describe, it, expect } from 'vitest';
import { readFileSync, readdirSync, existsSync, mkdtempSync, mkdirSync, writeFileSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../src/config/load.js';
import type { Config } from '../src/config/schema.js';
import { MRF_PROFILE } from '../src/telephony/drachtio/freeswitch-link.js';
import { interpolate, mountSource as mountSourceIn, parseEnvFile, resolvedEnv, type ComposeService } from './support/compose.js';

/**
 * The docker/ deployment checked without a Docker engine: the compose file is parsed, pay-ivr's
 * environment in it (with docker/.env.example) must pass our config schema, and the ports and
 * addresses in the compose file, drachtio.conf.xml and the FreeSWITCH configuration must agree
 * with that config; the PCI-relevant settings (log levels, event-socket ACL) are checked in the
 * shipped files.
 */

const DOCKER = resolve(__dirname, '..', 'docker');
const read = (p: string): string => readFileSync(join(DOCKER, p), 'utf8');

type Service = ComposeService;

const compose = parseYaml(read('docker-compose.yml')) as { services: Record<string, Service>; volumes?: Record<string, unknown> };

const dotenv = parseEnvFile(read('.env.example'));

/** host path (relative to docker/) of the volume mounted at `target`. */
function mountSource(service: Service, target: string): string | undefined {
  return mountSourceIn(service, target, dotenv);
}

function stripComments(xml: string): string {
  return xml.replace(/<!--[\s\S]*?-->/g, '');
}

function param(xml: string, name: string): string | undefined {
  return new RegExp(`<param\\s+name="${name}"\\s+value="([^"]*)"\\s*/>`).exec(stripComments(xml))?.[1];
}

const services = compose.services;
const payIvr = services['pay-ivr'] as Service;
const payEnv = resolvedEnv(payIvr, dotenv);
const configPath = join(DOCKER, mountSource(payIvr, payEnv.PAYIVR_CONFIG as string) ?? 'missing');
const config: Config = loadConfig(configPath, payEnv);

const drachtioConf = read('drachtio/drachtio.conf.xml');
const esl = read('freeswitch/autoload_configs/event_socket.conf.xml');
const acl = read('freeswitch/autoload_configs/acl.conf.xml');
const switchConf = read('freeswitch/autoload_configs/switch.conf.xml');
const consoleConf = read('freeswitch/autoload_configs/console.conf.xml');
const logfileConf = read('freeswitch/autoload_configs/logfile.conf.xml');
const modules = read('freeswitch/autoload_configs/modules.conf.xml');
const profile = read('freeswitch/sip_profiles/drachtio_mrf.xml');
const dialplan = read('freeswitch/dialplan/mrf.xml');
const fsStart = read('freeswitch/start.sh');
const drachtioStart = read('drachtio/start.sh');

/** Runs a docker/ start script with a fake binary that writes its arguments one per line. */
function runStartScript(
  script: string,
  env: Record<string, string>,
  fsConf?: string,
): { status: number | null; stderr: string; args: string[] } {
  const tmp = mkdtempSync(join(tmpdir(), 'payivr-start-'));
  try {
    const bin = join(tmp, 'bin');
    mkdirSync(bin);
    const argsFile = join(tmp, 'args');
    for (const name of ['freeswitch', 'drachtio']) {
      writeFileSync(join(bin, name), `#!/bin/sh\nprintf '%s\\n' "$@" > ${argsFile}\n`);
      chmodSync(join(bin, name), 0o755);
    }
    const r = spawnSync('sh', [join(DOCKER, script)], {
      env: { PATH: `${bin}:/usr/bin:/bin`, PAYIVR_FS_CONF_SRC: join(DOCKER, 'freeswitch'), ...(fsConf !== undefined ? { PAYIVR_FS_CONF_DIR: fsConf } : {}), ...env },
      encoding: 'utf8',
    });
    const args = existsSync(argsFile) ? readFileSync(argsFile, 'utf8').split('\n').slice(0, -1) : [];
    return { status: r.status, stderr: r.stderr, args };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** A directory holding the TLS files drachtio's start script checks for. */
function tlsDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'payivr-tlsdir-'));
  writeFileSync(join(d, 'cert.pem'), 'test');
  writeFileSync(join(d, 'key.pem'), 'test');
  return d;
}

/**
 * drachtio-server's rule for its command line (controller.cpp): an --external-ip belongs to the
 * --contact just before it, one per contact; one without a preceding --contact is refused. Returns
 * the contacts with their external IPs, or throws what drachtio-server would say.
 */
function drachtioContacts(args: readonly string[]): { contact: string; externalIp?: string }[] {
  const out: { contact: string; externalIp?: string }[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--contact') out.push({ contact: args[++i] as string });
    else if (a === '--external-ip') {
      const last = out[out.length - 1];
      if (last === undefined) throw new Error("'public-ip' argument must follow a 'contact'");
      if (last.externalIp !== undefined) throw new Error("multiple 'public-ip' arguments provided for a single contact");
      last.externalIp = args[++i] as string;
    }
  }
  return out;
}

function ipv4InCidr(ip: string, cidr: string): boolean {
  const [net, bitsText] = cidr.split('/');
  const toInt = (a: string): number => a.split('.').reduce((n, o) => (n << 8) + Number(o), 0) >>> 0;
  const bits = Number(bitsText ?? 32);
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return ((toInt(ip) & mask) >>> 0) === ((toInt(net ?? '') & mask) >>> 0);
}

describe('docker compose deployment', () => {
  it('runs drachtio-server, FreeSWITCH (mrf image), Redis, pay-ivr, Prometheus and Grafana', () => {
    expect(Object.keys(services).sort()).toEqual(['drachtio', 'freeswitch', 'grafana', 'pay-ivr', 'prometheus', 'redis']);
    expect(interpolate(services.drachtio?.image ?? '', dotenv)).toMatch(/^drachtio\/drachtio-server[:@]/);
    expect(interpolate(services.freeswitch?.image ?? '', dotenv)).toMatch(/^drachtio\/drachtio-freeswitch-mrf[:@]/);
    expect(interpolate(services.redis?.image ?? '', dotenv)).toMatch(/^redis[:@]/);
    expect(payIvr.build).toEqual({ context: '..', dockerfile: 'docker/Dockerfile' });
  });

  it('uses host networking for FreeSWITCH (RTP) and keeps every service on the host network without port proxies', () => {
    expect(services.freeswitch?.network_mode).toBe('host');
    for (const s of Object.values(services)) {
      expect(s.network_mode).toBe('host');
      expect(s.ports).toBeUndefined();
    }
  });

  it("pay-ivr's environment passes the config schema and selects the drachtio backend", () => {
    expect(payEnv.PAYIVR_BACKEND).toBe('drachtio');
    expect(config.telephony.backend).toBe('drachtio');
    for (const name of ['DRACHTIO_HOST', 'DRACHTIO_PORT', 'DRACHTIO_SECRET', 'FREESWITCH_HOST', 'FREESWITCH_PORT', 'FREESWITCH_SECRET', 'FREESWITCH_PROMPTS_DIR']) {
      expect(payEnv[name], name).toBeTruthy();
    }
    expect(config.telephony.drachtio.secret).toBe(dotenv.DRACHTIO_SECRET);
    expect(config.telephony.freeswitch.secret).toBe(dotenv.FREESWITCH_SECRET);
    expect(config.store.type).toBe('redis');
    expect(config.log.level).not.toMatch(/debug|trace/);
  });

  it('keeps secrets out of the compose file and refuses to start without them', () => {
    for (const s of [services.drachtio, services.freeswitch, payIvr]) {
      for (const [k, v] of Object.entries(s?.environment ?? {})) {
        if (/SECRET|TOKEN|API_KEY/.test(k)) expect(String(v), k).toMatch(/^\$\{[A-Z_]+:?[-?][^}]*\}$/);
      }
    }
    expect(() => resolvedEnv(payIvr, { ...dotenv, DRACHTIO_SECRET: '' })).toThrow(/DRACHTIO_SECRET/);
    const referenced = new Set([...read('docker-compose.yml').matchAll(/\$\{([A-Z_][A-Z0-9_]*)/g)].map((m) => m[1]));
    for (const name of referenced) expect(Object.keys(dotenv), `${name} missing from .env.example`).toContain(name);
  });

  it('drachtio-server: admin port and address are where pay-ivr connects; log levels are PCI-safe', () => {
    const admin = /<admin\s+port="(\d+)"\s+secret="[^"]*">([^<]+)<\/admin>/.exec(stripComments(drachtioConf));
    expect(admin).not.toBeNull();
    expect(Number(admin?.[1])).toBe(config.telephony.drachtio.port);
    expect(Number(admin?.[1])).toBe(9022);
    expect(admin?.[2]?.trim()).toBe(config.telephony.drachtio.host);
    expect(/<loglevel>(\w+)<\/loglevel>/.exec(stripComments(drachtioConf))?.[1]).toMatch(/^(notice|warning|error)$/);
    expect(Number(/<sofia-loglevel>(\d+)<\/sofia-loglevel>/.exec(stripComments(drachtioConf))?.[1])).toBeLessThanOrEqual(3);
    const env = resolvedEnv(services.drachtio as Service, dotenv);
    expect(env.DRACHTIO_LOGLEVEL).toMatch(/^(notice|warning|error)$/);
    expect(Number(env.DRACHTIO_SOFIA_LOGLEVEL)).toBeLessThanOrEqual(3);
    expect(env.DRACHTIO_SECRET).toBe(config.telephony.drachtio.secret);
    expect(mountSource(services.drachtio as Service, '/etc/drachtio.conf.xml')).toBe('./drachtio/drachtio.conf.xml');
  });

  it("FreeSWITCH event socket: port and address match pay-ivr's config, bound to loopback, ACL'd to the pay-ivr address", () => {
    expect(Number(param(esl, 'listen-port'))).toBe(config.telephony.freeswitch.port);
    expect(Number(param(esl, 'listen-port'))).toBe(8021);
    expect(param(esl, 'listen-ip')).toBe(config.telephony.freeswitch.host);
    expect(param(esl, 'password')).toBe('@FREESWITCH_SECRET@');
    expect(fsStart).toContain('s|@FREESWITCH_SECRET@|$FREESWITCH_SECRET|g');
    expect(resolvedEnv(services.freeswitch as Service, dotenv).FREESWITCH_SECRET).toBe(config.telephony.freeswitch.secret);
    const aclName = param(esl, 'apply-inbound-acl') as string;
    expect(aclName).toBeTruthy();
    const list = new RegExp(`<list\\s+name="${aclName}"\\s+default="(\\w+)">([\\s\\S]*?)</list>`).exec(stripComments(acl));
    expect(list?.[1]).toBe('deny');
    const allowed = [...(list?.[2] ?? '').matchAll(/<node\s+type="allow"\s+cidr="([^"]+)"/g)].map((m) => m[1] as string);
    expect(allowed.length).toBeGreaterThan(0);
    // pay-ivr connects from the address it listens on for the outbound sockets (same host).
    expect(allowed.some((c) => ipv4InCidr(config.telephony.freeswitch.listenAddress, c))).toBe(true);
    expect(allowed).not.toContain('0.0.0.0/0');
    // The image's entrypoint would rewrite this ACL to allow everyone: it must be replaced.
    expect(services.freeswitch?.entrypoint).toEqual(['/bin/sh', '/etc/pay-ivr/freeswitch/start.sh']);
  });

  it('FreeSWITCH logs at NOTICE everywhere (no RECV DTMF lines) and loads no module that stores or ships audio', () => {
    expect(param(switchConf, 'loglevel')).toBe('notice');
    expect(param(consoleConf, 'loglevel')).toBe('notice');
    for (const conf of [consoleConf, logfileConf]) {
      const maps = [...stripComments(conf).matchAll(/<map\s+name="all"\s+value="([^"]+)"/g)].map((m) => m[1] as string);
      expect(maps.length).toBeGreaterThan(0);
      for (const m of maps) expect(m.split(',')).not.toEqual(expect.arrayContaining(['info']));
      for (const m of maps) expect(m.split(',')).not.toEqual(expect.arrayContaining(['debug']));
    }
    expect(param(profile, 'sip-trace')).toBe('no');
    expect(param(switchConf, 'dump-cores')).toBe('no');
    const loaded = [...stripComments(modules).matchAll(/<load\s+module="([^"]+)"/g)].map((m) => m[1]);
    for (const m of ['mod_sofia', 'mod_event_socket', 'mod_dptools', 'mod_commands', 'mod_dialplan_xml', 'mod_sndfile']) expect(loaded).toContain(m);
    for (const m of ['mod_cdr_csv', 'mod_xml_cdr', 'mod_audio_fork', 'mod_conference', 'mod_httapi']) expect(loaded).not.toContain(m);
  });

  it('FreeSWITCH profile and dialplan are what drachtio-fsmrf needs: drachtio_mrf, RFC 2833 on 101, socket to X-esl-outbound', () => {
    expect(new RegExp(`<profile\\s+name="${MRF_PROFILE}"`).test(profile)).toBe(true);
    expect(param(profile, 'rfc2833-pt')).toBe('101');
    expect(param(profile, 'dtmf-type')).toBe('rfc2833');
    const context = param(profile, 'context');
    expect(new RegExp(`<context\\s+name="${context}">`).test(stripComments(dialplan))).toBe(true);
    const body = stripComments(dialplan);
    expect(body).toMatch(/field="\$\{sip_user_agent\}"\s+expression="\^drachtio-fsmrf:/);
    expect(body).toMatch(/application="socket"\s+data="\$\{sip_h_X-esl-outbound\} async full"/);
    // No RTP before the caller's ACK: pay-ivr turns idle silence on after it (call.ts #awaitAck).
    expect(body).not.toMatch(/send_silence_when_idle/);
    // RTP only from the SDP's address and port, never relatched (profile and channel).
    expect(body).toMatch(/application="set"\s+data="disable_rtp_auto_adjust=true"/);
    expect(param(profile, 'disable-rtp-auto-adjust')).toBe('true');
    expect(stripComments(profile)).not.toMatch(/ACCEPT_ANY_PACKETS|ALWAYS_AUTO_ADJUST/);
    expect(body).toMatch(/application="set"\s+data="playback_terminators=none"/);
    expect(body).not.toMatch(/play_and_get_digits|application="read"|sensitive_dtmf/);
    // SIP of the profile: loopback, only drachtio-server may send to it.
    expect(param(profile, 'sip-ip')).toBe('127.0.0.1');
    const sipAcl = param(profile, 'apply-inbound-acl');
    expect(new RegExp(`<list\\s+name="${sipAcl}"\\s+default="deny"`).test(stripComments(acl))).toBe(true);
  });

  it('fills every configuration placeholder at start and mounts the prompts where pay-ivr tells FreeSWITCH to read them', () => {
    const files = ['autoload_configs', 'sip_profiles', 'dialplan'].flatMap((d) => readdirSync(join(DOCKER, 'freeswitch', d)).map((f) => read(join('freeswitch', d, f))));
    const placeholders = new Set(files.flatMap((t) => [...t.matchAll(/@([A-Z_]+)@/g)].map((m) => m[1])));
    expect(placeholders.size).toBeGreaterThan(0);
    for (const p of placeholders) expect(fsStart, `start.sh fills @${p}@`).toContain(`s|@${p}@|`);
    expect(mountSource(services.freeswitch as Service, config.telephony.freeswitch.promptsDir)).toBe('../prompts');
    expect(existsSync(resolve(DOCKER, '..', 'prompts', 'en-US'))).toBe(true);
  });

  it('every port of the stack is distinct and outside the RTP range', () => {
    const fsEnv = resolvedEnv(services.freeswitch as Service, dotenv);
    const rtpMin = Number(fsEnv.RTP_PORT_MIN);
    const rtpMax = Number(fsEnv.RTP_PORT_MAX);
    const redisPort = Number((services.redis?.command ?? [])[(services.redis?.command ?? []).indexOf('--port') + 1]);
    const dir = tlsDir();
    const contacts = drachtioContacts(runStartScript('drachtio/start.sh', { DRACHTIO_SECRET: 'x', DRACHTIO_TLS_DIR: dir }).args);
    rmSync(dir, { recursive: true, force: true });
    const portOf = (re: RegExp): number => Number(/:(\d+);/.exec(contacts.find((c) => re.test(c.contact))?.contact ?? '')?.[1]);
    const ports = {
      'drachtio SIP': portOf(/transport=udp,tcp$/),
      'drachtio SIP TLS': portOf(/transport=tls$/),
      'drachtio admin': config.telephony.drachtio.port,
      'FreeSWITCH event socket': Number(param(esl, 'listen-port')),
      'FreeSWITCH drachtio_mrf SIP': Number(param(profile, 'sip-port')),
      'fsmrf outbound socket': config.telephony.freeswitch.listenPort,
      redis: redisPort,
      'pay-ivr admin': config.admin.port,
    };
    expect(ports).toEqual({
      'drachtio SIP': 5060,
      'drachtio SIP TLS': 5061,
      'drachtio admin': 9022,
      'FreeSWITCH event socket': 8021,
      'FreeSWITCH drachtio_mrf SIP': 5080,
      'fsmrf outbound socket': 8085,
      redis: 6379,
      'pay-ivr admin': 8080,
    });
    expect(new Set(Object.values(ports)).size).toBe(Object.keys(ports).length);
    expect(rtpMin).toBeLessThan(rtpMax);
    for (const p of Object.values(ports)) expect(p < rtpMin || p > rtpMax).toBe(true);
    expect(config.store.redisUrl).toBe(`redis://127.0.0.1:${redisPort}`);
    expect(payEnv.PAYIVR_ADMIN_PORT).toBe(String(config.admin.port));
  });

  it('pay-ivr image: multi-stage build, runs as a non-root user, no dev dependencies at runtime', () => {
    const dockerfile = readFileSync(join(DOCKER, 'Dockerfile'), 'utf8');
    const stages = dockerfile.split(/^FROM\s+/m).slice(1);
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const runtime = stages[stages.length - 1] as string;
    const user = /^USER\s+(\S+)/m.exec(runtime)?.[1];
    expect(user).toBeDefined();
    expect(user).not.toMatch(/^(root|0)(:|$)/);
    expect(runtime).toMatch(/COPY --from=build/);
    expect(runtime).not.toMatch(/npm (ci|install)/);
    expect(stages[0]).toMatch(/npm prune --omit=dev/);
    expect(payIvr.read_only).toBe(true);
    for (const s of Object.values(services)) if (s !== services.redis) expect(s.ulimits?.core).toBe(0);
  });

  it('every XML file is well-formed enough for FreeSWITCH/drachtio (no "--" inside comments, balanced tags)', () => {
    const xmlFiles = [drachtioConf, esl, acl, switchConf, consoleConf, logfileConf, modules, profile, dialplan];
    for (const x of xmlFiles) {
      for (const c of x.matchAll(/<!--([\s\S]*?)-->/g)) expect(c[1]).not.toContain('--');
      const body = stripComments(x);
      const open = [...body.matchAll(/<([a-zA-Z][\w-]*)[^>]*?(\/)?>/g)].filter((m) => m[2] !== '/').map((m) => m[1]);
      const close = [...body.matchAll(/<\/([a-zA-Z][\w-]*)>/g)].map((m) => m[1]);
      expect(open.sort()).toEqual(close.sort());
    }
  });

  it('the end-to-end configuration (PAYIVR_CONFIG_FILE=./e2e.pay-ivr.yaml) passes the schema with the same environment', () => {
    const e2e = loadConfig(join(DOCKER, 'e2e.pay-ivr.yaml'), payEnv);
    expect(e2e.telephony.backend).toBe('drachtio');
    expect(e2e.telephony.freeswitch.listenPort).toBe(config.telephony.freeswitch.listenPort);
    expect(e2e.profiles.default?.handBack.automated).toBe('sip:+18005550100@127.0.0.1');
    expect(Object.keys(e2e.profiles).sort()).toEqual(['default', 'entered', 'slow']);
  });

  it('FreeSWITCH start script: secret and addresses filled in, bad secrets are refused', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'payivr-fs-'));
    try {
      const conf = join(tmp, 'conf');
      for (const d of ['autoload_configs', 'sip_profiles', 'dialplan']) mkdirSync(join(conf, d), { recursive: true });
      writeFileSync(join(conf, 'sip_profiles', 'image-default.xml'), '<include/>');
      const bin = join(tmp, 'bin');
      mkdirSync(bin);
      const argsFile = join(tmp, 'args');
      for (const name of ['freeswitch', 'drachtio']) {
        writeFileSync(join(bin, name), `#!/bin/sh\necho "$@" > ${argsFile}\n`);
        chmodSync(join(bin, name), 0o755);
      }
      const run = (script: string, env: Record<string, string>): ReturnType<typeof spawnSync> =>
        spawnSync('sh', [join(DOCKER, script)], {
          env: { PATH: `${bin}:/usr/bin:/bin`, PAYIVR_FS_CONF_SRC: join(DOCKER, 'freeswitch'), PAYIVR_FS_CONF_DIR: conf, ...env },
          encoding: 'utf8',
        });
      const ok = run('freeswitch/start.sh', { FREESWITCH_SECRET: 'S3cret.value-1', PUBLIC_IP: '203.0.113.7', RTP_PORT_MIN: '21000', RTP_PORT_MAX: '22000' });
      expect(ok.status).toBe(0);
      expect(readFileSync(argsFile, 'utf8').trim()).toBe('-nonat -nf');
      const outEsl = readFileSync(join(conf, 'autoload_configs', 'event_socket.conf.xml'), 'utf8');
      expect(param(outEsl, 'password')).toBe('S3cret.value-1');
      expect(param(readFileSync(join(conf, 'sip_profiles', 'drachtio_mrf.xml'), 'utf8'), 'ext-rtp-ip')).toBe('203.0.113.7');
      expect(param(readFileSync(join(conf, 'autoload_configs', 'switch.conf.xml'), 'utf8'), 'rtp-start-port')).toBe('21000');
      expect(readdirSync(join(conf, 'sip_profiles'))).toEqual(['drachtio_mrf.xml']);
      for (const d of ['autoload_configs', 'sip_profiles', 'dialplan']) {
        for (const f of readdirSync(join(conf, d))) expect(readFileSync(join(conf, d, f), 'utf8')).not.toMatch(/@[A-Z_]+@/);
      }
      const noNat = run('freeswitch/start.sh', { FREESWITCH_SECRET: 'S3cret' });
      expect(noNat.status).toBe(0);
      expect(param(readFileSync(join(conf, 'sip_profiles', 'drachtio_mrf.xml'), 'utf8'), 'ext-rtp-ip')).toBe('$${local_ip_v4}');
      expect(run('freeswitch/start.sh', { FREESWITCH_SECRET: 'bad"secret' }).status).not.toBe(0);
      expect(run('freeswitch/start.sh', {}).status).not.toBe(0);

    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it("drachtio start script: every --external-ip follows its --contact (drachtio-server's rule), UDP/TCP 5060 and TLS 5061", () => {
    const dir = tlsDir();
    try {
      const nat = runStartScript('drachtio/start.sh', { DRACHTIO_SECRET: 'x', PUBLIC_IP: '203.0.113.7', DRACHTIO_TLS_DIR: dir });
      expect(nat.status).toBe(0);
      expect(nat.args.slice(0, 2)).toEqual(['--file', '/etc/drachtio.conf.xml']);
      expect(drachtioContacts(nat.args)).toEqual([
        { contact: 'sip:*:5060;transport=udp,tcp', externalIp: '203.0.113.7' },
        { contact: 'sip:*:5061;transport=tls', externalIp: '203.0.113.7' },
      ]);
      const plain = runStartScript('drachtio/start.sh', { DRACHTIO_SECRET: 'x', DRACHTIO_TLS_DIR: dir });
      expect(plain.status).toBe(0);
      expect(drachtioContacts(plain.args)).toEqual([{ contact: 'sip:*:5060;transport=udp,tcp' }, { contact: 'sip:*:5061;transport=tls' }]);
      const noTls = runStartScript('drachtio/start.sh', { DRACHTIO_SECRET: 'x', SIP_TLS: 'off', PUBLIC_IP: '203.0.113.7' });
      expect(noTls.status).toBe(0);
      expect(drachtioContacts(noTls.args)).toEqual([{ contact: 'sip:*:5060;transport=udp,tcp', externalIp: '203.0.113.7' }]);
      // The rule itself: what the old script produced is refused, as drachtio-server refuses it.
      expect(() => drachtioContacts(['--file', '/etc/drachtio.conf.xml', '--external-ip', '203.0.113.7'])).toThrow(/must follow a 'contact'/);
      expect(() => drachtioContacts(['--contact', 'sip:*', '--external-ip', '1.1.1.1', '--external-ip', '2.2.2.2'])).toThrow(/multiple/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const missing = runStartScript('drachtio/start.sh', { DRACHTIO_SECRET: 'x', DRACHTIO_TLS_DIR: '/nonexistent' });
    expect(missing.status).toBe(66);
    expect(missing.stderr).toContain('/nonexistent/cert.pem');
    expect(runStartScript('drachtio/start.sh', { DRACHTIO_SECRET: 'x', SIP_TLS: 'yes' }).status).toBe(64);
    expect(runStartScript('drachtio/start.sh', {}).status).not.toBe(0);
    // No contact in the XML: command-line contacts replace the file's, so one place says them.
    expect(stripComments(drachtioConf)).not.toMatch(/<contact>/);
    expect(drachtioStart).not.toMatch(/latest/);
  });

  it('SIP over TLS: the certificate and key come from the mounted directory drachtio.conf.xml names; TLS 1.2 minimum; on by default', () => {
    const conf = stripComments(drachtioConf);
    const tls = /<tls>([\s\S]*?)<\/tls>/.exec(conf)?.[1] ?? '';
    const mount = (services.drachtio?.volumes ?? []).map((v) => interpolate(v, dotenv).split(':')).find((v) => v[1] === '/etc/drachtio/tls');
    expect(mount?.[2]).toBe('ro');
    expect(mount?.[0]).toBe(dotenv.SIP_TLS_DIR);
    expect(/<key-file>([^<]+)<\/key-file>/.exec(tls)?.[1]).toBe('/etc/drachtio/tls/key.pem');
    expect(/<cert-file>([^<]+)<\/cert-file>/.exec(tls)?.[1]).toBe('/etc/drachtio/tls/cert.pem');
    expect(/<min-tls-version>([^<]+)<\/min-tls-version>/.exec(tls)?.[1]).toBe('1.2');
    expect(drachtioStart).toContain('DRACHTIO_TLS_DIR:-/etc/drachtio/tls');
    expect(resolvedEnv(services.drachtio as Service, dotenv).SIP_TLS).toBe('on');
    expect(resolvedEnv(services.drachtio as Service, { DRACHTIO_SECRET: 'x' }).SIP_TLS).toBe('on');
    // Keys never committed.
    expect(readFileSync(join(DOCKER, 'tls', '.gitignore'), 'utf8')).toMatch(/^\*\.pem$/m);
  });

  it('SRTP: FreeSWITCH and pay-ivr get the same policy; FreeSWITCH sets rtp_secure_media_inbound before the answer', () => {
    const fsEnv = resolvedEnv(services.freeswitch as Service, dotenv);
    expect(fsEnv.SRTP).toBe('required');
    expect(payEnv.PAYIVR_SRTP).toBe(fsEnv.SRTP);
    expect(config.rtp.srtp).toBe('required');
    // Unset in .env: both still default to the same value.
    expect(resolvedEnv(services.freeswitch as Service, { FREESWITCH_SECRET: 'y' }).SRTP).toBe(resolvedEnv(payIvr, { DRACHTIO_SECRET: 'x', FREESWITCH_SECRET: 'y' }).PAYIVR_SRTP);
    const body = stripComments(dialplan);
    // The suites are pay-ivr's rtp.srtpSuites, on the INVITE pay-ivr sends FreeSWITCH (drachtio/media-settings.ts).
    const secure = body.indexOf('application="set" data="rtp_secure_media_inbound=@SRTP_MODE@:${sip_h_X-Payivr-Srtp-Suites}"');
    expect(body.indexOf('application="set" data="media_timeout=${sip_h_X-Payivr-Media-Timeout}"')).toBeGreaterThan(0);
    const main = body.indexOf('<extension name="drachtio-fsmrf">');
    const mainAnswer = body.indexOf('application="answer"', main);
    expect(main).toBeGreaterThan(0);
    expect(body.indexOf('application="set" data="media_timeout=', main)).toBeLessThan(mainAnswer);
    expect(secure).toBeGreaterThan(main);
    expect(secure).toBeLessThan(mainAnswer);
    // A late offer pay-ivr marks plain: FreeSWITCH offers RTP only, same settings before its answer.
    const late = body.indexOf('<extension name="drachtio-fsmrf-plain-late-offer">');
    const lateAnswer = body.indexOf('application="answer"', late);
    expect(late).toBeGreaterThan(0);
    expect(body.indexOf('condition field="${sip_h_X-Payivr-Late-Offer}" expression="^plain$"', late)).toBeGreaterThan(late);
    expect(body.indexOf('application="set" data="rtp_secure_media_inbound=forbidden"', late)).toBeLessThan(lateAnswer);
    expect(body.indexOf('application="set" data="media_timeout=${sip_h_X-Payivr-Media-Timeout}"', late)).toBeLessThan(lateAnswer);
    expect(param(profile, 'enable-3pcc')).toBe('proxy'); // the dialplan runs before FreeSWITCH makes a late offer
    expect(param(profile, 'inbound-late-negotiation')).toBe('true'); // the dialplan's setting applies to the answer
    const tmp = mkdtempSync(join(tmpdir(), 'payivr-fs-srtp-'));
    try {
      for (const d of ['autoload_configs', 'sip_profiles', 'dialplan']) mkdirSync(join(tmp, d), { recursive: true });
      for (const [srtp, mode] of [['required', 'mandatory'], ['optional', 'optional'], ['off', 'forbidden']] as const) {
        expect(runStartScript('freeswitch/start.sh', { FREESWITCH_SECRET: 'S3cret', SRTP: srtp }, tmp).status).toBe(0);
        expect(readFileSync(join(tmp, 'dialplan', 'mrf.xml'), 'utf8')).toContain(`rtp_secure_media_inbound=${mode}:\${sip_h_X-Payivr-Srtp-Suites}`);
        // pay-ivr reads the same word.
        expect(loadConfig(configPath, { ...payEnv, PAYIVR_SRTP: srtp }).rtp.srtp).toBe(srtp);
      }
      expect(runStartScript('freeswitch/start.sh', { FREESWITCH_SECRET: 'S3cret' }, tmp).status).toBe(0);
      expect(readFileSync(join(tmp, 'dialplan', 'mrf.xml'), 'utf8')).toContain('rtp_secure_media_inbound=mandatory:');
      expect(runStartScript('freeswitch/start.sh', { FREESWITCH_SECRET: 'S3cret', SRTP: 'yes' }, tmp).status).toBe(64);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('every image is pinned to a concrete version: no latest, no floating major/minor tag, no image from a variable', () => {
    const images = Object.values(services).flatMap((s) => (s.image !== undefined && s.build === undefined ? [s.image] : []));
    const froms = [...readFileSync(join(DOCKER, 'Dockerfile'), 'utf8').matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1] as string);
    expect(images.length).toBe(Object.values(services).filter((s) => s.build === undefined).length);
    expect(images.length).toBeGreaterThanOrEqual(3);
    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const ref of [...images, ...froms]) {
      expect(ref, ref).not.toContain('$');
      const tag = /:([^:@/]+)(?:@sha256:[0-9a-f]{64})?$/.exec(ref)?.[1] ?? '';
      expect(tag, ref).not.toMatch(/latest|^(\d+|\d+\.\d+)(-|$)|^[a-z-]+$/);
      expect(tag, ref).toMatch(/^v?\d+\.\d+\.\d+/);
    }
  });

  it('the fleet overlay: two FreeSWITCH and two app nodes on one host, every node lists both media servers, no port used twice', () => {
    type Overlay = { services: Record<string, Service & { extends?: { file: string; service: string }; stop_grace_period?: string }> };
    const overlay = parseYaml(read('docker-compose.fleet.yml')) as Overlay;
    const fs2 = overlay.services['freeswitch-2'];
    const app2 = overlay.services['pay-ivr-2'];
    expect(fs2?.extends).toEqual({ file: 'docker-compose.yml', service: 'freeswitch' });
    expect(app2?.extends).toEqual({ file: 'docker-compose.yml', service: 'pay-ivr' });
    // What compose runs: the base service with the overlay's environment and mounts on top.
    const fs2Env = { ...resolvedEnv(services.freeswitch as Service, dotenv), ...resolvedEnv(fs2 as Service, dotenv) };
    const fs1Env = resolvedEnv(services.freeswitch as Service, dotenv);
    const nodes = [
      { env: { ...payEnv, ...resolvedEnv(overlay.services['pay-ivr'] as Service, dotenv) }, file: mountSource(overlay.services['pay-ivr'] as Service, '/etc/pay-ivr/pay-ivr.yaml') },
      { env: { ...payEnv, ...resolvedEnv(app2 as Service, dotenv) }, file: mountSource(app2 as Service, '/etc/pay-ivr/pay-ivr.yaml') },
    ].map((n) => loadConfig(join(DOCKER, n.file ?? 'missing'), n.env));

    // Each FreeSWITCH as its start script writes it: event socket and drachtio_mrf SIP ports.
    const started = [fs1Env, fs2Env].map((env) => {
      const conf = mkdtempSync(join(tmpdir(), 'payivr-fs-fleet-'));
      try {
        for (const d of ['autoload_configs', 'sip_profiles', 'dialplan']) mkdirSync(join(conf, d), { recursive: true });
        const r = runStartScript('freeswitch/start.sh', { ...env, FREESWITCH_SECRET: 'S3cret' }, conf);
        expect(r.status, r.stderr).toBe(0);
        return {
          esl: Number(param(readFileSync(join(conf, 'autoload_configs', 'event_socket.conf.xml'), 'utf8'), 'listen-port')),
          sip: Number(param(readFileSync(join(conf, 'sip_profiles', 'drachtio_mrf.xml'), 'utf8'), 'sip-port')),
          rtp: [Number(env.RTP_PORT_MIN), Number(env.RTP_PORT_MAX)] as const,
        };
      } finally {
        rmSync(conf, { recursive: true, force: true });
      }
    });
    expect(started.map((f) => [f.esl, f.sip])).toEqual([[8021, 5080], [8022, 5082]]);
    const ranges = started.map((f) => f.rtp);
    expect((ranges[0]?.[1] ?? 0) < (ranges[1]?.[0] ?? 0)).toBe(true);

    const hostPorts: number[] = [5060, 5061, 9022, 6379, ...started.flatMap((f) => [f.esl, f.sip])];
    for (const c of nodes) {
      expect(c.telephony.backend).toBe('drachtio');
      const servers = [c.telephony.freeswitch, ...c.telephony.freeswitchPool];
      // Both media servers, by their event sockets.
      expect(servers.map((x) => x.port).sort()).toEqual(started.map((f) => f.esl).sort());
      hostPorts.push(c.admin.port, ...servers.map((x) => x.listenPort));
      expect(c.store.type).toBe('redis');
    }
    expect(nodes.map((c) => c.admin.port)).toEqual([8080, 8081]);
    expect(new Set(hostPorts).size).toBe(hostPorts.length);
    for (const p of hostPorts) for (const [lo, hi] of ranges) expect(p < lo || p > hi).toBe(true);
    // SIGTERM drains: compose must wait at least drain.maxMs before it kills.
    for (const [i, svc] of [overlay.services['pay-ivr'], app2].entries()) {
      expect(Number(/^(\d+)s$/.exec(svc?.stop_grace_period ?? '')?.[1]) * 1000).toBeGreaterThan(nodes[i]?.drain.maxMs ?? Infinity);
    }
  });
});
