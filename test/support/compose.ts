/**
 * Reading the docker/ compose files without a Docker engine: the `.env` format, compose's
 * variable interpolation, a service's environment and its mounts, as compose resolves them.
 */

export interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile?: string };
  network_mode?: string;
  entrypoint?: string[];
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: unknown;
  read_only?: boolean;
  cap_drop?: string[];
  security_opt?: string[];
  ulimits?: Record<string, unknown>;
  depends_on?: string[];
  stop_grace_period?: string;
}

/** `NAME=value` lines of a compose `.env` file. */
export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
    if (m?.[1] !== undefined) out[m[1]] = (m[2] ?? '').trim();
  }
  return out;
}

/** Compose variable interpolation: ${X}, ${X:-default}, ${X-default}, ${X:?error}, ${X?error}, $$. */
export function interpolate(value: string, env: Record<string, string>): string {
  return value.replace(/\$\$|\$\{([A-Z_][A-Z0-9_]*)(?:(:?)([-?])([^}]*))?\}/g, (all, name: string | undefined, colon: string, op: string, arg: string) => {
    if (all === '$$') return '$';
    const v = env[name as string];
    const unset = v === undefined || (colon === ':' && v === '');
    if (op === '-') return unset ? arg : (v as string);
    if (op === '?') {
      if (unset) throw new Error(`compose would refuse to start: ${name} ${arg}`);
      return v as string;
    }
    return v ?? '';
  });
}

/** The service's environment with every variable interpolated. */
export function resolvedEnv(service: ComposeService, env: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(service.environment ?? {}).map(([k, v]) => [k, interpolate(String(v), env)]));
}

/** Host path (relative to docker/) of the volume mounted at `target`. */
export function mountSource(service: ComposeService, target: string, env: Record<string, string>): string | undefined {
  for (const v of service.volumes ?? []) {
    const [src, dst] = interpolate(v, env).split(':');
    if (dst === target && src !== undefined) return src;
  }
  return undefined;
}

/** Every variable a compose file references. */
export function referencedVariables(text: string): Set<string> {
  return new Set([...text.matchAll(/\$\{([A-Z_][A-Z0-9_]*)/g)].map((m) => m[1] as string));
}
