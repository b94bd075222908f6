import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

/**
 * Self time per function of a V8 .cpuprofile (what `node --cpu-prof` or the inspector's
 * Profiler.stop writes): each sample is charged to the node it landed in, with its time delta.
 */

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface SelfTimeRow {
  name: string;
  where: string;
  selfMs: number;
  /** Percent of non-idle sampled time. */
  percent: number;
}

export interface ProfileSummary {
  sampledMs: number;
  idleMs: number;
  busyMs: number;
  functions: SelfTimeRow[];
  files: SelfTimeRow[];
}

function where(cf: CallFrame, root: string): string {
  if (cf.url === '') return '(native)';
  let u = cf.url.replace(/^file:\/\//, '');
  if (u.startsWith('/')) u = relative(root, u);
  // tsx-compiled sources report line 0 for everything: a line is only shown when it means something.
  return cf.lineNumber > 0 ? `${u}:${cf.lineNumber + 1}` : u;
}

function fileOf(cf: CallFrame, root: string): string {
  if (cf.url === '') return cf.functionName.startsWith('(') ? cf.functionName : '(native)';
  const u = cf.url.replace(/^file:\/\//, '');
  if (u.startsWith('node:')) return u;
  const rel = relative(root, u);
  return rel.startsWith('node_modules/') ? rel.split('/').slice(0, rel.split('/')[1]?.startsWith('@') ? 3 : 2).join('/') : rel;
}

export function summariseProfile(file: string, root: string, top = 25): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  for (const n of p.nodes) byId.set(n.id, n);
  const fn = new Map<string, { name: string; where: string; us: number }>();
  const files = new Map<string, number>();
  let idleUs = 0;
  let totalUs = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const node = byId.get(p.samples[i] as number);
    // V8 charges a sample's delta to the next sample; the skew is one interval, fine for a summary.
    const dt = p.timeDeltas[i + 1] ?? 0;
    if (node === undefined) continue;
    totalUs += dt;
    const cf = node.callFrame;
    if (cf.functionName === '(idle)') {
      idleUs += dt;
      continue;
    }
    const name = cf.functionName === '' ? '(anonymous)' : cf.functionName;
    const w = where(cf, root);
    const key = `${name}@${w}`;
    const row = fn.get(key) ?? { name, where: w, us: 0 };
    row.us += dt;
    fn.set(key, row);
    const f = fileOf(cf, root);
    files.set(f, (files.get(f) ?? 0) + dt);
  }
  const busyUs = Math.max(1, totalUs - idleUs);
  const rows = [...fn.values()].sort((a, b) => b.us - a.us).slice(0, top);
  return {
    sampledMs: totalUs / 1000,
    idleMs: idleUs / 1000,
    busyMs: busyUs / 1000,
    functions: rows.map((r) => ({ name: r.name, where: r.where, selfMs: r.us / 1000, percent: (100 * r.us) / busyUs })),
    files: [...files.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([f, us]) => ({ name: f, where: '', selfMs: us / 1000, percent: (100 * us) / busyUs })),
  };
}

export function formatProfile(s: ProfileSummary): string {
  const lines = [`sampled ${s.sampledMs.toFixed(0)} ms, idle ${s.idleMs.toFixed(0)} ms, busy ${s.busyMs.toFixed(0)} ms`, '', 'top self time (percent of busy time):'];
  for (const r of s.functions) lines.push(`  ${r.percent.toFixed(1).padStart(5)} %  ${r.selfMs.toFixed(0).padStart(7)} ms  ${r.name}  ${r.where}`);
  lines.push('', 'by file:');
  for (const r of s.files) lines.push(`  ${r.percent.toFixed(1).padStart(5)} %  ${r.selfMs.toFixed(0).padStart(7)} ms  ${r.name}`);
  return lines.join('\n');
}
