/**
 * In-band DTMF in a conference mix: the caller's key tones under an agent's speech (espeak-ng)
 * and comfort noise, at stated dBm0 levels, through G.711, into the in-band detector
 * (src/telephony/embedded/media/goertzel-dtmf.ts). Prints per condition and law: keys sent,
 * detected, missed, false detections; then the talk-off count on speech alone.
 *
 *   npx tsx bench/inband-mix.ts
 *
 * Needs espeak-ng and sox. The conditions: test/support/inband-mix.ts (the unit test
 * test/media-inband-mix.test.ts holds the detector to the MIX_CONDITIONS ones).
 */
import { InbandDtmfDetector } from '../src/telephony/embedded/media/goertzel-dtmf.js';
import { AGENT_SPEECH, MIX_CONDITIONS, STRESS_CONDITIONS, TALK_OFF_DBM0, agentSpeech, comfortNoise, conditionMixes, detect, mix, removeAgentSpeech, score, toPcm16, type Score } from '../test/support/inband-mix.js';
import { runWithTools } from '../test/support/tools.js';

function pad(s: string | number, n: number): string {
  return String(s).padStart(n);
}

await runWithTools(async () => {
  process.stdout.write(`in-band DTMF under a conference mix (${AGENT_SPEECH.length} agent speech clips, G.711)\n`);
  process.stdout.write(`${'condition'.padEnd(66)} law   sent  found missed false  accuracy\n`);
  for (const c of [...MIX_CONDITIONS, ...STRESS_CONDITIONS]) {
    const speech = c.speechDbm0 === undefined ? undefined : agentSpeech(c.speechDbm0);
    for (const law of ['PCMU', 'PCMA'] as const) {
      const total: Score = { sent: 0, detected: 0, missed: 0, falseKeys: 0 };
      for (const m of conditionMixes(c, speech)) {
        const s = score(m.plan, m.starts, detect(m.samples, law, new InbandDtmfDetector()));
        total.sent += s.sent;
        total.detected += s.detected;
        total.missed += s.missed;
        total.falseKeys += s.falseKeys;
      }
      const acc = (100 * total.detected) / Math.max(1, total.sent);
      process.stdout.write(`${c.name.padEnd(66)} ${law} ${pad(total.sent, 5)} ${pad(total.detected, 6)} ${pad(total.missed, 6)} ${pad(total.falseKeys, 5)} ${pad(acc.toFixed(1), 8)} %\n`);
    }
  }
  process.stdout.write('\ntalk-off: speech alone (with -55 dBm0 comfort noise), every detection is false\n');
  for (const level of TALK_OFF_DBM0) {
    const clips = agentSpeech(level);
    let seconds = 0;
    let falseKeys = 0;
    for (const law of ['PCMU', 'PCMA'] as const) {
      for (const c of clips) {
        const x = toPcm16(mix(c, comfortNoise(c.length, -55)));
        falseKeys += detect(x, law, new InbandDtmfDetector()).digits.length;
        seconds += x.length / 8000;
      }
    }
    process.stdout.write(`speech at ${pad(level, 3)} dBm0: ${seconds.toFixed(1)} s of speech (both laws), ${falseKeys} false keys\n`);
  }
  removeAgentSpeech();
  await Promise.resolve();
});
