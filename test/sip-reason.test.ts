import { describe, expect, it } from 'vitest';
import { formatReason, unansweredStatus } from '../src/telephony/sip-reason.js';

describe('Reason header (RFC 3326), both backends', () => {
  it('SIP and Q.850 protocols, whole-number causes', () => {
    expect(formatReason({ protocol: 'SIP', cause: 200, text: 'Call transferred' })).toBe('SIP;cause=200;text="Call transferred"');
    expect(formatReason({ protocol: 'Q.850', cause: 16, text: 'Normal call clearing' })).toBe('Q.850;cause=16;text="Normal call clearing"');
    expect(formatReason({ protocol: 'SIP', cause: 503.7, text: 'x' })).toBe('SIP;cause=503;text="x"');
  });

  it('quotes, escapes and line breaks cannot leave the quoted string or end the header', () => {
    expect(formatReason({ protocol: 'SIP', cause: 200, text: 'Call "transferred"' })).toBe('SIP;cause=200;text="Call  transferred "');
    expect(formatReason({ protocol: 'Q.850', cause: 16, text: 'a"b\r\nc' })).toBe('Q.850;cause=16;text="a b  c"');
    expect(formatReason({ protocol: 'SIP', cause: 500, text: 'back\\slash\\" tab\there nul\u0000del\u007f' })).toBe('SIP;cause=500;text="back slash   tab here nul del "');
    const long = formatReason({ protocol: 'SIP', cause: 500, text: 'x'.repeat(500) });
    expect(long).toBe(`SIP;cause=500;text="${'x'.repeat(120)}"`);
    expect(formatReason({ protocol: 'SIP', cause: 403, text: 'ünïcode kept' })).toBe('SIP;cause=403;text="ünïcode kept"');
  });

  it('before the answer: the SIP cause when it is a failure status, else 480', () => {
    expect(unansweredStatus({ protocol: 'SIP', cause: 503, text: 'x' })).toBe(503);
    expect(unansweredStatus({ protocol: 'SIP', cause: 603, text: 'x' })).toBe(603);
    expect(unansweredStatus({ protocol: 'SIP', cause: 200, text: 'x' })).toBe(480);
    expect(unansweredStatus({ protocol: 'SIP', cause: 302, text: 'x' })).toBe(480);
    expect(unansweredStatus({ protocol: 'SIP', cause: 700, text: 'x' })).toBe(480);
    expect(unansweredStatus({ protocol: 'Q.850', cause: 486, text: 'x' })).toBe(480);
    expect(unansweredStatus(undefined)).toBe(480);
  });
});
