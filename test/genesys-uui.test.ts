import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeUuiHeader, encodeUuiHex } from '../src/genesys/uui.js';

const ASCII = 'acct=C-1001|amt=49.90|cur=EUR|ref=INV-77|mode=agent|agent=a-1|ret=+33140000000|lang=fr-FR|ident=1';
const hexOf = (s: string): string => Buffer.from(s, 'latin1').toString('hex');

describe('decodeUuiHeader', () => {
  it('hex with the 00 discriminator and encoding=hex', () => {
    expect(decodeUuiHeader(`00${hexOf(ASCII).toUpperCase()};encoding=hex`)).toEqual({ data: ASCII, encoding: 'hex', protocolDiscriminator: '00' });
  });

  it('hex with the 04 discriminator, lower case', () => {
    expect(decodeUuiHeader(`04${hexOf(ASCII)};encoding=hex`)).toEqual({ data: ASCII, encoding: 'hex', protocolDiscriminator: '04' });
  });

  it('hex without discriminator and without params (RFC 7433 default encoding)', () => {
    expect(decodeUuiHeader(hexOf(ASCII))).toEqual({ data: ASCII, encoding: 'hex' });
  });

  it('hex without discriminator but with encoding=hex', () => {
    expect(decodeUuiHeader(`${hexOf('ref=A1')};encoding=hex`)).toEqual({ data: 'ref=A1', encoding: 'hex' });
  });

  it('keeps a first octet that is not a discriminator', () => {
    // 0x41 'A' is printable: nothing to strip
    expect(decodeUuiHeader(hexOf('Aref=1'))?.data).toBe('Aref=1');
  });

  it('ascii with encoding=ascii and without params', () => {
    expect(decodeUuiHeader(`${ASCII};encoding=ascii`)).toEqual({ data: ASCII, encoding: 'ascii' });
    expect(decodeUuiHeader(ASCII)).toEqual({ data: ASCII, encoding: 'ascii' });
  });

  it('encoding parameter is case-insensitive and may have spaces', () => {
    expect(decodeUuiHeader(`00${hexOf('a=b')} ; Encoding = HEX`)?.data).toBe('a=b');
  });

  it('pd parameter', () => {
    expect(decodeUuiHeader(`${hexOf('ref=X')};pd=0;encoding=hex`)).toEqual({ data: 'ref=X', encoding: 'hex', protocolDiscriminator: '0' });
  });

  it('purpose and content parameters', () => {
    expect(decodeUuiHeader(`00${hexOf('ref=X')};encoding=hex;purpose=isdn-uui;content=isdn-uui`)).toEqual({
      data: 'ref=X',
      encoding: 'hex',
      protocolDiscriminator: '00',
      purpose: 'isdn-uui',
      content: 'isdn-uui',
    });
  });

  it('quoted payload and quoted parameter values', () => {
    expect(decodeUuiHeader(`"${ASCII}";encoding=ascii`)).toEqual({ data: ASCII, encoding: 'ascii' });
    expect(decodeUuiHeader(`"00${hexOf('ref=Q')}";encoding="hex";purpose="isdn-uui"`)).toEqual({
      data: 'ref=Q',
      encoding: 'hex',
      protocolDiscriminator: '00',
      purpose: 'isdn-uui',
    });
    expect(decodeUuiHeader('"a=\\"b\\""')?.data).toBe('a="b"');
  });

  it('an unquoted ascii payload may contain ";" (only trailing known params are params)', () => {
    expect(decodeUuiHeader('acct=1;ref=2;encoding=ascii')).toEqual({ data: 'acct=1;ref=2', encoding: 'ascii' });
  });

  it('hex followed by an unknown vendor parameter', () => {
    expect(decodeUuiHeader(`00${hexOf('ref=V')};x-vendor=1;encoding=hex`)?.data).toBe('ref=V');
  });

  it('unreadable values are undefined', () => {
    expect(decodeUuiHeader('')).toBeUndefined();
    expect(decodeUuiHeader('   ')).toBeUndefined();
    expect(decodeUuiHeader('zz;encoding=hex')).toBeUndefined();
    expect(decodeUuiHeader('0;encoding=hex')).toBeUndefined();
    expect(decodeUuiHeader(`00${hexOf('a=b')}FF;encoding=hex`)).toBeUndefined(); // non-printable byte
    expect(decodeUuiHeader('abc;encoding=base64')).toBeUndefined();
    expect(decodeUuiHeader('"unterminated')).toBeUndefined();
    expect(decodeUuiHeader('"x" junk')).toBeUndefined();
    expect(decodeUuiHeader('a\u0001b;encoding=ascii')).toBeUndefined();
    expect(decodeUuiHeader('é=1')).toBeUndefined();
    expect(decodeUuiHeader('A'.repeat(5000))).toBeUndefined();
    expect(decodeUuiHeader(';encoding=hex')).toBeUndefined();
  });

  it('never throws on arbitrary input (fuzz)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 300 }), (s) => {
        const r = decodeUuiHeader(s);
        if (r !== undefined) expect(r.data).toMatch(/^[\x20-\x7E]+$/);
      }),
      { numRuns: 3000 },
    );
  });

  it('never throws on header-shaped input (fuzz)', () => {
    const piece = fc.constantFrom('00', '04', 'FF', '41', ';', '=', '"', '\\', 'encoding', 'hex', 'ascii', 'pd', ' ', 'purpose', 'a', '|');
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 40 }), (parts) => {
        decodeUuiHeader(parts.join(''));
      }),
      { numRuns: 3000 },
    );
  });
});

describe('encodeUuiHex', () => {
  it('00 + upper-case hex', () => {
    expect(encodeUuiHex('res=approved')).toBe('00' + hexOf('res=approved').toUpperCase());
    expect(encodeUuiHex('')).toBe('00');
  });

  it('round-trips through the decoder for any printable ASCII', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 200 }), (s) => {
        expect(decodeUuiHeader(`${encodeUuiHex(s)};encoding=hex`)).toEqual({ data: s, encoding: 'hex', protocolDiscriminator: '00' });
      }),
    );
  });

  it('drops characters outside printable ASCII', () => {
    expect(encodeUuiHex('a\nb\u00e9c')).toBe('00' + hexOf('abc').toUpperCase());
  });
});
