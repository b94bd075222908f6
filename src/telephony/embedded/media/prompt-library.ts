import { readdir, readFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { PayIvrError } from '../../../errors.js';
import { encode, transcode, type G711Codec } from './g711.js';
import { parseWav } from './wav.js';

/** One prompt, pre-encoded once in both laws so playback is a plain copy into the packet. */
export interface Prompt {
  readonly samples: number;
  readonly PCMU: Buffer;
  readonly PCMA: Buffer;
}

/** Encodes a WAV file's bytes into a Prompt (exported so tests can compute what must be sent). */
export function promptFromWav(wav: Buffer, name: string): Prompt {
  const audio = parseWav(wav, name);
  if (audio.kind === 'linear') {
    return { samples: audio.samples.length, PCMU: encode('PCMU', audio.samples), PCMA: encode('PCMA', audio.samples) };
  }
  const other: G711Codec = audio.codec === 'PCMU' ? 'PCMA' : 'PCMU';
  const same = audio.data;
  const converted = transcode(audio.codec, other, audio.data);
  return audio.codec === 'PCMU'
    ? { samples: same.length, PCMU: same, PCMA: converted }
    : { samples: same.length, PCMU: converted, PCMA: same };
}

async function listWavFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const entries = await readdir(dir, { withFileTypes: true });
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await listWavFiles(p)));
    else if (e.isFile() && e.name.toLowerCase().endsWith('.wav')) out.push(p);
  }
  return out;
}

/**
 * Every prompt pack under a directory: `<dir>/<language>/<id>.wav`, where the id may contain
 * sub-folders (`digits/4`). Loaded once at start and shared by all calls.
 */
export class PromptLibrary {
  readonly #packs = new Map<string, Map<string, Prompt>>();

  static async load(promptsDir: string): Promise<PromptLibrary> {
    const lib = new PromptLibrary();
    let langs;
    try {
      langs = await readdir(promptsDir, { withFileTypes: true });
    } catch (e) {
      throw new PayIvrError('ERR_PROMPT_FORMAT', `cannot read prompts directory ${promptsDir}`, { cause: e });
    }
    for (const l of langs) {
      if (!l.isDirectory()) continue;
      const langDir = join(promptsDir, l.name);
      const pack = new Map<string, Prompt>();
      for (const file of await listWavFiles(langDir)) {
        const id = relative(langDir, file).slice(0, -4).split(sep).join('/');
        pack.set(id, promptFromWav(await readFile(file), `${l.name}/${id}.wav`));
      }
      if (pack.size > 0) lib.#packs.set(l.name, pack);
    }
    return lib;
  }

  get languages(): string[] {
    return [...this.#packs.keys()];
  }

  /** Number of prompts across all packs. */
  get size(): number {
    let n = 0;
    for (const p of this.#packs.values()) n += p.size;
    return n;
  }

  get(language: string, id: string): Prompt | undefined {
    return this.#packs.get(language)?.get(id);
  }

  has(language: string, id: string): boolean {
    return this.get(language, id) !== undefined;
  }

  /** Adds or replaces a prompt (tests, generated audio). */
  set(language: string, id: string, prompt: Prompt): void {
    let pack = this.#packs.get(language);
    if (pack === undefined) {
      pack = new Map();
      this.#packs.set(language, pack);
    }
    pack.set(id, prompt);
  }
}
