/**
 * Renders the prompt packs from the catalog: prompts/<lang>/<id>.wav, 8 kHz mono 16-bit signed
 * linear PCM, leading/trailing silence trimmed (plus a 50 ms tail so concatenated fragments do not
 * run together), speech normalized to -3 dBFS peak.
 *
 * Idempotent: prompts/<lang>/manifest.json maps each id to a hash of what was rendered (text, voice,
 * settings); only missing or changed prompts are rendered, and WAVs no longer in the catalog are
 * deleted. The WAVs are committed, so running pay-ivr needs no speech engine.
 *
 *   npm run prompts               render what changed
 *   npm run prompts -- --force    render everything again
 *   npm run prompts -- --check    render nothing; exit 1 when a pack is out of date (CI)
 *
 * Needs espeak-ng and sox (Debian packages of the same names).
 */
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LANGUAGES, allPromptIds, promptSpec, type Language, type PromptSpec } from '../src/domain/prompts/catalog.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const PROMPTS_DIR = join(ROOT, 'prompts');

/** Bump when the rendering changes in a way the hash of the settings below does not capture. */
const GENERATOR_VERSION = 1;
const SETTINGS = {
  sampleRate: 8000,
  speedWpm: 160,
  peakDb: -3,
  tailSeconds: 0.05,
  // Silence threshold for trimming: espeak pads with digital silence, -60 dB keeps soft onsets.
  trimThreshold: '0.1%',
  musicPeakDb: -12,
};
const VOICES: Readonly<Record<Language, string>> = { 'en-US': 'en-us', 'fr-FR': 'fr' };

/** Wait music: a soft plucked arpeggio, 8 slots of 0.5 s (0 = rest); every note decays to zero so the loop has no click. */
const WAIT_NOTES_HZ = [523.25, 659.25, 783.99, 0, 587.33, 698.46, 880.0, 0];
const NOTE_SECONDS = 0.5;

const PCM_OUT = ['-D', '-r', String(SETTINGS.sampleRate), '-c', '1', '-b', '16', '-e', 'signed-integer', '-t', 'wav'];

interface Manifest {
  generator: number;
  prompts: Record<string, string>;
}

function promptHash(lang: Language, spec: PromptSpec): string {
  const material = JSON.stringify({ v: GENERATOR_VERSION, settings: SETTINGS, voice: VOICES[lang], spec, notes: spec.kind === 'tone' ? WAIT_NOTES_HZ : undefined });
  return createHash('sha256').update(material).digest('hex').slice(0, 16);
}

function run(cmd: string, args: string[], stdin?: string): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { stdio: [stdin === undefined ? 'ignore' : 'pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolvePromise();
      else reject(new Error(`${cmd} exited with ${code}: ${stderr.trim()}`));
    });
    if (child.stdin !== null) {
      // A child that exits early would make the write fail with EPIPE; its exit code reports it.
      child.stdin.on('error', () => undefined);
      child.stdin.end(stdin);
    }
  });
}

async function renderSpeech(lang: Language, text: string, work: string, out: string): Promise<void> {
  const raw = `${work}.raw.wav`;
  await run('espeak-ng', ['-v', VOICES[lang], '-s', String(SETTINGS.speedWpm), '-w', raw, '--stdin'], text);
  const t = SETTINGS.trimThreshold;
  await run('sox', [
    '-R', raw, ...PCM_OUT, out,
    'silence', '1', '0.01', t, 'reverse', 'silence', '1', '0.01', t, 'reverse',
    'rate', String(SETTINGS.sampleRate), 'norm', String(SETTINGS.peakDb), 'pad', '0', String(SETTINGS.tailSeconds),
  ]);
  await rm(raw, { force: true });
}

async function renderTone(work: string, out: string): Promise<void> {
  const parts: string[] = [];
  for (const [i, hz] of WAIT_NOTES_HZ.entries()) {
    const part = `${work}.note${i}.wav`;
    const synth = hz === 0 ? ['trim', '0', String(NOTE_SECONDS)] : ['synth', String(NOTE_SECONDS), 'pluck', String(hz), 'fade', 't', '0.005', String(NOTE_SECONDS), String(NOTE_SECONDS - 0.05)];
    await run('sox', ['-R', '-n', ...PCM_OUT, part, ...synth]);
    parts.push(part);
  }
  await run('sox', ['-R', ...parts, ...PCM_OUT, out, 'norm', String(SETTINGS.musicPeakDb)]);
  await Promise.all(parts.map((p) => rm(p, { force: true })));
}

async function renderSilence(ms: number, out: string): Promise<void> {
  await run('sox', ['-R', '-n', ...PCM_OUT, out, 'trim', '0', String(ms / 1000)]);
}

