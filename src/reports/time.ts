/**
 * Time-zone arithmetic for reports with Intl only (IANA names). Pure: no clock.
 */

const formatters = new Map<string, Intl.DateTimeFormat>();

/** True when `tz` is an IANA time-zone name this runtime knows. */
export function isTimeZone(tz: string): boolean {
  if (tz.length === 0 || tz.length > 64) return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

function formatter(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz);
  if (f === undefined) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formatters.set(tz, f);
  }
  return f;
}

interface LocalParts {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

/** The wall-clock time in `tz` of the instant `ms`. */
function localParts(ms: number, tz: string): LocalParts {
  const p: Record<string, number> = {};
  for (const part of formatter(tz).formatToParts(new Date(ms))) {
    if (part.type !== 'literal') p[part.type] = Number(part.value);
  }
  return { year: p.year ?? 0, month: p.month ?? 1, day: p.day ?? 1, hour: (p.hour ?? 0) % 24, minute: p.minute ?? 0, second: p.second ?? 0 };
}

/** Offset of `tz` from UTC at the instant `ms`, in ms (positive east of Greenwich). */
function offsetMs(ms: number, tz: string): number {
  const l = localParts(ms, tz);
  const asUtc = Date.UTC(l.year, l.month - 1, l.day, l.hour, l.minute, l.second);
  return asUtc - Math.floor(ms / 1000) * 1000;
}

/** The instant of a wall-clock time in `tz` (the earlier one in a DST fold; shifted past a gap). */
function zonedToUtc(year: number, month: number, day: number, hour: number, tz: string): number {
  const guess = Date.UTC(year, month - 1, day, hour);
  let t = guess - offsetMs(guess, tz);
  // Second pass: the offset at the result may differ from the offset at the guess (DST change).
  t = guess - offsetMs(t, tz);
  return t;
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/** `YYYY-MM-DD` of the instant in `tz`. */
export function dayKey(ms: number, tz: string): string {
  const l = localParts(ms, tz);
  return `${pad(l.year, 4)}-${pad(l.month)}-${pad(l.day)}`;
}

/** `YYYY-MM-DDTHH` of the instant in `tz`. */
export function hourKey(ms: number, tz: string): string {
  const l = localParts(ms, tz);
  return `${pad(l.year, 4)}-${pad(l.month)}-${pad(l.day)}T${pad(l.hour)}`;
}

/** Local midnight (start of the day) in `tz` of the instant `ms`. */
export function startOfDay(ms: number, tz: string): number {
  const l = localParts(ms, tz);
  return zonedToUtc(l.year, l.month, l.day, 0, tz);
}

/**
 * A range bound: an ISO instant (`2026-12-01T10:00:00Z`, with offset), or a local date
 * `YYYY-MM-DD` meaning its midnight in `tz`. Undefined when unreadable.
 */
export function parseBound(text: string, tz: string): number | undefined {
  const d = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (d !== null) {
    const [y, m, day] = [Number(d[1]), Number(d[2]), Number(d[3])];
    if (m < 1 || m > 12 || day < 1 || day > 31) return undefined;
    return zonedToUtc(y, m, day, 0, tz);
  }
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})$/.test(text)) return undefined;
  const t = Date.parse(text);
  return Number.isFinite(t) ? t : undefined;
}
