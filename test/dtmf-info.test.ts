import { describe, expect, it } from 'vitest';
import { parseDtmfInfo } from '../src/telephony/dtmf-info.js';

describe('SIP INFO DTMF bodies (read byte by byte, zeroed by the session afterwards)', () => {
  const relay = (body: string): string | undefined => parseDtmfInfo('application/dtmf-relay', Buffer.from(body, 'latin1'));
  const plain = (body: string): string | undefined => parseDtmfInfo('application/dtmf', Buffer.from(body, 'latin1'));

  it.each([
    ['Signal=5\r\nDuration=160\r\n', '5'],
    ['signal = #\nDuration=100', '#'],
    ['Duration=160\r\nSIGNAL=11\r\n', '#'],
    ['  Signal=10', '*'],
    ['Signal=*', '*'],
    ['Signal=d', 'D'],
    ['Duration=160', undefined],
    ['Signal=', undefined],
    ['Signal=123', undefined],
    ['Signals=5', undefined],
    ['Signal 5', undefined],
  ])('dtmf-relay %j -> %s', (body, digit) => {
    expect(relay(body)).toBe(digit);
  });

  it.each([
    ['7', '7'],
    ['11\r\n', '#'],
    [' 9 ', '9'],
    ['16', undefined],
    ['', undefined],
    ['55555', undefined],
  ])('dtmf %j -> %s', (body, digit) => {
    expect(plain(body)).toBe(digit);
  });

  it('ignores other types and oversized bodies', () => {
    expect(parseDtmfInfo('text/plain', Buffer.from('Signal=5'))).toBeUndefined();
    expect(parseDtmfInfo('application/dtmf-relay', Buffer.alloc(300, 0x20))).toBeUndefined();
  });
});
