import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  MAX_READ_NUMBER,
  readAmount,
  readDigits,
  readExpiry,
  readNumber,
  readReference,
  readSensitiveDigits,
  type Language,
} from '../src/domain/readback.js';
import { hasPrompt, promptText } from '../src/domain/prompts/catalog.js';
import { SensitiveDigits } from '../src/domain/sensitive.js';

/** The words a fragment list says, joined by spaces (fails on an unknown id). */
function say(lang: Language, ids: string[]): string {
  return ids
    .map((id) => {
      const t = promptText(lang, id);
      if (t === undefined) throw new Error(`missing prompt ${lang}/${id}`);
      return t;
    })
    .join(' ');
}

describe('English numbers', () => {
  const cases: [number, string][] = [
    [0, 'zero'],
    [1, 'one'],
    [16, 'sixteen'],
    [17, 'seventeen'],
    [21, 'twenty-one'],
    [71, 'seventy-one'],
    [80, 'eighty'],
    [81, 'eighty-one'],
    [91, 'ninety-one'],
    [100, 'one hundred'],
    [101, 'one hundred one'],
    [200, 'two hundred'],
    [201, 'two hundred one'],
    [999, 'nine hundred ninety-nine'],
    [1000, 'one thousand'],
    [1001, 'one thousand one'],
    [2000, 'two thousand'],
    [2027, 'two thousand twenty-seven'],
    [80000, 'eighty thousand'],
    [100000, 'one hundred thousand'],
    [1_000_000, 'one million'],
    [2_000_000, 'two million'],
    [1_000_001, 'one million one'],
    [123_456_789, 'one hundred twenty-three million four hundred fifty-six thousand seven hundred eighty-nine'],
    [999_999_999, 'nine hundred ninety-nine million nine hundred ninety-nine thousand nine hundred ninety-nine'],
  ];
  it.each(cases)('%d -> %s', (n, words) => {
    expect(say('en-US', readNumber('en-US', n))).toBe(words);
  });
});

describe('French numbers', () => {
  const cases: [number, string][] = [
    [0, 'zéro'],
    [1, 'un'],
    [16, 'seize'],
    [17, 'dix-sept'],
    [21, 'vingt et un'],
    [22, 'vingt-deux'],
    [31, 'trente et un'],
    [61, 'soixante et un'],
    [70, 'soixante-dix'],
    [71, 'soixante et onze'],
    [72, 'soixante-douze'],
    [80, 'quatre-vingts'],
    [81, 'quatre-vingt-un'],
    [90, 'quatre-vingt-dix'],
    [91, 'quatre-vingt-onze'],
    [99, 'quatre-vingt-dix-neuf'],
    [100, 'cent'],
    [101, 'cent un'],
    [180, 'cent quatre-vingts'],
    [200, 'deux cents'],
    [201, 'deux cent un'],
    [280, 'deux cent quatre-vingts'],
    [1000, 'mille'],
    [1001, 'mille un'],
    [2000, 'deux mille'],
    [2027, 'deux mille vingt-sept'],
    [21000, 'vingt et un mille'],
    [80000, 'quatre-vingt mille'],
    [80080, 'quatre-vingt mille quatre-vingts'],
    [81000, 'quatre-vingt-un mille'],
    [100000, 'cent mille'],
    [200000, 'deux cent mille'],
    [201000, 'deux cent un mille'],
    [1_000_000, 'un million'],
    [2_000_000, 'deux millions'],
    [21_000_000, 'vingt et un millions'],
    [80_000_000, 'quatre-vingts millions'],
    [200_000_000, 'deux cents millions'],
    [1_001_000, 'un million mille'],
    [123_456_789, 'cent vingt-trois millions quatre cent cinquante-six mille sept cent quatre-vingt-neuf'],
  ];
  it.each(cases)('%d -> %s', (n, words) => {
    expect(say('fr-FR', readNumber('fr-FR', n))).toBe(words);
  });
  it('feminine final "un"', () => {
    expect(say('fr-FR', readNumber('fr-FR', 1, 'f'))).toBe('une');
    expect(say('fr-FR', readNumber('fr-FR', 21, 'f'))).toBe('vingt et une');
    expect(say('fr-FR', readNumber('fr-FR', 81, 'f'))).toBe('quatre-vingt-une');
    expect(say('fr-FR', readNumber('fr-FR', 71, 'f'))).toBe('soixante et onze');
    expect(say('fr-FR', readNumber('fr-FR', 1_000_001, 'f'))).toBe('un million une');
  });
});

