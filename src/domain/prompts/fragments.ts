/**
 * The readback fragment inventory: the prerecorded words that readback.ts strings together to say
 * numbers, amounts, dates, digits and references. Ids are plain ASCII; each language has its own
 * set (French needs forms English does not). Reserved id prefixes (dialogue phrases must not use
 * them): n- h- mult- key- l- sym- month- w- cur-.
 *
 * Inventory (why this shape: natural enough when concatenated, yet a few hundred files at most):
 * - n-0 .. n-99   whole words for 0-99 ("twenty-one", "soixante et onze", "quatre-vingts"), also
 *                 used for single digits. fr only: n-80b "quatre-vingt" (before "mille"), and
 *                 feminine n-1f n-21f n-31f n-41f n-51f n-61f n-81f ("une livre").
 * - h-1 .. h-9    "one hundred" .. "nine hundred" / "cent", "deux cents" .. "neuf cents";
 *                 fr only h-2b .. h-9b "deux cent" .. (followed by a number or "mille").
 * - mult-thousand, mult-million / fr mult-mille, mult-million, mult-millions.
 * - key-star, key-hash; l-a .. l-z letters; sym-dash, sym-slash, sym-dot, sym-underscore.
 * - month-1 .. month-12; w-point ("point"/"virgule"); en only w-and ("forty-nine euros and ninety
 *   cents"; French says "quarante-neuf euros quatre-vingt-dix").
 * - cur-<code>-1 / -n (unit, singular/plural), fr cur-<code>-de ("d'euros": after an exact
 *   number of millions), cur-<code>-sub-1 / -sub-n (minor unit), for EUR USD GBP JPY.
 *   Other currencies are read generically: number, "point" and digits, then the code's letters.
 */

export type Language = 'fr-FR' | 'en-US';

/** A spoken fragment: `text` is what it says (documentation, transcripts); `say` overrides what
 * the speech engine gets where its pronunciation of the real spelling is wrong. */
export interface SpokenText {
  text: string;
  say?: string;
}

/** Grammatical gender of a French noun (for "un"/"une"). */
export type Gender = 'm' | 'f';

/** Currencies with their own unit words; every other known currency is read generically. */
export const NAMED_CURRENCIES = ['EUR', 'USD', 'GBP', 'JPY'] as const;
export type NamedCurrency = (typeof NAMED_CURRENCIES)[number];

interface UnitWords {
  one: SpokenText;
  many: SpokenText;
  /** fr: "d'euros", said after an exact number of millions. */
  de?: SpokenText;
  gender: Gender;
  sub?: { one: SpokenText; many: SpokenText; gender: Gender };
}

const t = (text: string, say?: string): SpokenText => (say === undefined ? { text } : { text, say });

export const CURRENCY_WORDS: Readonly<Record<Language, Readonly<Record<NamedCurrency, UnitWords>>>> = {
  'en-US': {
    EUR: { one: t('euro'), many: t('euros'), gender: 'm', sub: { one: t('cent'), many: t('cents'), gender: 'm' } },
    USD: { one: t('dollar'), many: t('dollars'), gender: 'm', sub: { one: t('cent'), many: t('cents'), gender: 'm' } },
    GBP: { one: t('pound'), many: t('pounds'), gender: 'm', sub: { one: t('penny'), many: t('pence'), gender: 'm' } },
    JPY: { one: t('yen'), many: t('yen'), gender: 'm' },
  },
  'fr-FR': {
    EUR: { one: t('euro'), many: t('euros'), de: t("d'euros"), gender: 'm', sub: { one: t('centime'), many: t('centimes'), gender: 'm' } },
    USD: {
      one: t('dollar'),
      many: t('dollars'),
      de: t('de dollars'),
      gender: 'm',
      // espeak says the French "cent" (hundred); a US cent is pronounced "sènte".
      sub: { one: t('cent', 'sènte'), many: t('cents', 'sèntes'), gender: 'm' },
    },
    GBP: {
      one: t('livre'),
      many: t('livres'),
      de: t('de livres'),
      gender: 'f',
      sub: { one: t('penny', 'pèni'), many: t('pence', 'pènce'), gender: 'm' },
    },
    JPY: { one: t('yen'), many: t('yens'), de: t('de yens'), gender: 'm' },
  },
};

const EN_ONES = [
  'zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten', 'eleven', 'twelve',
  'thirteen', 'fourteen', 'fifteen', 'sixteen', 'seventeen', 'eighteen', 'nineteen',
];
const EN_TENS = ['', '', 'twenty', 'thirty', 'forty', 'fifty', 'sixty', 'seventy', 'eighty', 'ninety'];
const FR_ONES = [
  'zéro', 'un', 'deux', 'trois', 'quatre', 'cinq', 'six', 'sept', 'huit', 'neuf', 'dix', 'onze', 'douze',
  'treize', 'quatorze', 'quinze', 'seize', 'dix-sept', 'dix-huit', 'dix-neuf',
];
const FR_TENS = ['', '', 'vingt', 'trente', 'quarante', 'cinquante', 'soixante'];

