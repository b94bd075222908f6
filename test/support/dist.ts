import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Child processes run the built program (dist/), as an operator does: no TypeScript loader to
 * start in every child, and the test checks what ships. The suite's global setup builds dist/
 * first when src/ is newer (test/setup/build.ts).
 */

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** The built file for `src/<rel>.ts`, e.g. distEntry('cli') or distEntry('psp/sandbox/main'). */
export function distEntry(rel: string): string {
  const f = join(ROOT, 'dist', `${rel}.js`);
  if (!existsSync(f)) throw new Error(`${f} is missing: run \`npm run build\` first (the README test command does)`);
  return f;
}

/** Node arguments that run the pay-ivr command line with `args`. */
export function cliArgs(...args: string[]): string[] {
  return [distEntry('cli'), ...args];
}
