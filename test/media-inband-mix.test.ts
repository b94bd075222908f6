import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InbandDtmfDetector } from '../src/telephony/embedded/media/goertzel-dtmf.js';
import { MIX_CONDITIONS, TALK_OFF_DBM0, agentSpeech, comfortNoise, conditionMixes, detect, mix, removeAgentSpeech, score, toPcm16 } from './support/inband-mix.js';

/**
 * In-band keys in a conference mix (a conference leg, docs/genesys.md): the caller's key tones
 * summed with an agent's speech (espeak-ng, five voices and sentences, spoken digits included)
 * and comfort noise, at realistic dBm0 levels, through G.711. The detector must find every key
 * of each mix, in order, and never report a key from speech alone (talk-off). The figures for
 * these and harder conditions: bench/inband-mix.ts.
 */

let speechAt: (dbm0: number) => Float64Array[];

beforeAll(() => {
  const cache = new Map<number, Float64Array[]>();
  speechAt = (dbm0) => {
    let s = cache.get(dbm0);
    if (s === undefined) {
      s = agentSpeech(dbm0);
      cache.set(dbm0, s);
    }
    return s;
  };
});
afterAll(() => removeAgentSpeech());

describe('in-band keys under a conference mix', () => {
  it.each(MIX_CONDITIONS.map((c) => [c.name, c] as const))('every key, no false one: %s', (_name, c) => {
    const speech = c.speechDbm0 === undefined ? undefined : speechAt(c.speechDbm0);
    for (const law of ['PCMU', 'PCMA'] as const) {
      for (const m of conditionMixes(c, speech)) {
        const got = detect(m.samples, law, new InbandDtmfDetector());
        expect({ law, digits: got.digits }).toEqual({ law, digits: m.plan.keys });
        expect(score(m.plan, m.starts, got)).toEqual({ sent: m.plan.keys.length, detected: m.plan.keys.length, missed: 0, falseKeys: 0 });
      }
    }
  });

  it.each(TALK_OFF_DBM0.map((l) => [l]))('no key from the agent speaking alone at %i dBm0 (talk-off)', (level) => {
    const clips = speechAt(level);
    expect(clips.length).toBe(5);
    for (const law of ['PCMU', 'PCMA'] as const) {
      for (const c of clips) {
        expect(c.length).toBeGreaterThan(8000 * 3);
        expect(detect(toPcm16(mix(c, comfortNoise(c.length, -55))), law, new InbandDtmfDetector()).digits).toBe('');
      }
    }
  });

  it('the mixes are what they say: speech louder than the keys makes the old single-threshold rule miss keys', () => {
    // Guards the test itself: with the clean-window rule alone (the tones holding 80% of the
    // power) the speech conditions lose keys, so the mixes really put speech under the keys.
    const strictOnly = (): InbandDtmfDetector => new InbandDtmfDetector({ mixedWindows: 10_000 });
    const c = MIX_CONDITIONS.find((x) => x.speechDbm0 !== undefined && x.plan.lowDbm0 <= -15);
    if (c?.speechDbm0 === undefined) throw new Error('no speech condition');
    let missed = 0;
    for (const m of conditionMixes(c, speechAt(c.speechDbm0))) missed += score(m.plan, m.starts, detect(m.samples, 'PCMU', strictOnly())).missed;
    expect(missed).toBeGreaterThan(0);
  });
});
