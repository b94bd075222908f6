import { describe, it, expect } from 'vitest';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { execFileSync, spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../src/config/load.js';
import type { Config } from '../src/config/schema.js';
import { DTMF_SECURITY_MODES } from '../src/config/edge-schema.js';
import { interpolate, mountSource, parseEnvFile, referencedVariables, resolvedEnv, type ComposeService } from './support/compose.js';
import { cliArgs } from './support/dist.js';

/**
 * The edge role's docker stack (docker/docker-compose.edge.yml) checked without a Docker engine:
 * the rtpengine service's start script is run with a stand-in binary that records its arguments,
 * so the flags rtpengine would get are the ones checked (userspace, log level, no DTMF log
 * facility, its sockets where the edge configuration looks for them); the shipped edge
 * configuration must pass check-config with the compose environment; ports must not collide.
 */

const DOCKER = resolve(__dirname, '..', 'docker');
const read = (p: string): string => readFileSync(join(DOCKER, p), 'utf8');

const composeText = read('docker-compose.edge.yml');
const compose = parseYaml(composeText) as { name?: string; services: Record<string, ComposeService>; volumes?: Record<string, unknown> };
const services = compose.services;
const rtpengineSvc = services.rtpengine as ComposeService;
const edgeSvc = services['pay-ivr-edge'] as ComposeService;

/** docker/.env.example as an operator fills it in for the edge stack. */
const dotenv: Record<string, string> = { ...parseEnvFile(read('.env.example')), EDGE_MEDIA_ADDRESS: '192.0.2.10', EDGE_CONFIG_FILE: './edge.pay-ivr.yaml' };
const edgeEnv = resolvedEnv(edgeSvc, dotenv);
const rtpEnv = resolvedEnv(rtpengineSvc, dotenv);
const configFile = mountSource(edgeSvc, edgeEnv.PAYIVR_CONFIG as string, dotenv) ?? 'missing';
const config: Config = loadConfig(join(DOCKER, configFile), edgeEnv);

/** Runs docker/rtpengine/start.sh with `rtpengine` replaced by a script that writes its arguments, one per line. */
function runStart(env: Record<string, string>, args: string[] = []): { status: number | null; stderr: string; argv: string[] } {
  const tmp = mkdtempSync(join(tmpdir(), 'payivr-rtpengine-start-'));
  try {
    const out = join(tmp, 'args');
    writeFileSync(join(tmp, 'rtpengine'), `#!/bin/sh\nprintf '%s\\n' "$@" > ${out}\n`);
    chmodSync(join(tmp, 'rtpengine'), 0o755);
    const r = spawnSync('sh', [join(DOCKER, 'rtpengine', 'start.sh'), ...args], { env: { PATH: `${tmp}:/usr/bin:/bin`, ...env }, encoding: 'utf8' });
    const argv = existsSync(out) ? readFileSync(out, 'utf8').split('\n').slice(0, -1) : [];
    return { status: r.status, stderr: r.stderr, argv };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** The value of `--name=value` in an argument list. */
function flag(argv: readonly string[], name: string): string | undefined {
  const a = argv.find((x) => x.startsWith(`--${name}=`));
  return a === undefined ? undefined : a.slice(name.length + 3);
}

const started = runStart(rtpEnv);

describe('edge stack (docker-compose.edge.yml)', () => {
  it('runs rtpengine (built from Debian), Redis and pay-ivr in the edge role, on host networking without port proxies', () => {
    expect(Object.keys(services).sort()).toEqual(['pay-ivr-edge', 'redis', 'rtpengine']);
    expect(compose.name).toBe('pay-ivr-edge');
    expect(rtpengineSvc.build?.context).toBe('./rtpengine');
    expect(edgeSvc.build).toEqual({ context: '..', dockerfile: 'docker/Dockerfile' });
    for (const s of Object.values(services)) {
      expect(s.network_mode).toBe('host');
      expect(s.ports).toBeUndefined();
    }
    expect(edgeSvc.depends_on?.sort()).toEqual(['redis', 'rtpengine']);
    for (const s of [rtpengineSvc, edgeSvc]) {
      expect(s.read_only).toBe(true);
      expect(s.cap_drop).toEqual(['ALL']);
      expect(s.security_opt).toContain('no-new-privileges:true');
      expect(s.ulimits?.core).toBe(0);
    }
    // SIGTERM drains: compose must wait longer than drain.maxMs before it kills.
    expect(Number(/^(\d+)s$/.exec(edgeSvc.stop_grace_period ?? '')?.[1]) * 1000).toBeGreaterThan(config.drain.maxMs);
  });

  it('the rtpengine image: Debian rtpengine-daemon 10.5 without the recording tools, pinned base, not root', () => {
    const dockerfile = read('rtpengine/Dockerfile');
    const from = [...dockerfile.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1] as string);
    expect(from).toHaveLength(1);
    expect(from[0]).toMatch(/^debian:\d+\.\d+(-slim)?(@sha256:[0-9a-f]{64})?$/);
    expect(dockerfile).toMatch(/apt-get install -y --no-install-recommends 'rtpengine-daemon=10\.5\.\*'/);
    expect(dockerfile).not.toMatch(/rtpengine-recording|rtpengine-kernel|dkms/);
    expect(/^USER\s+(\S+)/m.exec(dockerfile)?.[1]).toBe('rtpengine');
    expect(dockerfile).toMatch(/^ENTRYPOINT \["\/bin\/sh", "\/usr\/local\/bin\/rtpengine-start"\]$/m);
    expect(dockerfile).toMatch(/^COPY start\.sh \/usr\/local\/bin\/rtpengine-start$/m);
    expect(rtpengineSvc.entrypoint).toBeUndefined();
    expect(rtpengineSvc.command).toBeUndefined();
    expect(interpolate(services.redis?.image ?? '', dotenv)).toMatch(/^redis:\d+\.\d+\.\d+/);
  });

  it('rtpengine runs in userspace, logs at level 6 at most, never logs keys, and reaches pay-ivr where the edge configuration says', () => {
    expect(started.status, started.stderr).toBe(0);
    const argv = started.argv;
    expect(argv).toContain('--table=-1');
    expect(argv).toContain('--config-file=none');
    expect(argv).toContain('--foreground');
    expect(Number(flag(argv, 'log-level'))).toBeLessThanOrEqual(6);
    for (const a of argv) expect(a).not.toMatch(/log-facility-dtmf|dtmf-log-ng-tcp|recording|homer|log-level-\w+=7|dtmf-no-suppress/);
    const r = config.edge.rtpengine;
    expect(r).toBeDefined();
    expect(flag(argv, 'listen-ng')).toBe(`${r?.host}:${r?.port}`);
    expect(flag(argv, 'dtmf-log-dest')).toBe(`${r?.dtmfLogAddress}:${r?.dtmfLogPort}`);
    // The key events carry card digits: they stay on the host.
    expect(r?.host).toBe('127.0.0.1');
    expect(r?.dtmfLogAddress).toBe('127.0.0.1');
    expect(flag(argv, 'listen-cli')).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(flag(argv, 'interface')).toBe('192.0.2.10');
    expect(flag(argv, 'port-min')).toBe(dotenv.EDGE_RTP_PORT_MIN);
    expect(flag(argv, 'port-max')).toBe(dotenv.EDGE_RTP_PORT_MAX);
    // Behind NAT the public address is advertised in the SDP.
    expect(flag(runStart({ ...rtpEnv, PUBLIC_IP: '203.0.113.7' }).argv, 'interface')).toBe('192.0.2.10!203.0.113.7');
  });

  it('the rtpengine start script refuses a key-logging level, arguments, and missing or malformed addresses and ports', () => {
    const refused = (env: Record<string, string>, args: string[] = []): string => {
      const r = runStart(env, args);
      expect(r.status, JSON.stringify(env)).toBe(64);
      expect(r.argv).toEqual([]);
      return r.stderr;
    };
    expect(refused({ ...rtpEnv, RTPENGINE_LOG_LEVEL: '7' })).toMatch(/0-6/);
    expect(refused({ ...rtpEnv, RTPENGINE_LOG_LEVEL: '6 --log-facility-dtmf=local0' })).toMatch(/0-6/);
    expect(refused(rtpEnv, ['--log-facility-dtmf=local0'])).toMatch(/takes no arguments/);
    expect(refused({ ...rtpEnv, RTPENGINE_ADDRESS: '' })).toMatch(/RTPENGINE_ADDRESS/);
    expect(refused({ ...rtpEnv, RTPENGINE_ADDRESS: 'host.example' })).toMatch(/RTPENGINE_ADDRESS/);
    expect(refused({ ...rtpEnv, PUBLIC_IP: '1.2.3.4 --log-level=7' })).toMatch(/PUBLIC_IP/);
    expect(refused({ ...rtpEnv, RTPENGINE_PORT_MIN: '40000', RTPENGINE_PORT_MAX: '30000' })).toMatch(/below/);
    expect(refused({ ...rtpEnv, RTPENGINE_PORT_MAX: '70000' })).toMatch(/RTPENGINE_PORT_MAX/);
    expect(refused({ ...rtpEnv, RTPENGINE_DTMF_DEST: '127.0.0.1:x' })).toMatch(/address:port/);
    // The compose file cannot start rtpengine without a media address.
    expect(() => resolvedEnv(rtpengineSvc, { ...dotenv, EDGE_MEDIA_ADDRESS: '' })).toThrow(/EDGE_MEDIA_ADDRESS/);
  });

  it('the shipped edge configuration passes check-config, in the edge role with Agent Assist on a safe key replacement', () => {
    const out = execFileSync(process.execPath, cliArgs('check-config', join(DOCKER, 'edge.pay-ivr.yaml')), { encoding: 'utf8' });
    expect(out).toMatch(/edge\.pay-ivr\.yaml: ok/);
    expect(configFile).toBe('./edge.pay-ivr.yaml');
    expect(config.edge.enabled).toBe(true);
    expect(config.telephony.backend).toBe('embedded');
    expect(config.edge.genesys).toBeDefined();
    const assist = config.edge.assist;
    expect(assist).toBeDefined();
    expect(DTMF_SECURITY_MODES).toContain(assist?.dtmfSecurity);
    expect(config.edge.rtpengine?.delayBufferMs).toBeGreaterThanOrEqual(100);
    expect(config.log.level).not.toMatch(/debug|trace/);
    expect(config.store.type).toBe('redis');
    expect(config.admin.host).toBe('127.0.0.1');
    // rtpengine plays the prompts itself: the packs are mounted where the configuration says.
    expect(mountSource(rtpengineSvc, assist?.prompts?.dir ?? 'none', dotenv)).toBe('../prompts');
    for (const f of ['enter-card-number', 'enter-expiry', 'enter-security-code-3', 'enter-security-code-4']) {
      expect(existsSync(resolve(DOCKER, '..', 'prompts', assist?.prompts?.language ?? 'none', `${f}.wav`)), f).toBe(true);
    }
  });

  it('secrets: the assist keys live in the operator\'s copy, which compose insists on; the rest comes from docker/.env', () => {
    const shipped = parseEnvFile(read('.env.example'));
    expect(shipped.EDGE_CONFIG_FILE).toBe('');
    expect(() => resolvedEnv(edgeSvc, shipped)).not.toThrow();
    expect(() => mountSource(edgeSvc, '/etc/pay-ivr/pay-ivr.yaml', shipped)).toThrow(/EDGE_CONFIG_FILE/);
    // The shipped keys say they must be changed; local copies are not committed.
    for (const k of [...(config.edge.assist?.apiKeys ?? []), config.edge.assist?.tokenSecret ?? '']) expect(k).toMatch(/^change-me/);
    expect(read('.gitignore')).toMatch(/^\*\.local\.yaml$/m);
    for (const [k, v] of Object.entries(edgeSvc.environment ?? {})) {
      if (/SECRET|TOKEN|API_KEY/.test(k)) expect(String(v), k).toMatch(/^\$\{[A-Z_]+:?[-?][^}]*\}$/);
    }
    for (const name of referencedVariables(composeText)) expect(Object.keys(shipped), `${name} missing from .env.example`).toContain(name);
  });

  it('every port of the stack is distinct and outside rtpengine\'s media range', () => {
    const argv = started.argv;
    const portOf = (endpoint: string | undefined): number => Number(/:(\d+)$/.exec(endpoint ?? '')?.[1]);
    const redis = services.redis?.command ?? [];
    const sipPorts = [...new Set(config.sip.listen.map((l) => l.port))];
    const ports = {
      sip: sipPorts,
      admin: [config.admin.port],
      redis: [Number(redis[redis.indexOf('--port') + 1])],
      'rtpengine ng': [portOf(flag(argv, 'listen-ng'))],
      'rtpengine DTMF events': [portOf(flag(argv, 'dtmf-log-dest'))],
      'rtpengine CLI': [portOf(flag(argv, 'listen-cli'))],
    };
    expect(ports).toEqual({ sip: [5060], admin: [8080], redis: [6379], 'rtpengine ng': [22222], 'rtpengine DTMF events': [22223], 'rtpengine CLI': [22224] });
    const all = Object.values(ports).flat();
    expect(new Set(all).size).toBe(all.length);
    const min = Number(flag(argv, 'port-min'));
    const max = Number(flag(argv, 'port-max'));
    expect(min).toBeLessThan(max);
    for (const p of all) expect(p < min || p > max, String(p)).toBe(true);
    expect(config.store.redisUrl).toBe(`redis://127.0.0.1:${ports.redis[0]}`);
    expect(edgeEnv.PAYIVR_ADMIN_PORT).toBe(String(config.admin.port));
  });
});
