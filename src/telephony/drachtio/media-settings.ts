import type { Config } from '../../config/schema.js';

/**
 * What the rtp.* settings become on FreeSWITCH. Two ways in, because FreeSWITCH reads each
 * variable at a given moment:
 * - before the channel answers (the media timeout and the SRTP suites are read when RTP starts):
 *   headers on the INVITE drachtio-fsmrf sends to FreeSWITCH, which the drachtio_mrf dialplan
 *   (docker/freeswitch/dialplan/mrf.xml) copies into channel variables before `answer`. The
 *   profile only takes INVITEs from drachtio-server, i.e. from pay-ivr, never a caller's headers;
 * - once the caller's ACK came: the idle noise, as an endless silence_stream at
 *   send_silence_when_idle's level (playback.ts idleFillerCommand; the variable set then is never read).
 */

/** The INVITE headers the dialplan reads (as ${sip_h_<name>}). */
export const FS_HEADERS = {
  /** media_timeout (ms): FreeSWITCH hangs up with MEDIA_TIMEOUT after this long without RTP. */
  mediaTimeout: 'X-Payivr-Media-Timeout',
  /** The SDES suites of rtp_secure_media_inbound, in FreeSWITCH's names, ':'-separated. */
  srtpSuites: 'X-Payivr-Srtp-Suites',
  /**
   * "plain" on a late offer (INVITE without SDP) when rtp.srtp allows RTP: FreeSWITCH then offers
   * RTP/AVP only. drachtio-srf ACKs FreeSWITCH's 3pcc 200 OK with a recvonly copy of its own offer,
   * and FreeSWITCH 1.10.12 keeps the SRTP that copy's crypto line started even after the caller's
   * RTP/AVP answer came in a re-INVITE: it sent SRTP to a plain RTP caller.
   */
  lateOffer: 'X-Payivr-Late-Offer',
} as const;

export interface FreeswitchMediaSettings {
  /** Headers of the INVITE to FreeSWITCH (never sent to the caller). */
  readonly inviteHeaders: Readonly<Record<string, string>>;
  /** send_silence_when_idle: -1 digital silence, N > 0 noise at about rtp.comfortNoiseDbov. */
  readonly silenceWhenIdle: string;
}

/**
 * FreeSWITCH's idle noise (switch_generate_sln_silence) is uniform over ±32768/N, whose RMS is
 * 32768/(N·√3); the embedded engine's comfort noise has an RMS of 32768·10^(-dBov/20). So
 * N = 10^(dBov/20)/√3, at least 1; 0 dBov is digital silence there and -1 here.
 */
export function silenceWhenIdle(comfortNoiseDbov: number): string {
  if (comfortNoiseDbov <= 0) return '-1';
  return String(Math.max(1, Math.round(10 ** (comfortNoiseDbov / 20) / Math.sqrt(3))));
}

export function freeswitchMediaSettings(rtp: Config['rtp']): FreeswitchMediaSettings {
  return {
    inviteHeaders: {
      [FS_HEADERS.mediaTimeout]: String(rtp.noRtpTimeoutMs),
      // Our suite names are FreeSWITCH's (RFC 4568 names): no translation needed.
      [FS_HEADERS.srtpSuites]: rtp.srtpSuites.join(':'),
    },
    silenceWhenIdle: silenceWhenIdle(rtp.comfortNoiseDbov),
  };
}
