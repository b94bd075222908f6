import { describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.js';
import { PanelTokens, bearerOf } from '../src/assist/panel-token.js';

const KEY = 'k'.repeat(24);

function problem(raw: unknown): string {
  try {
    parseConfig(raw);
  } catch (e) {
    return (e as Error).message;
  }
  return '';
}

describe('edge.assist configuration', () => {
  it('is optional, and takes its defaults when given', () => {
    expect(parseConfig({}).edge.assist).toBeUndefined();
    expect(parseConfig({ edge: { assist: { apiKeys: [KEY] } } }).edge?.assist).toEqual({
      apiKeys: [KEY],
      panelTokenTtlSeconds: 900,
      captureTimeoutSeconds: 300,
      dtmfSecurity: 'tone',
      maxKeysPerField: 64,
      maxCaptures: 500,
      frameAncestors: ['https://*.mypurecloud.com', 'https://*.mypurecloud.ie', 'https://*.mypurecloud.de', 'https://*.mypurecloud.jp', 'https://*.mypurecloud.com.au', 'https://*.pure.cloud'],
    });
  });

  it('fails at start with the path of the bad field', () => {
    expect(problem({ edge: { assist: {} } })).toMatch(/^edge\.assist\.apiKeys:/);
    expect(problem({ edge: { assist: { apiKeys: ['short'] } } })).toMatch(/^edge\.assist\.apiKeys\.0: must be at least 24 characters/);
    expect(problem({ edge: { assist: { apiKeys: [KEY], tokenSecret: 'short' } } })).toMatch(/^edge\.assist\.tokenSecret:/);
    expect(problem({ edge: { assist: { apiKeys: [KEY], dtmfSecurity: 'beep' } } })).toMatch(/^edge\.assist\.dtmfSecurity:/);
    expect(problem({ edge: { assist: { apiKeys: [KEY], profile: 'sales' } } })).toBe('edge.assist.profile: no profile named "sales"');
    expect(problem({ edge: { assist: { apiKeys: [KEY], frameAncestors: ["https://x.example; script-src *"] } } })).toMatch(/^edge\.assist\.frameAncestors\.0:/);
    expect(problem({ edge: { assist: { apiKeys: [KEY], captureTimeoutSeconds: 0 } } })).toMatch(/^edge\.assist\.captureTimeoutSeconds:/);
    expect(problem({ edge: { assist: { apiKeys: [KEY], prompts: { language: 'en-US' } } } })).toMatch(/^edge\.assist\.prompts\.dir:/);
    expect(problem({ edge: { assist: { apiKeys: [KEY], unknown: 1 } } })).toMatch(/^edge\.assist:/);
  });
});

describe('panel tokens', () => {
  it('open one capture until they expire; any change to one breaks it', () => {
    let now = 1_000_000_000_000;
    const t = new PanelTokens({ secret: 's'.repeat(32), ttlSeconds: 60, now: () => now });
    const { token, expiresAt } = t.issue('capture-id-0123456789');
    expect(expiresAt).toBe(1_000_000_060);
    expect(t.verify(token)).toEqual({ captureId: 'capture-id-0123456789', expiresAt });
    const [p, id, exp, mac] = token.split('.') as [string, string, string, string];
    expect(t.verify([p, 'capture-id-0123456780', exp, mac].join('.'))).toBeUndefined();
    expect(t.verify([p, id, String(Number(exp) + 3600), mac].join('.'))).toBeUndefined();
    expect(t.verify([p, id, exp, `${mac.slice(0, -1)}${mac.endsWith('A') ? 'B' : 'A'}`].join('.'))).toBeUndefined();
    expect(t.verify(undefined)).toBeUndefined();
    expect(t.verify('')).toBeUndefined();
    expect(new PanelTokens({ secret: 'o'.repeat(32), ttlSeconds: 60, now: () => now }).verify(token)).toBeUndefined();
    now += 60_000;
    expect(t.verify(token)).toBeUndefined();
    expect(bearerOf(`Bearer ${token}`)).toBe(token);
    expect(bearerOf(`Basic ${token}`)).toBeUndefined();
  });
});
