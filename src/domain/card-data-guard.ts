/**
 * The card-data guard: the one rule for "this record looks like it holds card data", applied
 * before anything is written to the store, the journal spool or a report segment. The dialogue
 * never puts card data in a record; this check catches a bug that would, and the writer refuses
 * the whole record rather than trying to clean it. Pure: the writers decide how to refuse.
 */

/** Field names that only card data would use (compared case-insensitively, at any depth). */
const FORBIDDEN_KEYS = new Set(['pan', 'cardnumber', 'cvc', 'cvv', 'cvc2', 'securitycode', 'expiry', 'expmonth', 'expyear', 'exp_month', 'exp_year']);

/** 13 or more consecutive digits: the shortest PAN length is 13 (old Visa, Maestro 12 aside). */
const DIGIT_RUN = /[0-9]{13,}/;

/**
 * Fields exempt from the digit-run rule. Adyen's pspReference is 16 digits by design, and the
 * transaction id comes from the PSP's response, never from caller input.
 */
const DIGIT_RUN_EXEMPT = new Set(['transactionId']);

/** Why a record is refused: the offending path (no value, so no card data in the reason). */
interface CardDataFinding {
  path: string;
  rule: 'forbidden-field' | 'digit-run';
}

/** Searches a JSON-like value for card-looking content; undefined when clean. */
export function findCardData(value: unknown, path = '$', key = ''): CardDataFinding | undefined {
  if (typeof value === 'string') {
    return !DIGIT_RUN_EXEMPT.has(key) && DIGIT_RUN.test(value) ? { path, rule: 'digit-run' } : undefined;
  }
  if (typeof value === 'number' || typeof value === 'bigint') {
    return DIGIT_RUN.test(String(value)) && !DIGIT_RUN_EXEMPT.has(key) ? { path, rule: 'digit-run' } : undefined;
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const f = findCardData(value[i], `${path}[${i}]`, key);
      if (f !== undefined) return f;
    }
    return undefined;
  }
  if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (v !== undefined && FORBIDDEN_KEYS.has(k.toLowerCase())) return { path: `${path}.${k}`, rule: 'forbidden-field' };
      const f = findCardData(v, `${path}.${k}`, k);
      if (f !== undefined) return f;
    }
  }
  return undefined;
}

/** A refused record's id as it may be logged: "[refused]" when the id itself holds a digit run. */
export function recordIdForLog(recordId: string): string {
  return DIGIT_RUN.test(recordId) ? '[refused]' : recordId.slice(0, 128);
}