async function render(lang: Language, id: string, spec: PromptSpec, dir: string, work: string): Promise<void> {
  const final = join(dir, `${id}.wav`);
  const tmp = join(work, `${lang}-${id}.wav`);
  if (spec.kind === 'speech') await renderSpeech(lang, spec.say ?? spec.text, join(work, `${lang}-${id}`), tmp);
  else if (spec.kind === 'tone') await renderTone(join(work, `${lang}-${id}`), tmp);
  else await renderSilence(spec.ms, tmp);
  await rename(tmp, final).catch(async () => {
    // rename fails across file systems (tmpdir on another mount): copy through a sibling.
    await writeFile(`${final}.tmp`, await readFile(tmp));
    await rename(`${final}.tmp`, final);
    await rm(tmp, { force: true });
  });
}

async function readManifest(file: string): Promise<Manifest> {
  try {
    const m = JSON.parse(await readFile(file, 'utf8')) as Partial<Manifest>;
    return { generator: m.generator ?? 0, prompts: m.prompts ?? {} };
  } catch {
    return { generator: GENERATOR_VERSION, prompts: {} };
  }
}

/** Runs fn over items, `width` at a time; one failure does not stop the others. Returns the failures. */
async function pool<T>(items: T[], width: number, fn: (item: T) => Promise<void>): Promise<{ item: T; error: unknown }[]> {
  let next = 0;
  const failures: { item: T; error: unknown }[] = [];
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (error) {
        failures.push({ item, error });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
  return failures;
}

interface Plan {
  lang: Language;
  dir: string;
  manifest: Manifest;
  stale: string[];
  extra: string[];
}

async function plan(lang: Language, force: boolean): Promise<Plan> {
  const dir = join(PROMPTS_DIR, lang);
  const manifest = await readManifest(join(dir, 'manifest.json'));
  const ids = allPromptIds(lang);
  const stale: string[] = [];
  for (const id of ids) {
    const spec = promptSpec(lang, id);
    if (spec === undefined) continue;
    const h = promptHash(lang, spec);
    if (force || manifest.prompts[id] !== h || !existsSync(join(dir, `${id}.wav`))) stale.push(id);
  }
  const wanted = new Set(ids.map((id) => `${id}.wav`));
  const present = existsSync(dir) ? await readdir(dir) : [];
  const extra = present.filter((f) => f !== 'manifest.json' && !wanted.has(f));
  return { lang, dir, manifest, stale, extra };
}

async function main(argv: string[]): Promise<number> {
  const force = argv.includes('--force');
  const check = argv.includes('--check');
  const plans = await Promise.all(LANGUAGES.map((lang) => plan(lang, force)));

  if (check) {
    let ok = true;
    for (const p of plans) {
      if (p.stale.length > 0 || p.extra.length > 0) {
        ok = false;
        console.error(`${p.lang}: ${p.stale.length} missing or changed, ${p.extra.length} stale files; run npm run prompts`);
      }
    }
    return ok ? 0 : 1;
  }

  const work = await mkdtemp(join(tmpdir(), 'pay-ivr-prompts-'));
  try {
    const jobs = plans.flatMap((p) => p.stale.map((id) => ({ p, id })));
    for (const p of plans) await mkdir(p.dir, { recursive: true });
    const started = process.hrtime.bigint();
    const failures = await pool(jobs, availableParallelism() + 1, async ({ p, id }) => {
      const spec = promptSpec(p.lang, id);
      if (spec === undefined) return;
      await render(p.lang, id, spec, p.dir, work);
    });
    const failed = new Set(failures.map(({ item }) => `${item.p.lang}/${item.id}`));
    for (const { item, error } of failures) console.error(`${item.p.lang}/${item.id}: ${error instanceof Error ? error.message : String(error)}`);
    for (const p of plans) {
      for (const f of p.extra) await rm(join(p.dir, f), { force: true, recursive: true });
      const prompts: Record<string, string> = {};
      for (const id of allPromptIds(p.lang)) {
        const spec = promptSpec(p.lang, id);
        // A failed prompt stays out of the manifest, so the next run tries it again.
        if (spec !== undefined && !failed.has(`${p.lang}/${id}`)) prompts[id] = promptHash(p.lang, spec);
      }
      const manifest: Manifest = { generator: GENERATOR_VERSION, prompts };
      await writeFile(join(p.dir, 'manifest.json'), `${JSON.stringify(manifest, null, 1)}\n`);
      let bytes = 0;
      for (const f of await readdir(p.dir)) if (f.endsWith('.wav')) bytes += (await stat(join(p.dir, f))).size;
      console.log(`${p.lang}: ${Object.keys(prompts).length} prompts, ${p.stale.filter((id) => !failed.has(`${p.lang}/${id}`)).length} rendered, ${p.extra.length} removed, ${(bytes / 1024).toFixed(0)} KiB`);
    }
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    console.log(`done in ${(ms / 1000).toFixed(1)} s${failures.length > 0 ? `, ${failures.length} failed` : ''}`);
    if (failures.length > 0) return 1;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    console.error(e instanceof Error ? e.message : String(e));
    process.exitCode = 1;
  },
);