describe('readNumber range', () => {
  it('rejects what it cannot say', () => {
    for (const n of [-1, 1.5, MAX_READ_NUMBER + 1, Number.NaN, Infinity]) {
      expect(() => readNumber('en-US', n)).toThrow(RangeError);
      expect(() => readNumber('fr-FR', n)).toThrow(RangeError);
    }
  });
  it('every id exists and each group is said once (property)', () => {
    fc.assert(
      fc.property(fc.constantFrom<Language>('en-US', 'fr-FR'), fc.integer({ min: 0, max: MAX_READ_NUMBER }), (lang, n) => {
        const ids = readNumber(lang, n);
        for (const id of ids) expect(hasPrompt(lang, id)).toBe(true);
        expect(ids.length).toBeGreaterThan(0);
        expect(ids.length).toBeLessThanOrEqual(8);
      }),
      { numRuns: 5000 },
    );
  });
});

/** Parses English number words back to a value: an independent check of readNumber. */
function parseEnglish(words: string): number {
  const small: Record<string, number> = {};
  const ones = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten', 'eleven', 'twelve', 'thirteen', 'fourteen', 'fifteen', 'sixteen', 'seventeen', 'eighteen', 'nineteen'];
  const tens = ['', '', 'twenty', 'thirty', 'forty', 'fifty', 'sixty', 'seventy', 'eighty', 'ninety'];
  ones.forEach((w, i) => (small[w] = i));
  tens.forEach((w, i) => w !== '' && (small[w] = i * 10));
  let total = 0;
  let group = 0;
  for (const w of words.split(' ')) {
    if (w === 'hundred') group *= 100;
    else if (w === 'thousand' || w === 'million') {
      total += group * (w === 'thousand' ? 1000 : 1_000_000);
      group = 0;
    } else group += w.split('-').reduce((s, p) => s + (small[p] ?? Number.NaN), 0);
  }
  return total + group;
}

/** Parses French number words back to a value. */
function parseFrench(words: string): number {
  const units: Record<string, number> = {
    zéro: 0, un: 1, une: 1, deux: 2, trois: 3, quatre: 4, cinq: 5, six: 6, sept: 7, huit: 8, neuf: 9, dix: 10, onze: 11,
    douze: 12, treize: 13, quatorze: 14, quinze: 15, seize: 16, vingt: 20, vingts: 20, trente: 30, quarante: 40,
    cinquante: 50, soixante: 60,
  };
  let total = 0;
  let group = 0;
  const tokens = words.replace(/ et /g, ' ').replace(/-/g, ' ').split(' ');
  for (let i = 0; i < tokens.length; i++) {
    const w = tokens[i] as string;
    if (w === 'quatre' && (tokens[i + 1] === 'vingt' || tokens[i + 1] === 'vingts')) {
      group += 80;
      i++;
    } else if (w === 'cent' || w === 'cents') group = (group === 0 ? 1 : group) * 100;
    else if (w === 'mille') {
      total += (group === 0 ? 1 : group) * 1000;
      group = 0;
    } else if (w === 'million' || w === 'millions') {
      total += group * 1_000_000;
      group = 0;
    } else {
      const v = units[w];
      if (v === undefined) return Number.NaN;
      group += v;
    }
  }
  return total + group;
}

describe('number words read back to their value', () => {
  it('0 .. 10000 in both languages', () => {
    for (let n = 0; n <= 10000; n++) {
      expect(parseEnglish(say('en-US', readNumber('en-US', n)))).toBe(n);
      expect(parseFrench(say('fr-FR', readNumber('fr-FR', n)))).toBe(n);
    }
  });
  it('random values up to 999,999,999 (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: MAX_READ_NUMBER }), (n) => {
        expect(parseEnglish(say('en-US', readNumber('en-US', n)))).toBe(n);
        expect(parseFrench(say('fr-FR', readNumber('fr-FR', n)))).toBe(n);
      }),
      { numRuns: 3000 },
    );
  });
  it('French plural rules hold everywhere', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: MAX_READ_NUMBER }), (n) => {
        const w = say('fr-FR', readNumber('fr-FR', n));
        expect(w).not.toMatch(/(^|millions? )un mille\b/); // "mille", never "un mille"
        expect(w).not.toMatch(/\bmilles\b/);
        expect(w).not.toMatch(/(cents|vingts) (?!millions)\S/); // plural s only when final or before millions
        expect(w).not.toMatch(/(^| )vingt-un\b|\bquatre-vingt et\b|^un millions\b|\bdeux million\b/);
      }),
      { numRuns: 3000 },
    );
  });
});

