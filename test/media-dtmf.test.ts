import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DtmfDigit } from '../src/domain/dtmf.js';
import { decode, encode, type G711Codec } from '../src/telephony/embedded/media/g711.js';
import { InbandDtmfDetector } from '../src/telephony/embedded/media/goertzel-dtmf.js';
import { Rfc4733Receiver } from '../src/telephony/embedded/media/rfc4733.js';
import { parseWav } from '../src/telephony/embedded/media/wav.js';
import { dtmfPcm, prng, readPcapRtp } from './support/rtp-peer.js';
import { requireTool } from './support/tools.js';

const ALL: DtmfDigit[] = ['1', '2', '3', 'A', '4', '5', '6', 'B', '7', '8', '9', 'C', '*', '0', '#', 'D'];

function ev(code: number, end: boolean, duration: number): Buffer {
  return Buffer.from([code, (end ? 0x80 : 0) | 10, duration >> 8, duration & 0xff]);
}

/** Feeds (ts, code, end, duration) packets; returns the digits reported. */
function feed(rx: Rfc4733Receiver, packets: [ts: number, code: number, end: boolean, dur: number][], ssrc = 1): string {
  let out = '';
  for (const [ts, code, end, dur] of packets) {
    const d = rx.receive(ssrc, ts, ev(code, end, dur), 0, 4);
    if (d !== undefined) out += d;
  }
  return out;
}

/** A full RFC 4733 event: start, continuations every 160, three end packets. */
function event(ts: number, code: number, frames = 5): [number, number, boolean, number][] {
  const p: [number, number, boolean, number][] = [];
  for (let i = 1; i <= frames; i++) p.push([ts, code, false, i * 160]);
  for (let i = 0; i < 3; i++) p.push([ts, code, true, frames * 160]);
  return p;
}

describe('RFC 4733 receiver', () => {
  it('maps events 0-15 to 0-9 * # A-D, one digit per event', () => {
    const rx = new Rfc4733Receiver();
    const packets = Array.from({ length: 16 }, (_, code) => event(1000 + code * 2000, code)).flat();
    expect(feed(rx, packets)).toBe('0123456789*#ABCD');
  });

  it('reports at the first packet of the event, not at its end', () => {
    const rx = new Rfc4733Receiver();
    expect(feed(rx, [[500, 7, false, 160]])).toBe('7');
    expect(feed(rx, [[500, 7, false, 320], [500, 7, true, 480]])).toBe('');
  });

  it("'44': the same digit twice is two events (two timestamps)", () => {
    const rx = new Rfc4733Receiver();
    expect(feed(rx, [...event(1000, 4), ...event(3000, 4)])).toBe('44');
  });

  it('end packets retransmitted later (even after audio) are not new digits', () => {
    const rx = new Rfc4733Receiver();
    expect(feed(rx, [...event(1000, 9), [1000, 9, true, 800], [1000, 9, true, 800]])).toBe('9');
  });

  it('lost start packet: the first packet seen may be a continuation or an end packet', () => {
    const rx = new Rfc4733Receiver();
    expect(feed(rx, [[1000, 3, false, 480], [1000, 3, true, 800]])).toBe('3');
    expect(feed(rx, [[5000, 8, true, 800], [5000, 8, true, 800], [5000, 8, true, 800]])).toBe('8');
  });

  it('late packets of an older event are ignored', () => {
    const rx = new Rfc4733Receiver();
    expect(feed(rx, [...event(1000, 1), ...event(3000, 2), [1000, 1, true, 800]])).toBe('12');
  });

  it('the same timestamp with another event code is another key', () => {
    const rx = new Rfc4733Receiver();
    expect(feed(rx, [...event(1000, 1), ...event(1000, 2)])).toBe('12');
  });

  it('a new SSRC starts over', () => {
    const rx = new Rfc4733Receiver();
    expect(feed(rx, event(1000, 5), 1) + feed(rx, event(1000, 5), 2)).toBe('55');
  });

  it('a long event split into segments (RFC 4733 §2.5.1.3) stays one digit', () => {
    const rx = new Rfc4733Receiver();
    expect(feed(rx, [[0, 6, false, 160], [0, 6, false, 0xffff], [0xffff, 6, false, 160], [0xffff, 6, true, 800]])).toBe('6');
  });

  it('timestamp wrap-around: a new event after 2^32 is still later', () => {
    const rx = new Rfc4733Receiver();
    expect(feed(rx, [...event(0xffffff00, 1), ...event(0x100, 2)])).toBe('12');
  });

  describe("SIPp's shipped pcaps (one SSRC for all, a fixed timestamp per file)", () => {
    const dir = '/usr/share/sip-tester';
    const digit = (name: string): Buffer[] => readPcapRtp(join(dir, `dtmf_2833_${name}.pcap`));
    const play = (rx: Rfc4733Receiver, packets: Buffer[]): string => {
      let out = '';
      for (const p of packets) {
        const d = rx.receive(p.readUInt32BE(8), p.readUInt32BE(4), p, 12, p.length - 12);
        if (d !== undefined) out += d;
      }
      return out;
    };

    it('one pcap: 8 packets then 3 identical end packets -> one digit', () => {
      const pkts = digit('4');
      expect(pkts.length).toBe(10);
      expect(new Set(pkts.map((p) => p.readUInt32BE(4))).size).toBe(1);
      expect(play(new Rfc4733Receiver(), pkts)).toBe('4');
    });

    it('the same pcap replayed twice looks like a retransmission: one digit', () => {
      expect(play(new Rfc4733Receiver(), [...digit('4'), ...digit('4')])).toBe('4');
    });

    it('different pcaps back to back are separate digits, even when the timestamp goes back', () => {
      const rx = new Rfc4733Receiver();
      expect(digit('1')[0]!.readUInt32BE(4)).toBeLessThan(digit('4')[0]!.readUInt32BE(4));
      expect(play(rx, [...digit('4'), ...digit('1'), ...digit('pound'), ...digit('star')])).toBe('41#*');
    });

    it('replaying a pcap already played is a retransmission, so typing a card needs generated pcaps', () => {
      const rx = new Rfc4733Receiver();
      expect(play(rx, [...digit('4'), ...digit('1'), ...digit('4')])).toBe('41');
    });
  });
});

