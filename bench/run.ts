/**
 * `npm run bench [-- <name> [options]]`: lists the benchmarks under bench/ and runs one (or, with
 * no name, each in turn). Options after the name go to that benchmark; each one prints its own
 * figures.
 *
 *   npm run bench -- --list
 *   npm run bench -- sipp-load --calls 200 --hold 20
 *   npm run bench -- rtp-pacer
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { MissingToolError, requireTool, type Tool } from '../test/support/tools.js';

const DIR = import.meta.dirname;

function benches(): string[] {
  return readdirSync(DIR)
    .filter((f) => f.endsWith('.ts') && f !== 'run.ts')
    .map((f) => f.slice(0, -3))
    .sort();
}

let current: ChildProcess | undefined;
let interrupted = false;
// Ctrl-C reaches the benchmark through the terminal's process group: let it clean up, then stop.
process.on('SIGINT', () => {
  interrupted = true;
});
process.on('SIGTERM', () => {
  interrupted = true;
  current?.kill('SIGTERM');
});

/** The real peers each benchmark drives: a missing one is said in one line before it starts. */
const TOOLS: Record<string, Tool[]> = { 'sipp-load': ['sipp'], 'product-load': ['sipp', 'tshark'], 'edge-relay': ['sipp', 'rtpengine'], 'inband-mix': ['espeak-ng', 'sox'] };

function run(name: string, args: string[]): Promise<number> {
  try {
    for (const t of TOOLS[name] ?? []) requireTool(t);
  } catch (e) {
    if (!(e instanceof MissingToolError)) throw e;
    console.error(`${name}: ${e.message}`);
    return Promise.resolve(1);
  }
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(DIR, `${name}.ts`), ...args], { stdio: 'inherit' });
    current = child;
    child.on('exit', (code, signal) => {
      current = undefined;
      resolve(code ?? (signal !== null ? 130 : 1));
    });
  });
}

async function main(): Promise<number> {
  const [name, ...rest] = process.argv.slice(2);
  const all = benches();
  if (name === '--list' || name === '-l' || name === '--help' || name === '-h') {
    console.log(`benchmarks: ${all.join(', ')}\nusage: npm run bench -- <name> [options]   (no name: run them all)`);
    return 0;
  }
  if (name !== undefined) {
    if (!existsSync(join(DIR, `${name}.ts`)) || name === 'run') {
      console.error(`no benchmark "${name}"; there are: ${all.join(', ')}`);
      return 2;
    }
    return run(name, rest);
  }
  let worst = 0;
  for (const b of all) {
    if (interrupted) return 130;
    console.log(`\n=== ${b} ===`);
    worst = Math.max(worst, await run(b, []));
  }
  return worst;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