describe('amounts', () => {
  const en: [number, string, string][] = [
    [4990, 'EUR', 'forty-nine euros and ninety cents'],
    [100, 'EUR', 'one euro'],
    [101, 'EUR', 'one euro and one cent'],
    [1, 'EUR', 'one cent'],
    [50, 'EUR', 'fifty cents'],
    [0, 'EUR', 'zero euros'],
    [200000000, 'EUR', 'two million euros'],
    [1999, 'USD', 'nineteen dollars and ninety-nine cents'],
    [100, 'USD', 'one dollar'],
    [250, 'GBP', 'two pounds and fifty pence'],
    [101, 'GBP', 'one pound and one penny'],
    [1, 'GBP', 'one penny'],
    [500, 'JPY', 'five hundred yen'],
    [1, 'JPY', 'one yen'],
    [12345, 'KWD', 'twelve point three four five K W D'],
    [4990, 'CHF', 'forty-nine point nine zero C H F'],
    [4900, 'CHF', 'forty-nine C H F'],
    [1000, 'KRW', 'one thousand K R W'],
  ];
  it.each(en)('en-US %d %s -> %s', (minor, cur, words) => {
    expect(say('en-US', readAmount('en-US', minor, cur))).toBe(words);
  });
  const fr: [number, string, string][] = [
    [4990, 'EUR', 'quarante-neuf euros quatre-vingt-dix'],
    [100, 'EUR', 'un euro'],
    [150, 'EUR', 'un euro cinquante'],
    [1, 'EUR', 'un centime'],
    [80, 'EUR', 'quatre-vingts centimes'],
    [0, 'EUR', 'zéro euro'],
    [8000, 'EUR', 'quatre-vingts euros'],
    [100000000, 'EUR', "un million d'euros"],
    [200000000, 'EUR', "deux millions d'euros"],
    [200000100, 'EUR', 'deux millions un euros'],
    [1999, 'USD', 'dix-neuf dollars quatre-vingt-dix-neuf'],
    [5, 'USD', 'cinq cents'],
    [100, 'GBP', 'une livre'],
    [2100, 'GBP', 'vingt et une livres'],
    [2150, 'GBP', 'vingt et une livres cinquante'],
    [1, 'GBP', 'un penny'],
    [2, 'GBP', 'deux pence'],
    [100000000, 'GBP', 'un million de livres'],
    [500, 'JPY', 'cinq cents yens'],
    [1, 'JPY', 'un yen'],
    [12345, 'KWD', 'douze virgule trois quatre cinq K W D'],
  ];
  it.each(fr)('fr-FR %d %s -> %s', (minor, cur, words) => {
    expect(say('fr-FR', readAmount('fr-FR', minor, cur))).toBe(words);
  });
  it('rejects unknown currencies and bad amounts', () => {
    expect(() => readAmount('en-US', 100, 'XXX')).toThrow(RangeError);
    expect(() => readAmount('en-US', -1, 'EUR')).toThrow(RangeError);
    expect(() => readAmount('en-US', 100_000_000_000, 'EUR')).toThrow(RangeError);
  });
});

describe('digits, dates, references', () => {
  it('digits and keys one by one', () => {
    expect(say('en-US', readDigits('en-US', '0123456789*#'))).toBe('zero one two three four five six seven eight nine star pound');
    expect(say('fr-FR', readDigits('fr-FR', '07*#'))).toBe('zéro sept étoile dièse');
    expect(say('en-US', readDigits('en-US', 'AD'))).toBe('A D');
    expect(() => readDigits('en-US', '12x')).toThrow(RangeError);
  });
  it('an error never echoes the input', () => {
    try {
      readDigits('en-US', '4242x');
      expect.unreachable();
    } catch (e) {
      expect(String(e)).not.toContain('4242');
    }
  });
  it('sensitive digits read from the buffer, same as plain digits', () => {
    const pan = SensitiveDigits.from('4242424242424242');
    expect(readSensitiveDigits('en-US', pan)).toEqual(readDigits('en-US', '4242424242424242'));
    expect(readSensitiveDigits('fr-FR', SensitiveDigits.from(''))).toEqual([]);
    pan.wipe();
    expect(readSensitiveDigits('en-US', pan)).toEqual([]);
  });
  it('expiry: month name and year', () => {
    expect(say('en-US', readExpiry('en-US', 12, 2027))).toBe('December two thousand twenty-seven');
    expect(say('fr-FR', readExpiry('fr-FR', 8, 2030))).toBe('août deux mille trente');
    expect(say('fr-FR', readExpiry('fr-FR', 1, 2021))).toBe('janvier deux mille vingt et un');
    expect(() => readExpiry('en-US', 0, 2027)).toThrow(RangeError);
    expect(() => readExpiry('en-US', 13, 2027)).toThrow(RangeError);
  });
  it('references: letters, digits, dash', () => {
    expect(say('en-US', readReference('en-US', 'INV-77'))).toBe('I N V dash seven seven');
    expect(say('fr-FR', readReference('fr-FR', 'inv-77'))).toBe('I N V tiret sept sept');
    expect(say('en-US', readReference('en-US', 'a/b.c_d e'))).toBe('A slash B dot C underscore D E');
    expect(readReference('en-US', 'é ß')).toEqual([]);
  });
});
