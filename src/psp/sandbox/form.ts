/**
 * Stripe's request encoding: application/x-www-form-urlencoded with bracket notation for nested
 * objects and arrays (`payment_method_data[card][number]=...`, `expand[0]=latest_charge`,
 * `expand[]=...`). Parsed into plain objects; arrays come back as arrays.
 */

type FormValue = string | FormObject | FormValue[];
export interface FormObject {
  [key: string]: FormValue;
}

const FORBIDDEN = new Set(['__proto__', 'constructor', 'prototype']);

function segments(key: string): string[] | undefined {
  const m = /^([^[\]]+)((?:\[[^[\]]*\])*)$/.exec(key);
  if (!m) return undefined;
  const rest = m[2] ?? '';
  const out = [m[1] as string];
  for (const s of rest.matchAll(/\[([^[\]]*)\]/g)) out.push(s[1] ?? '');
  return out;
}

function arrayify(v: FormValue): FormValue {
  if (typeof v === 'string' || Array.isArray(v)) return v;
  const keys = Object.keys(v);
  for (const k of keys) v[k] = arrayify(v[k] as FormValue);
  if (keys.length > 0 && keys.every((k) => /^\d+$/.test(k))) {
    return keys.sort((a, b) => Number(a) - Number(b)).map((k) => v[k] as FormValue);
  }
  return v;
}

/** Parses a form body or query string; malformed keys are dropped (Stripe ignores nothing, but we are a subset). */
export function parseForm(text: string): FormObject {
  const root: FormObject = {};
  const pushCounters = new Map<FormObject, number>();
  for (const [rawKey, value] of new URLSearchParams(text)) {
    const segs = segments(rawKey);
    if (!segs || segs.some((s) => FORBIDDEN.has(s))) continue;
    let cur: FormObject = root;
    for (let i = 0; i < segs.length; i++) {
      let seg = segs[i] as string;
      if (seg === '') {
        const n = pushCounters.get(cur) ?? 0;
        pushCounters.set(cur, n + 1);
        seg = String(n);
      }
      if (i === segs.length - 1) {
        cur[seg] = value;
      } else {
        const next = cur[seg];
        if (typeof next === 'object' && !Array.isArray(next)) {
          cur = next;
        } else {
          const o: FormObject = {};
          cur[seg] = o;
          cur = o;
        }
      }
    }
  }
  return arrayify(root) as FormObject;
}

/** A string at a path of a parsed form, or undefined. */
export function formString(o: FormObject, ...path: string[]): string | undefined {
  let cur: FormValue | undefined = o;
  for (const p of path) {
    if (cur === undefined || typeof cur === 'string' || Array.isArray(cur)) return undefined;
    cur = cur[p];
  }
  return typeof cur === 'string' ? cur : undefined;
}

/** An object at a path of a parsed form, or undefined. */
export function formObject(o: FormObject, ...path: string[]): FormObject | undefined {
  let cur: FormValue | undefined = o;
  for (const p of path) {
    if (cur === undefined || typeof cur === 'string' || Array.isArray(cur)) return undefined;
    cur = cur[p];
  }
  return cur !== undefined && typeof cur === 'object' && !Array.isArray(cur) ? cur : undefined;
}

/** The `expand` list (array or single value) of a parsed form. */
export function formList(o: FormObject, key: string): string[] {
  const v = o[key];
  if (typeof v === 'string') return [v];
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string');
  return [];
}
