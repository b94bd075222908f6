import { describe, expect, it } from 'vitest';
import { LANGUAGES, SILENCE_ID, WAIT_MUSIC_ID, allPromptIds, hasPrompt, promptSpec, promptText } from '../src/domain/prompts/catalog.js';
import { FRAGMENTS, FRAGMENT_PREFIXES } from '../src/domain/prompts/fragments.js';
import { PHRASES } from '../src/domain/prompts/phrases.js';

describe('prompt catalog', () => {
  it('has both languages', () => {
    expect([...LANGUAGES]).toEqual(['en-US', 'fr-FR']);
  });

  it.each(LANGUAGES)('%s: ids are plain ASCII, sorted, unique, all with text', (lang) => {
    const ids = allPromptIds(lang);
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
    for (const id of ids) {
      expect(id).toMatch(/^[a-z0-9]+(-[a-z0-9]+)*$/);
      expect(promptText(lang, id)?.length ?? 0).toBeGreaterThan(0);
      expect(hasPrompt(lang, id)).toBe(true);
    }
    expect(ids.length).toBe(FRAGMENTS[lang].size + Object.keys(PHRASES).length + 2);
  });

  it('merges fragments, phrases and the two non-speech entries', () => {
    for (const lang of LANGUAGES) {
      expect(promptSpec(lang, WAIT_MUSIC_ID)).toEqual({ kind: 'tone' });
      expect(promptSpec(lang, SILENCE_ID)).toEqual({ kind: 'silence', ms: 500 });
      for (const [id, text] of Object.entries(PHRASES)) expect(promptText(lang, id)).toBe(text[lang]);
      for (const [id, s] of FRAGMENTS[lang]) expect(promptText(lang, id)).toBe(s.text);
    }
    expect(promptText('en-US', 'n-21')).toBe('twenty-one');
    expect(promptText('fr-FR', 'n-21')).toBe('vingt et un');
    expect(promptText('fr-FR', 'cur-usd-sub-n')).toBe('cents');
    expect(promptSpec('fr-FR', 'cur-usd-sub-n')).toEqual({ kind: 'speech', text: 'cents', say: 'sèntes' });
  });

  it('answers undefined for unknown ids and ids of the other language only', () => {
    expect(promptText('en-US', 'no-such-prompt')).toBeUndefined();
    expect(hasPrompt('en-US', 'n-80b')).toBe(false);
    expect(hasPrompt('fr-FR', 'n-80b')).toBe(true);
    expect(hasPrompt('fr-FR', 'mult-thousand')).toBe(false);
  });

  it('dialogue phrases stay out of the fragment namespaces and have both languages', () => {
    for (const [id, text] of Object.entries(PHRASES)) {
      expect(FRAGMENT_PREFIXES.some((p) => id.startsWith(p)), id).toBe(false);
      expect(text['en-US'].trim().length, id).toBeGreaterThan(0);
      expect(text['fr-FR'].trim().length, id).toBeGreaterThan(0);
    }
  });
});
