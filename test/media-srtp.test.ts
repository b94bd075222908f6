import { describe, expect, it } from 'vitest';
import { inspect } from 'node:util';
import { aesCmKeystream, deriveSrtpKeys, SdesKey, SrtpContext } from '../src/telephony/embedded/media/srtp.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// RFC 3711 Appendix B.3 master key and salt; libsrtp's srtp_driver.c uses the same pair.
const MASTER_KEY = hex('E1F97A0D3E018BE0D64FA32C06DE4139');
const MASTER_SALT = hex('0EC675AD498AFEEBB6960B3AABE6');
const KEY_AND_SALT = Buffer.concat([MASTER_KEY, MASTER_SALT]);

function rtp(seq: number, ts: number, ssrc: number, payload: Buffer, tagRoom = 10): Buffer {
  const b = Buffer.alloc(12 + payload.length + tagRoom);
  b[0] = 0x80;
  b[1] = 0;
  b.writeUInt16BE(seq, 2);
  b.writeUInt32BE(ts, 4);
  b.writeUInt32BE(ssrc, 8);
  payload.copy(b, 12);
  return b;
}

describe('SRTP: RFC 3711 Appendix B test vectors', () => {
  it('B.2 AES-CM keystream', () => {
    const ks = aesCmKeystream(hex('2B7E151628AED2A6ABF7158809CF4F3C'), hex('F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000'), 48);
    expect(ks.toString('hex').toUpperCase()).toBe('E03EAD0935C95E80E166B16DD92B4EB4' + 'D23513162B02D0F72A43A2FE4A5F97AB' + '41E95B3BB0A2E8DD477901E4FCA894C0');
  });

  it('B.2 AES-CM keystream blocks 0xFEFF..0xFF01 (16-bit block counter)', () => {
    const ks = aesCmKeystream(hex('2B7E151628AED2A6ABF7158809CF4F3C'), hex('F0F1F2F3F4F5F6F7F8F9FAFBFCFDFEFF'), 48);
    expect(ks.toString('hex').toUpperCase()).toBe('EC8CDF7398607CB0F2D21675EA9EA1E4' + '362B7C3C6773516318A077D7FC5073AE' + '6A2CC3787889374FBEB4C81B17BA6C44');
  });

  it('B.3 key derivation', () => {
    const k = deriveSrtpKeys(MASTER_KEY, MASTER_SALT);
    expect(k.cipherKey.toString('hex').toUpperCase()).toBe('C61E7A93744F39EE10734AFE3FF7A087');
    expect(k.salt.toString('hex').toUpperCase()).toBe('30CBBC08863D8C85D49DB34A9AE1');
    expect(k.authKey.toString('hex').toUpperCase()).toBe('CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4');
  });

  it('protects the libsrtp reference packet (AES_CM_128_HMAC_SHA1_80) bit for bit, and back', () => {
    const plain = hex('800f1234decafbadcafebabe' + 'ab'.repeat(16));
    const expected = hex('800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc99ea179b8dbb');
    const tx = new SrtpContext('AES_CM_128_HMAC_SHA1_80', KEY_AND_SALT);
    const out = Buffer.alloc(plain.length + 10);
    expect(tx.protect(plain, plain.length, 12, out)).toBe(expected.length);
    expect(out.equals(expected)).toBe(true);
    const rx = new SrtpContext('AES_CM_128_HMAC_SHA1_80', KEY_AND_SALT);
    const copy = Buffer.from(expected);
    expect(rx.unprotect(copy, copy.length, 12)).toBe(plain.length);
    expect(copy.subarray(0, plain.length).equals(plain)).toBe(true);
  });

  it('AES_CM_128_HMAC_SHA1_32: the same ciphertext, the tag is the first 4 bytes of the 80-bit one', () => {
    const plain = hex('800f1234decafbadcafebabe' + 'ab'.repeat(16));
    const ref80 = hex('800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc99ea179b8dbb');
    const tx = new SrtpContext('AES_CM_128_HMAC_SHA1_32', KEY_AND_SALT);
    const out = Buffer.alloc(plain.length + 4);
    expect(tx.protect(plain, plain.length, 12, out)).toBe(plain.length + 4);
    expect(out.equals(ref80.subarray(0, plain.length + 4))).toBe(true);
    const rx = new SrtpContext('AES_CM_128_HMAC_SHA1_32', KEY_AND_SALT);
    expect(rx.unprotect(Buffer.from(out), out.length, 12)).toBe(plain.length);
    // The 80-bit packet is not a valid 32-bit one (the tag sits elsewhere).
    expect(new SrtpContext('AES_CM_128_HMAC_SHA1_32', KEY_AND_SALT).unprotect(Buffer.from(ref80), ref80.length, 12)).toBe(-1);
  });

  it('refuses every truncation of the reference packet', () => {
    const expected = hex('800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc99ea179b8dbb');
    for (let len = expected.length - 1; len > 0; len--) {
      const rx = new SrtpContext('AES_CM_128_HMAC_SHA1_80', KEY_AND_SALT);
      expect(rx.unprotect(Buffer.from(expected.subarray(0, len)), len, 12)).toBe(-1);
    }
  });
});