function runDetector(samples: Int16Array, codec: G711Codec = 'PCMU'): string {
  // Through G.711 as on the wire, 160 samples per packet as the session feeds it.
  const wire = decode(codec, encode(codec, samples));
  const det = new InbandDtmfDetector();
  let out = '';
  for (let off = 0; off < wire.length; off += 160) {
    const frame = wire.subarray(off, Math.min(off + 160, wire.length));
    det.process(frame, frame.length, (d) => {
      out += d;
    });
  }
  return out;
}

function concat(parts: Int16Array[]): Int16Array {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function noise(ms: number, rms: number, rand: () => number): Int16Array {
  return Int16Array.from({ length: ms * 8 }, () => Math.round(rms * Math.sqrt(-2 * Math.log(rand())) * Math.cos(2 * Math.PI * rand())));
}

describe('in-band DTMF (Goertzel)', () => {
  it.each([
    ['clean, 100 ms', 100, undefined, 6000],
    ['40 ms tones, 20 dB SNR', 40, 20, 6000],
    ['60 ms tones, 12 dB SNR', 60, 12, 4000],
    ['quiet (-28 dBm0), 15 dB SNR', 80, 15, 1000],
  ] as const)('detects all 16 digits: %s', (_n, ms, snr, amp) => {
    for (const codec of ['PCMU', 'PCMA'] as const) {
      const rand = prng(7);
      const parts: Int16Array[] = [];
      for (const d of ALL) {
        parts.push(dtmfPcm(d, ms, { amplitude: amp, snrDb: snr }, rand));
        parts.push(noise(60, snr === undefined ? 0 : amp / 10 ** (snr / 20), rand));
      }
      expect(runDetector(concat(parts), codec)).toBe(ALL.join(''));
    }
  });

  it('a held key is one digit; the same key after a gap is another', () => {
    const gap = new Int16Array(400);
    expect(runDetector(concat([dtmfPcm('5', 1500), gap, dtmfPcm('5', 80)]))).toBe('55');
  });

  it('tones shorter than ~25 ms are not digits', () => {
    const gap = new Int16Array(400);
    expect(runDetector(concat(ALL.flatMap((d) => [dtmfPcm(d, 20), gap])))).toBe('');
  });

  it('twist beyond the limits is refused, within them accepted', () => {
    const tone = (rowAmp: number, colAmp: number): Int16Array =>
      Int16Array.from({ length: 800 }, (_, i) => Math.round(rowAmp * Math.sin((2 * Math.PI * 770 * i) / 8000) + colAmp * Math.sin((2 * Math.PI * 1336 * i) / 8000)));
    expect(runDetector(tone(6000, 6000 / 10 ** (6 / 20)))).toBe('5'); // high group 6 dB down: normal twist, fine
    expect(runDetector(tone(6000 / 10 ** (3 / 20), 6000))).toBe('5'); // 3 dB reverse twist: fine
    expect(runDetector(tone(6000, 6000 / 10 ** (12 / 20)))).toBe(''); // 12 dB: refused
    expect(runDetector(tone(6000 / 10 ** (8 / 20), 6000))).toBe(''); // 8 dB reverse: refused
  });

  it('a single tone, white noise or a chord is not a digit', () => {
    const rand = prng(3);
    const single = Int16Array.from({ length: 4000 }, (_, i) => Math.round(8000 * Math.sin((2 * Math.PI * 697 * i) / 8000)));
    const chord = Int16Array.from({ length: 4000 }, (_, i) =>
      Math.round(4000 * (Math.sin((2 * Math.PI * 697 * i) / 8000) + Math.sin((2 * Math.PI * 770 * i) / 8000) + Math.sin((2 * Math.PI * 1209 * i) / 8000))),
    );
    expect(runDetector(single)).toBe('');
    expect(runDetector(noise(2000, 6000, rand))).toBe('');
    expect(runDetector(chord)).toBe('');
  });

  describe('never fires on speech', () => {
    let dir: string;
    beforeAll(() => {
      // Extra speech beyond the prompt packs: other voices and sentences, spoken digits included.
      dir = mkdtempSync(join(tmpdir(), 'media-speech-'));
      const texts: [string, string][] = [
        ['en-us', 'Please enter your card number, followed by the pound key. One two three four five six seven eight nine zero.'],
        ['en-us+f3', 'Thank you. Your payment of one thousand two hundred and forty nine dollars has been approved.'],
        ['en-gb+m7', 'Press one to pay the full balance, or two to enter another amount. Star takes you back.'],
        ['fr+f2', 'Veuillez saisir le numéro de votre carte, suivi de la touche dièse. Zéro un deux trois quatre.'],
        ['fr+m3', 'Merci. Votre paiement de quarante-neuf euros quatre-vingt-dix a été accepté.'],
      ];
      texts.forEach(([voice, text], i) => {
        const raw = join(dir, `raw${i}.wav`);
        execFileSync(requireTool('espeak-ng'), ['-v', voice, '-s', '150', '-w', raw, text]);
        execFileSync(requireTool('sox'), [raw, '-r', '8000', '-c', '1', '-b', '16', join(dir, `speech${i}.wav`), 'norm', '-1']);
        rmSync(raw);
      });
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    const packs = ['en-US', 'fr-FR'].map((l) => join(import.meta.dirname, '..', 'prompts', l));

    it('the prompt packs exist', () => {
      for (const p of packs) {
        expect(existsSync(p)).toBe(true);
        expect(readdirSync(p).filter((f) => f.endsWith('.wav')).length).toBeGreaterThan(50);
      }
    });

    it('zero detections over every WAV of prompts/en-US and prompts/fr-FR, at +0 and +6 dB, both laws', () => {
      let files = 0;
      let seconds = 0;
      const hits: string[] = [];
      for (const p of packs) {
        for (const f of readdirSync(p).filter((x) => x.endsWith('.wav'))) {
          const w = parseWav(readFileSync(join(p, f)), f);
          const pcm = w.kind === 'linear' ? w.samples : decode(w.codec, w.data);
          const loud = pcm.map((s) => Math.max(-32768, Math.min(32767, s * 2)));
          for (const [codec, x] of [
            ['PCMU', pcm],
            ['PCMA', loud],
          ] as const) {
            const got = runDetector(x, codec);
            if (got !== '') hits.push(`${f}:${got}`);
          }
          files++;
          seconds += pcm.length / 8000;
        }
      }
      expect(files).toBeGreaterThan(100);
      expect(seconds).toBeGreaterThan(60);
      expect(hits).toEqual([]);
    });

    it('zero detections over other synthetic voices (espeak-ng)', () => {
      const files = readdirSync(dir).filter((f) => f.startsWith('speech'));
      expect(files.length).toBe(5);
      for (const f of files) {
        const w = parseWav(readFileSync(join(dir, f)));
        expect(w.kind).toBe('linear');
        if (w.kind === 'linear') expect(runDetector(w.samples)).toBe('');
      }
    });

    it('speech with a real key press in the middle: exactly that digit', () => {
      const w = parseWav(readFileSync(join(dir, 'speech0.wav')));
      if (w.kind !== 'linear') throw new Error('expected PCM');
      const half = w.samples.length >> 1;
      const mixed = concat([w.samples.subarray(0, half), new Int16Array(400), dtmfPcm('#', 80), new Int16Array(400), w.samples.subarray(half)]);
      expect(runDetector(mixed)).toBe('#');
    });
  });
});
