import { describe, expect, it } from 'vitest';
import { OncePerWindow } from '../src/util/once-per-window.js';

describe('OncePerWindow', () => {
  it('reports a key once per window with the count suppressed since, and keeps at most maxKeys', () => {
    let t = 0;
    const w = new OncePerWindow(60_000, 2, () => t);
    expect(w.take('a')).toBe(0);
    expect(w.take('a')).toBeUndefined();
    expect(w.take('a')).toBeUndefined();
    t = 59_999;
    expect(w.take('a')).toBeUndefined();
    t = 60_000;
    expect(w.take('a')).toBe(3);
    expect(w.take('b')).toBe(0);
    // A third key evicts the oldest ('a'), which is then reported again at once.
    expect(w.take('c')).toBe(0);
    expect(w.take('a')).toBe(0);
  });
});
