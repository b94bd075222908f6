import { posix } from 'node:path';
import { PayIvrError } from '../../errors.js';

/**
 * What FreeSWITCH is told to play: files under the prompts path FreeSWITCH reads
 * (telephony.freeswitch.promptsDir, same layout as ./prompts: <language>/<id>.wav, ids may have
 * sub-folders). Several fragments go in one `file_string://` so FreeSWITCH plays them
 * back-to-back and one uuid_break stops them all; a loop is `endless_playback`.
 * Fragment ids are validated (no "..", no absolute paths, no FreeSWITCH separators) and never
 * put in an error message: card readbacks are fragments too.
 */

const LANGUAGE = /^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$/;
const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

export function promptFile(promptsDir: string, language: string, id: string): string {
  if (!LANGUAGE.test(language)) throw new PayIvrError('ERR_PROMPT_MISSING', 'invalid prompt language code');
  const segments = id.split('/');
  if (segments.length === 0 || segments.some((s) => !SEGMENT.test(s) || s.includes('..'))) {
    throw new PayIvrError('ERR_PROMPT_MISSING', 'invalid prompt fragment id');
  }
  return posix.join(promptsDir, language, ...segments) + '.wav';
}

interface PlaybackCommand {
  app: 'playback' | 'endless_playback';
  arg: string;
}

export function playbackCommand(files: readonly string[], loop: boolean): PlaybackCommand {
  const arg = files.length === 1 ? (files[0] as string) : `file_string://${files.join('!')}`;
  return { app: loop ? 'endless_playback' : 'playback', arg };
}

/**
 * What keeps RTP going while no prompt plays (Genesys hangs up on idle RTP): an endless
 * silence_stream (mod_tone_stream) with send_silence_when_idle's level (-1: digital silence,
 * N: noise at 32768/N). The variable itself is no use here: the outbound socket parks the channel
 * as soon as it connects, before the caller's ACK, and the park loop reads it only then. A prompt
 * sent while the filler plays runs on top of it (FreeSWITCH runs queued applications from inside
 * a playback), and the filler goes on when the prompt ends or is broken.
 */
export function idleFillerCommand(silenceWhenIdle: string): PlaybackCommand {
  const n = Number(silenceWhenIdle);
  return { app: 'playback', arg: Number.isInteger(n) && n > 0 ? `silence_stream://-1,${n}` : 'silence_stream://-1' };
}
