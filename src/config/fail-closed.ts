import type { z } from 'zod';
import { isLoopbackHost } from '../net/loopback.js';
import type { Config } from './schema.js';

/**
 * The start-time checks that keep a misconfigured node from failing open: the sandbox PSP (it
 * approves any valid card number and charges nothing) and the well-known default secrets of
 * drachtio-server and FreeSWITCH are refused on a node that is reachable off this machine.
 */

/** Message of a profile without `psp`: the sandbox is never chosen for a profile that does not name it. */
export const PSP_REQUIRED = 'required: name the PSP (stripe, adyen, rest) or type: sandbox for a test node';

/** drachtio-server's and FreeSWITCH's shipped secrets: anyone who can reach the port knows them. */
export const DRACHTIO_DEFAULT_SECRET = 'cymru';
export const FREESWITCH_DEFAULT_SECRET = 'ClueCon';

type Path = (string | number)[];

/** The first listener or telephony peer of this node that is not on loopback, as "path is host". */
export function offLoopbackExposure(cfg: Config): string | undefined {
  const hosts: [Path, string][] = [];
  if (cfg.telephony.backend === 'drachtio' && !cfg.edge.enabled) {
    // drachtio-server takes the calls and FreeSWITCH the media: where they are is where callers reach.
    hosts.push([['telephony', 'drachtio', 'host'], cfg.telephony.drachtio.host]);
    [cfg.telephony.freeswitch, ...cfg.telephony.freeswitchPool].forEach((fs, i) => {
      const base: Path = i === 0 ? ['telephony', 'freeswitch'] : ['telephony', 'freeswitchPool', i - 1];
      hosts.push([[...base, 'host'], fs.host], [[...base, 'listenAddress'], fs.listenAddress]);
    });
  } else {
    // The embedded SIP stack (payment node or edge B2BUA) listens on sip.listen.
    cfg.sip.listen.forEach((l, i) => hosts.push([['sip', 'listen', i, 'host'], l.host]));
    // Agent Assist charges through the admin server's /v1/assist API.
    if (cfg.edge.enabled && cfg.edge.assist !== undefined && cfg.admin.enabled) hosts.push([['admin', 'host'], cfg.admin.host]);
  }
  const off = hosts.find(([, h]) => !isLoopbackHost(h));
  return off === undefined ? undefined : `${off[0].join('.')} is ${off[1]}`;
}

/** Names of the profiles whose PSP is the sandbox (the start warning and /ready list them). */
export function sandboxProfiles(cfg: Pick<Config, 'profiles'>): string[] {
  return Object.entries(cfg.profiles)
    .filter(([, p]) => p.psp.type === 'sandbox')
    .map(([name]) => name);
}

/** Adds an issue (with the field path) for each sandbox or default secret this node may not use. */
export function checkFailClosed(cfg: Config, ctx: z.RefinementCtx): void {
  const exposure = offLoopbackExposure(cfg);
  if (exposure !== undefined) {
    for (const [name, p] of Object.entries(cfg.profiles)) {
      if (p.psp.type !== 'sandbox' || p.psp.allowOffLoopback === true) continue;
      ctx.addIssue({
        code: 'custom',
        path: ['profiles', name, 'psp', 'type'],
        message: `sandbox approves any valid card number and charges nothing: refused on a node reachable off loopback (${exposure}); name a real PSP, or set profiles.${name}.psp.allowOffLoopback: true on a test node`,
      });
    }
  }
  const { drachtio, freeswitch, freeswitchPool } = cfg.telephony;
  if (drachtio.secret === DRACHTIO_DEFAULT_SECRET && !isLoopbackHost(drachtio.host)) {
    ctx.addIssue({
      code: 'custom',
      path: ['telephony', 'drachtio', 'secret'],
      message: `is drachtio-server's well-known default and telephony.drachtio.host (${drachtio.host}) is not a loopback address: set the <admin> secret of drachtio.conf.xml here (DRACHTIO_SECRET)`,
    });
  }
  [freeswitch, ...freeswitchPool].forEach((fs, i) => {
    if (fs.secret !== FREESWITCH_DEFAULT_SECRET || isLoopbackHost(fs.host)) return;
    const base: Path = i === 0 ? ['telephony', 'freeswitch'] : ['telephony', 'freeswitchPool', i - 1];
    ctx.addIssue({
      code: 'custom',
      path: [...base, 'secret'],
      message: `is FreeSWITCH's well-known default and ${base.join('.')}.host (${fs.host}) is not a loopback address: set the event socket password of event_socket.conf.xml here${i === 0 ? ' (FREESWITCH_SECRET)' : ''}`,
    });
  });
}
