/**
 * Per-file wall times of two vitest runs side by side, as a Markdown table (docs/test-suite.md).
 * Each side is one or more of vitest's JSON reports, comma-separated (`npm test` writes one per
 * project to test-output/lanes/: unit.json, e2e-a.json, e2e-b.json, run side by side):
 *
 *   tsx scripts/suite-times.ts before.json test-output/lanes/unit.json,test-output/lanes/e2e-a.json,test-output/lanes/e2e-b.json
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

interface Report {
  startTime: number;
  numTotalTests: number;
  testResults: { name: string; startTime: number; endTime: number; assertionResults: unknown[] }[];
}

function load(list: string): { files: Map<string, { s: number; tests: number }>; tests: number; wall: number } {
  const files = new Map<string, { s: number; tests: number }>();
  let start = Infinity;
  let end = 0;
  let tests = 0;
  for (const file of list.split(',')) {
    const r = JSON.parse(readFileSync(file, 'utf8')) as Report;
    start = Math.min(start, r.startTime);
    tests += r.numTotalTests;
    for (const t of r.testResults) {
      // Reports name files by absolute path: keep the part from test/ on, whatever the checkout.
      const name = t.name.slice(t.name.lastIndexOf('/test/') + 1) || relative(process.cwd(), t.name);
      files.set(name, { s: (t.endTime - t.startTime) / 1000, tests: t.assertionResults.length });
      end = Math.max(end, t.endTime);
    }
  }
  return { files, tests, wall: (end - start) / 1000 };
}

const [beforeFile, afterFile] = process.argv.slice(2);
if (beforeFile === undefined || afterFile === undefined) {
  process.stderr.write('usage: tsx scripts/suite-times.ts before.json after.json\n');
  process.exit(2);
}
const before = load(beforeFile);
const after = load(afterFile);
const names = [...new Set([...before.files.keys(), ...after.files.keys()])].sort((a, b) => (before.files.get(b)?.s ?? 0) - (before.files.get(a)?.s ?? 0));
const f = (x: number | undefined): string => (x === undefined ? '–' : x.toFixed(1));
const lines = ['| file | tests | before (s) | after (s) |', '| --- | ---: | ---: | ---: |'];
for (const n of names) lines.push(`| ${n} | ${after.files.get(n)?.tests ?? before.files.get(n)?.tests ?? 0} | ${f(before.files.get(n)?.s)} | ${f(after.files.get(n)?.s)} |`);
const sum = (m: Map<string, { s: number }>): number => [...m.values()].reduce((a, v) => a + v.s, 0);
lines.push(`| **all files (sum)** | ${after.tests} | ${f(sum(before.files))} | ${f(sum(after.files))} |`);
lines.push(`| **vitest wall time** | | ${f(before.wall)} | ${f(after.wall)} |`);
process.stdout.write(`${lines.join('\n')}\n`);
