/** Number formatting of the bench reports. Not a number (undefined, or NaN, which comes over IPC as JSON null) prints n/a. */
export const f1 = (x: number | undefined | null): string => (typeof x !== 'number' || Number.isNaN(x) ? 'n/a' : x.toFixed(1));
export const f2 = (x: number | undefined | null): string => (typeof x !== 'number' || Number.isNaN(x) ? 'n/a' : x.toFixed(2));
/** Whole milliseconds; under 1 ms as <1. */
export const fms = (x: number | undefined | null): string => (typeof x !== 'number' || Number.isNaN(x) ? 'n/a' : x < 1 ? '<1' : x.toFixed(0));
export const mib = (b: number): string => `${(b / 1024 / 1024).toFixed(1)} MiB`;
