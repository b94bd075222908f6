import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { configSchema, type Config } from './schema.js';
import { PayIvrError } from '../errors.js';

/** A setter from an environment variable into the raw (pre-validation) config object. */
interface EnvOverride {
  env: string;
  path: readonly string[];
  kind: 'string' | 'int';
}

/** Environment overrides, applied before validation so a bad value is reported with its path. */
const ENV_OVERRIDES: readonly EnvOverride[] = [
  { env: 'PAYIVR_BACKEND', path: ['telephony', 'backend'], kind: 'string' },
  { env: 'DRACHTIO_HOST', path: ['telephony', 'drachtio', 'host'], kind: 'string' },
  { env: 'DRACHTIO_PORT', path: ['telephony', 'drachtio', 'port'], kind: 'int' },
  { env: 'DRACHTIO_SECRET', path: ['telephony', 'drachtio', 'secret'], kind: 'string' },
  { env: 'FREESWITCH_HOST', path: ['telephony', 'freeswitch', 'host'], kind: 'string' },
  { env: 'FREESWITCH_PORT', path: ['telephony', 'freeswitch', 'port'], kind: 'int' },
  { env: 'FREESWITCH_SECRET', path: ['telephony', 'freeswitch', 'secret'], kind: 'string' },
  { env: 'FREESWITCH_PROMPTS_DIR', path: ['telephony', 'freeswitch', 'promptsDir'], kind: 'string' },
  { env: 'PAYIVR_ADMIN_PORT', path: ['admin', 'port'], kind: 'int' },
  { env: 'PAYIVR_ADMIN_HOST', path: ['admin', 'host'], kind: 'string' },
  { env: 'PAYIVR_API_TOKEN', path: ['admin', 'apiToken'], kind: 'string' },
  { env: 'PAYIVR_LOG_LEVEL', path: ['log', 'level'], kind: 'string' },
  { env: 'PAYIVR_STORE', path: ['store', 'type'], kind: 'string' },
  { env: 'REDIS_URL', path: ['store', 'redisUrl'], kind: 'string' },
  { env: 'PAYIVR_RTP_HOST', path: ['rtp', 'host'], kind: 'string' },
  { env: 'PAYIVR_RTP_PORT_MIN', path: ['rtp', 'portMin'], kind: 'int' },
  { env: 'PAYIVR_RTP_PORT_MAX', path: ['rtp', 'portMax'], kind: 'int' },
  { env: 'PAYIVR_PUBLIC_ADDRESS', path: ['sip', 'publicAddress'], kind: 'string' },
  { env: 'PAYIVR_SRTP', path: ['rtp', 'srtp'], kind: 'string' },
  { env: 'PAYIVR_PROMPTS_DIR', path: ['promptsDir'], kind: 'string' },
];

function setPath(obj: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let cur = obj;
  for (const key of path.slice(0, -1)) {
    const next = cur[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) cur[key] = {};
    cur = cur[key] as Record<string, unknown>;
  }
  cur[path[path.length - 1] as string] = value;
}

function applyEnv(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): void {
  for (const o of ENV_OVERRIDES) {
    const v = env[o.env];
    if (v === undefined || v === '') continue;
    setPath(raw, o.path, o.kind === 'int' && /^\d+$/.test(v) ? Number(v) : v);
  }
  // PAYIVR_SIP_PORT / PAYIVR_SIP_HOST: one UDP + TCP listener pair on that address.
  const sipPort = env.PAYIVR_SIP_PORT;
  const sipHost = env.PAYIVR_SIP_HOST;
  if (sipPort || sipHost) {
    const p = sipPort && /^\d+$/.test(sipPort) ? Number(sipPort) : (sipPort ?? 5060);
    const h = sipHost ?? '127.0.0.1';
    setPath(raw, ['sip', 'listen'], [
      { transport: 'udp', host: h, port: p },
      { transport: 'tcp', host: h, port: p },
    ]);
  }
}

/** The prompt packs shipped with pay-ivr (src/config and dist/config are both two levels down). */
export const SHIPPED_PROMPTS_DIR = fileURLToPath(new URL('../../prompts', import.meta.url));

/**
 * A relative prompts directory is looked up in the working directory first; the default one
 * ("prompts") falls back to the packs shipped with pay-ivr, so `pay-ivr serve` works from anywhere.
 */
function withPromptsDir(cfg: Config): Config {
  if (isAbsolute(cfg.promptsDir) || existsSync(cfg.promptsDir) || cfg.promptsDir !== 'prompts') return cfg;
  return { ...cfg, promptsDir: SHIPPED_PROMPTS_DIR };
}

/** Formats zod issues as "path.to.field: why" lines. */
function formatIssues(issues: readonly { path: readonly PropertyKey[]; message: string }[]): string {
  return issues
    .map((i) => `${i.path.length ? i.path.map(String).join('.') : '(root)'}: ${i.message}`)
    .join('\n');
}

/** Validates a raw object (from YAML or code) into a Config; throws ERR_CONFIG_INVALID with field paths. */
export function parseConfig(raw: unknown, env: NodeJS.ProcessEnv = {}): Config {
  const obj: Record<string, unknown> =
    raw === null || raw === undefined ? {} : typeof raw === 'object' && !Array.isArray(raw) ? structuredClone(raw as Record<string, unknown>) : { __invalid: raw };
  if ('__invalid' in obj) throw new PayIvrError('ERR_CONFIG_INVALID', '(root): must be a mapping');
  applyEnv(obj, env);
  const r = configSchema.safeParse(obj);
  if (!r.success) throw new PayIvrError('ERR_CONFIG_INVALID', formatIssues(r.error.issues));
  return withPromptsDir(r.data);
}

/** Loads the config: file from `path` (or PAYIVR_CONFIG), else the built-in defaults; env overrides on top. */
export function loadConfig(path: string | undefined, env: NodeJS.ProcessEnv = process.env): Config {
  const file = path ?? env.PAYIVR_CONFIG;
  let raw: unknown = {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new PayIvrError('ERR_CONFIG_READ', `cannot read config file ${file}: ${(e as Error).message}`);
    }
    try {
      raw = parseYaml(text);
    } catch (e) {
      throw new PayIvrError('ERR_CONFIG_INVALID', `${file}: not valid YAML: ${(e as Error).message}`);
    }
  }
  return parseConfig(raw, env);
}
