import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { LANGUAGES, allPromptIds } from './domain/prompts/catalog.js';

/** Lists `<lang>/<id>.wav` files the catalog needs that are missing under `dir`. */
export function checkPromptPacks(dir: string): string[] {
  const missing: string[] = [];
  for (const lang of LANGUAGES) {
    for (const id of allPromptIds(lang)) {
      const f = join(dir, lang, `${id}.wav`);
      if (!existsSync(f)) missing.push(f);
    }
  }
  return missing;
}
