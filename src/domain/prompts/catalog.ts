import { FRAGMENTS, FRAGMENT_PREFIXES, type Language, type SpokenText } from './fragments.js';
import { PHRASES } from './phrases.js';

/**
 * The prompt catalog: every prompt id a call can play, per language, and what it says. It is the
 * single source for the prompt packs (scripts/generate-prompts.ts renders prompts/<lang>/<id>.wav
 * from it) and for checks that every id the dialogue or readback produces exists.
 *
 * Three sources:
 * - readback fragments (fragments.ts): numbers, units, letters, months... (see the inventory there);
 * - dialogue phrases (phrases.ts, owned by the dialogue): whole sentences;
 * - two non-speech entries: `wait-music` (a soft ~4 s loopable tone pattern played while the PSP
 *   runs) and `silence-500` (0.5 s of silence, for pauses).
 * Ids are plain ASCII [a-z0-9-]; a duplicate or malformed id fails at load, not during a call.
 */

export const LANGUAGES = ['en-US', 'fr-FR'] as const satisfies readonly Language[];
export type { Language } from './fragments.js';

export const WAIT_MUSIC_ID = 'wait-music';
export const SILENCE_ID = 'silence-500';

export type PromptSpec =
  | { kind: 'speech'; text: string; say?: string }
  | { kind: 'tone' }
  | { kind: 'silence'; ms: number };

const ID_PATTERN = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;

function build(lang: Language): ReadonlyMap<string, PromptSpec> {
  const m = new Map<string, PromptSpec>();
  const add = (id: string, spec: PromptSpec): void => {
    if (!ID_PATTERN.test(id)) throw new Error(`prompt id "${id}" is not plain [a-z0-9-]`);
    if (m.has(id)) throw new Error(`prompt id "${id}" is defined twice`);
    m.set(id, spec);
  };
  const speech = (s: SpokenText): PromptSpec => (s.say === undefined ? { kind: 'speech', text: s.text } : { kind: 'speech', text: s.text, say: s.say });
  for (const [id, s] of FRAGMENTS[lang]) add(id, speech(s));
  for (const [id, texts] of Object.entries(PHRASES)) {
    if (FRAGMENT_PREFIXES.some((p) => id.startsWith(p))) throw new Error(`phrase id "${id}" uses a readback fragment prefix`);
    add(id, { kind: 'speech', text: texts[lang] });
  }
  add(WAIT_MUSIC_ID, { kind: 'tone' });
  add(SILENCE_ID, { kind: 'silence', ms: 500 });
  return m;
}

const CATALOG: Readonly<Record<Language, ReadonlyMap<string, PromptSpec>>> = {
  'en-US': build('en-US'),
  'fr-FR': build('fr-FR'),
};

/** How to render a prompt; undefined when the id does not exist in that language. */
export function promptSpec(lang: Language, id: string): PromptSpec | undefined {
  return CATALOG[lang].get(id);
}

/** What a prompt says (a short description for the non-speech ones); undefined when unknown. */
export function promptText(lang: Language, id: string): string | undefined {
  const s = CATALOG[lang].get(id);
  if (s === undefined) return undefined;
  if (s.kind === 'speech') return s.text;
  return s.kind === 'tone' ? '(wait music)' : `(silence ${s.ms} ms)`;
}

export function hasPrompt(lang: Language, id: string): boolean {
  return CATALOG[lang].has(id);
}

/** Every prompt id of a language, sorted. */
export function allPromptIds(lang: Language): string[] {
  return [...CATALOG[lang].keys()].sort();
}
