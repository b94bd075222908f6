import { readFileSync } from 'node:fs';
import { PayIvrError } from '../errors.js';

interface SecretSource {
  /** Environment variable holding the secret. */
  env?: string | undefined;
  /** File holding the secret (Docker/Kubernetes secrets); wins over the variable when set. */
  file?: string | undefined;
  /** Config path shown in errors, e.g. "profiles.default.psp". */
  configPath: string;
  /** What the secret is, for the error message ("Stripe secret key"). */
  what: string;
}

/**
 * Reads an API key from a secrets file or an environment variable. The value is returned to the
 * adapter that sends it and never logged; errors name the variable or file, never the value.
 */
export function loadSecret(src: SecretSource, env: NodeJS.ProcessEnv = process.env): string {
  if (src.file) {
    let text: string;
    try {
      text = readFileSync(src.file, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'read error';
      throw new PayIvrError('ERR_PSP_CONFIG', `${src.what}: cannot read ${src.configPath}.apiKeyFile (${src.file}): ${code}`);
    }
    const v = text.trim();
    if (v === '') throw new PayIvrError('ERR_PSP_CONFIG', `${src.what}: ${src.configPath}.apiKeyFile (${src.file}) is empty`);
    return v;
  }
  const v = src.env ? env[src.env]?.trim() : undefined;
  if (!v) {
    throw new PayIvrError(
      'ERR_PSP_CONFIG',
      `${src.what} missing: set the environment variable ${src.env ?? '(none configured)'} or ${src.configPath}.apiKeyFile`,
    );
  }
  return v;
}
