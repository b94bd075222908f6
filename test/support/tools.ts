import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/**
 * The real peers the tests, benches and scripts run, and the Debian package that brings each.
 * A missing one is named in one line with the package to install, instead of a `spawn ENOENT`
 * stack trace. scripts/test-all.sh installs them all.
 */
export const TOOL_PACKAGES = {
  sipp: 'sip-tester',
  baresip: 'baresip-core',
  'redis-server': 'redis-server',
  kamailio: 'kamailio',
  chromium: 'chromium',
  rtpengine: 'rtpengine-daemon',
  tshark: 'tshark',
  sox: 'sox',
  'espeak-ng': 'espeak-ng',
  openssl: 'openssl',
} as const;

export type Tool = keyof typeof TOOL_PACKAGES;

export class MissingToolError extends Error {
  constructor(readonly tool: Tool) {
    super(`${tool} is not installed: apt-get install ${TOOL_PACKAGES[tool]} (Debian package ${TOOL_PACKAGES[tool]}; scripts/test-all.sh installs every test peer)`);
    this.name = 'MissingToolError';
  }
}

/** The tool's path on PATH, or undefined. */
export function findTool(tool: Tool, path = process.env.PATH ?? ''): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (dir === '') continue;
    const f = join(dir, tool);
    try {
      accessSync(f, constants.X_OK);
      return f;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/** The tool's path; throws MissingToolError (one line naming the package) when it is not installed. */
export function requireTool(tool: Tool): string {
  const f = findTool(tool);
  if (f === undefined) throw new MissingToolError(tool);
  return f;
}

/**
 * For command-line entry points (scripts, benches): runs `main`, and turns a missing tool into
 * its one line on stderr and exit code 1.
 */
export async function runWithTools(main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (e) {
    if (e instanceof MissingToolError) {
      process.stderr.write(`${e.message}\n`);
      process.exit(1);
    }
    throw e;
  }
}