function enBelow100(n: number): string {
  if (n < 20) return EN_ONES[n] ?? '';
  const u = n % 10;
  const tens = EN_TENS[Math.floor(n / 10)] ?? '';
  return u === 0 ? tens : `${tens}-${EN_ONES[u] ?? ''}`;
}

function frBelow100(n: number): string {
  if (n < 20) return FR_ONES[n] ?? '';
  if (n < 70) {
    const u = n % 10;
    const tens = FR_TENS[Math.floor(n / 10)] ?? '';
    if (u === 0) return tens;
    return u === 1 ? `${tens} et un` : `${tens}-${FR_ONES[u] ?? ''}`;
  }
  if (n < 80) return n === 71 ? 'soixante et onze' : `soixante-${FR_ONES[n - 60] ?? ''}`;
  return n === 80 ? 'quatre-vingts' : `quatre-vingt-${FR_ONES[n - 80] ?? ''}`;
}

/** French numbers below 100 with a feminine form ("une", "vingt et une"...); 71 and 91 end in "onze". */
const FR_FEMININE = [1, 21, 31, 41, 51, 61, 81] as const;

const EN_MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
const FR_MONTHS = ['janvier', 'février', 'mars', 'avril', 'mai', 'juin', 'juillet', 'août', 'septembre', 'octobre', 'novembre', 'décembre'];

const LETTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';

function buildEnglish(): Map<string, SpokenText> {
  const m = new Map<string, SpokenText>();
  for (let n = 0; n < 100; n++) m.set(`n-${n}`, t(enBelow100(n)));
  for (let h = 1; h <= 9; h++) m.set(`h-${h}`, t(`${EN_ONES[h] ?? ''} hundred`));
  m.set('mult-thousand', t('thousand'));
  m.set('mult-million', t('million'));
  m.set('key-star', t('star'));
  m.set('key-hash', t('pound'));
  // A single capital letter: espeak says the letter's name ("ay", "double-u").
  for (const c of LETTERS) m.set(`l-${c.toLowerCase()}`, t(c));
  m.set('sym-dash', t('dash'));
  m.set('sym-slash', t('slash'));
  m.set('sym-dot', t('dot'));
  m.set('sym-underscore', t('underscore'));
  EN_MONTHS.forEach((name, i) => m.set(`month-${i + 1}`, t(name)));
  m.set('w-and', t('and'));
  m.set('w-point', t('point'));
  addCurrencies(m, 'en-US');
  return m;
}

function buildFrench(): Map<string, SpokenText> {
  const m = new Map<string, SpokenText>();
  for (let n = 0; n < 100; n++) m.set(`n-${n}`, t(frBelow100(n)));
  m.set('n-80b', t('quatre-vingt'));
  for (const n of FR_FEMININE) m.set(`n-${n}f`, t(`${frBelow100(n).slice(0, -2)}une`));
  m.set('h-1', t('cent'));
  for (let h = 2; h <= 9; h++) {
    m.set(`h-${h}`, t(`${FR_ONES[h] ?? ''} cents`));
    m.set(`h-${h}b`, t(`${FR_ONES[h] ?? ''} cent`));
  }
  m.set('mult-mille', t('mille'));
  m.set('mult-million', t('million'));
  m.set('mult-millions', t('millions'));
  m.set('key-star', t('étoile'));
  m.set('key-hash', t('dièse'));
  for (const c of LETTERS) m.set(`l-${c.toLowerCase()}`, t(c));
  m.set('sym-dash', t('tiret'));
  m.set('sym-slash', t('barre oblique'));
  m.set('sym-dot', t('point'));
  m.set('sym-underscore', t('tiret bas'));
  FR_MONTHS.forEach((name, i) => m.set(`month-${i + 1}`, t(name)));
  m.set('w-point', t('virgule'));
  addCurrencies(m, 'fr-FR');
  return m;
}

function addCurrencies(m: Map<string, SpokenText>, lang: Language): void {
  for (const code of NAMED_CURRENCIES) {
    const w = CURRENCY_WORDS[lang][code];
    const k = code.toLowerCase();
    m.set(`cur-${k}-1`, w.one);
    m.set(`cur-${k}-n`, w.many);
    if (w.de !== undefined) m.set(`cur-${k}-de`, w.de);
    if (w.sub !== undefined) {
      m.set(`cur-${k}-sub-1`, w.sub.one);
      m.set(`cur-${k}-sub-n`, w.sub.many);
    }
  }
}

/** Every readback fragment per language: id -> spoken text. */
export const FRAGMENTS: Readonly<Record<Language, ReadonlyMap<string, SpokenText>>> = {
  'en-US': buildEnglish(),
  'fr-FR': buildFrench(),
};

/** Id prefixes owned by readback fragments. */
export const FRAGMENT_PREFIXES = ['n-', 'h-', 'mult-', 'key-', 'l-', 'sym-', 'month-', 'w-', 'cur-'] as const;