describe('SRTP contexts', () => {
  const payload = Buffer.alloc(160, 0x5a);

  it('round trip over a sequence wrap (ROC 0 -> 1), both suites', () => {
    for (const suite of ['AES_CM_128_HMAC_SHA1_80', 'AES_CM_128_HMAC_SHA1_32'] as const) {
      const tx = new SrtpContext(suite, KEY_AND_SALT);
      const rx = new SrtpContext(suite, KEY_AND_SALT);
      let seq = 65530;
      for (let i = 0; i < 12; i++) {
        const p = rtp(seq, i * 160, 0x11223344, payload);
        const n = tx.protect(p, 172, 12, p);
        expect(n).toBe(172 + tx.tagLength);
        expect(p.subarray(12, 172).equals(payload)).toBe(false);
        expect(rx.unprotect(p, n, 12)).toBe(172);
        expect(p.subarray(12, 172).equals(payload)).toBe(true);
        seq = (seq + 1) & 0xffff;
      }
    }
  });

  it('after the wrap the keystream differs from the one before it (ROC is in the IV)', () => {
    const tx = new SrtpContext('AES_CM_128_HMAC_SHA1_80', KEY_AND_SALT);
    const first = rtp(5, 0, 1, payload);
    tx.protect(first, 172, 12, first);
    for (let s = 6; s <= 65535; s += 4000) tx.protect(rtp(s, 0, 1, payload), 172, 12, rtp(s, 0, 1, payload));
    tx.protect(rtp(65535, 0, 1, payload), 172, 12, rtp(65535, 0, 1, payload));
    const again = rtp(5, 0, 1, payload);
    tx.protect(again, 172, 12, again);
    expect(again.subarray(12, 172).equals(first.subarray(12, 172))).toBe(false);
  });

  it('drops replays, tampered packets and packets under the wrong key', () => {
    const tx = new SrtpContext('AES_CM_128_HMAC_SHA1_80', KEY_AND_SALT);
    const rx = new SrtpContext('AES_CM_128_HMAC_SHA1_80', KEY_AND_SALT);
    const p = rtp(100, 0, 7, payload);
    const n = tx.protect(p, 172, 12, p);
    const replay = Buffer.from(p);
    const tampered = Buffer.from(p);
    tampered[20] = (tampered[20] as number) ^ 1;
    expect(rx.unprotect(tampered, n, 12)).toBe(-1);
    expect(rx.unprotect(p, n, 12)).toBe(172);
    expect(rx.unprotect(replay, n, 12)).toBe(-1);
    const other = new SrtpContext('AES_CM_128_HMAC_SHA1_80', Buffer.alloc(30, 1));
    const q = rtp(101, 0, 7, payload);
    const m = other.protect(q, 172, 12, q);
    expect(rx.unprotect(q, m, 12)).toBe(-1);
  });

  it('accepts reordered packets inside the window, refuses those too old', () => {
    const tx = new SrtpContext('AES_CM_128_HMAC_SHA1_80', KEY_AND_SALT);
    const rx = new SrtpContext('AES_CM_128_HMAC_SHA1_80', KEY_AND_SALT);
    const pkts = Array.from({ length: 300 }, (_, i) => {
      const p = rtp(i, i * 160, 9, payload);
      return { p, n: tx.protect(p, 172, 12, p) };
    });
    const at = (i: number): number => rx.unprotect(pkts[i]!.p, pkts[i]!.n, 12);
    expect(at(10)).toBe(172);
    expect(at(9)).toBe(172); // late but in the window
    expect(at(250)).toBe(172);
    expect(at(11)).toBe(-1); // 239 behind: outside the 128-packet window
    expect(at(200)).toBe(172);
  });
});

describe('SRTP with an MKI (RFC 3711 §3.1) and the SDES key', () => {
  const payload = Buffer.alloc(160, 0x33);
  const mkiKey = new SdesKey(KEY_AND_SALT, { bytes: Buffer.from([0, 0, 1, 2]) });

  it('the MKI sits between payload and tag, unauthenticated; the receiver checks and strips it', () => {
    const tx = new SrtpContext('AES_CM_128_HMAC_SHA1_80', mkiKey);
    const rx = new SrtpContext('AES_CM_128_HMAC_SHA1_80', mkiKey);
    expect(tx.tagLength).toBe(14);
    const p = rtp(1, 0, 5, payload, 14);
    const n = tx.protect(p, 172, 12, p);
    expect(n).toBe(186);
    expect(p.subarray(172, 176).toString('hex')).toBe('00000102');
    // Same ciphertext and tag as without MKI: the tag does not cover the MKI.
    const plainTx = new SrtpContext('AES_CM_128_HMAC_SHA1_80', KEY_AND_SALT);
    const q = rtp(1, 0, 5, payload);
    plainTx.protect(q, 172, 12, q);
    expect(Buffer.concat([p.subarray(0, 172), p.subarray(176, 186)]).equals(q.subarray(0, 182))).toBe(true);
    const wrongMki = Buffer.from(p);
    wrongMki[175] = 3;
    expect(rx.unprotect(wrongMki, n, 12)).toBe(-1);
    expect(rx.unprotect(p, n, 12)).toBe(172);
    expect(p.subarray(12, 172).equals(payload)).toBe(true);
    // A receiver that expects no MKI cannot read it either.
    const r = rtp(2, 0, 5, payload, 14);
    const m = tx.protect(r, 172, 12, r);
    expect(new SrtpContext('AES_CM_128_HMAC_SHA1_80', KEY_AND_SALT).unprotect(r, m, 12)).toBe(-1);
  });

  it('an SDES key never prints its bytes (JSON, string, inspect)', () => {
    const k = new SdesKey(Buffer.alloc(30, 0x41));
    const shown = [JSON.stringify({ k }), String(k), inspect(k), inspect({ nested: { k } })].join(' ');
    expect(shown).toContain('[SDES key]');
    expect(shown).not.toMatch(/QUFB|65,65|4141|AAAA/);
    expect(() => new SdesKey(Buffer.alloc(29))).toThrow(RangeError);
  });
});
