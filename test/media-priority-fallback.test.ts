import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { cliArgs } from './support/dist.js';

/**
 * rtp.workerPriority where the OS refuses it: `pay-ivr serve` started without CAP_SYS_NICE
 * (util-linux setpriv drops it from the bounding set, so even root cannot lower a nice value or
 * take SCHED_FIFO). The node must start anyway, at normal priority, and say why once.
 */

let child: ChildProcess | undefined;
let dir: string | undefined;
afterEach(async () => {
  if (child !== undefined && child.exitCode === null) {
    const exited = new Promise((r) => child?.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  }
  child = undefined;
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

describe('rtp.workerPriority without CAP_SYS_NICE', () => {
  it('starts the media workers at normal priority and logs one warning with the OS reason', async () => {
    dir = mkdtempSync(join(tmpdir(), 'payivr-prio-'));
    const config = join(dir, 'pay-ivr.yaml');
    writeFileSync(
      config,
      [
        'sip:',
        '  listen: [{ transport: udp, host: 127.0.0.1, port: 36610 }]',
        'rtp: { host: 127.0.0.1, portMin: 36620, portMax: 36659, workers: 2, workerPriority: realtime }',
        'admin: { enabled: false }',
        `journal: { dataDir: ${JSON.stringify(join(dir, 'data'))} }`,
        'log: { level: info }',
        '',
      ].join('\n'),
    );
    const p = spawn('setpriv', ['--bounding-set=-sys_nice', process.execPath, ...cliArgs('serve', '--config', config)], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = p;
    let stderr = '';
    p.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const lines: LogLine[] = [];
    const started = await new Promise<LogLine>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no 'media workers started' in 30 s; stderr: ${stderr}`)), 30_000);
      p.on('exit', (code) => reject(new Error(`serve exited (${code}); stderr: ${stderr}`)));
      createInterface({ input: p.stdout as NodeJS.ReadableStream }).on('line', (l) => {
        let j: LogLine;
        try {
          j = JSON.parse(l) as LogLine;
        } catch {
          return;
        }
        lines.push(j);
        if (j.msg === 'media workers started') {
          clearTimeout(timer);
          resolve(j);
        }
      });
    });
    expect(started.priority).toEqual(['normal', 'normal']);
    // The warning follows the start line at once.
    await new Promise((r) => setTimeout(r, 200));
    const warnings = lines.filter((l) => l.msg.includes('lower scheduling priority'));
    expect(warnings).toHaveLength(1);
    const w = warnings[0] as LogLine;
    expect(w.level).toBe(40);
    expect(w.asked).toBe('realtime');
    expect(w.running).toBe('normal');
    const refused = w.refused as string[];
    expect(refused).toHaveLength(2);
    expect(refused[0]).toMatch(/^realtime \(SCHED_FIFO 10\): .*(not permitted|EPERM)/i);
    expect(refused[1]).toMatch(/^high \(nice -10\): .*(EACCES|permission denied)/i);
    // And the kernel agrees: no thread of the node was raised.
    const raised = readdirSync(`/proc/${p.pid}/task`).filter((t) => {
      const f = readFileSync(`/proc/${p.pid}/task/${t}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
      return Number(f[16]) < 0 || Number(f[38]) !== 0;
    });
    expect(raised).toEqual([]);
    // Still a working node: it listens for SIP (its ready line comes after the media).
    await new Promise<void>((resolve, reject) => {
      const t0 = Date.now();
      const poll = (): void => {
        if (lines.some((l) => /listening|started|ready/i.test(l.msg) && l.msg !== 'media workers started')) resolve();
        else if (Date.now() - t0 > 15_000) reject(new Error(`no start line after the media; lines: ${lines.map((l) => l.msg).join(' | ')}`));
        else setTimeout(poll, 50);
      };
      poll();
    });
  }, 60_000);
});
