import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { PayIvrError } from '../errors.js';
import { ALLOW_LIST_ENTRY_PROBLEM, parseCidr, unmapIPv4 } from '../net/cidr.js';
import { audioStreamsToCheck } from './sdp-reader.js';

/**
 * The address ranges media may come from and go to (security.mediaRanges), for both backends.
 * Empty = not configured: then the SDP's own address is the only one RTP is taken from.
 * Configured: every SDP offer/answer address must lie in them (else 488), and RTP may also come
 * from another address in them (carrier media servers that send from a sibling address).
 */
export class MediaRanges {
  readonly #list: BlockList | undefined;
  readonly size: number;

  /** Throws ERR_CONFIG_INVALID naming security.mediaRanges.<i> for an entry that is not a CIDR. */
  constructor(entries: readonly string[]) {
    this.size = entries.length;
    if (entries.length === 0) return;
    const list = new BlockList();
    entries.forEach((entry, i) => {
      const c = parseCidr(entry);
      if (c === undefined) throw new PayIvrError('ERR_CONFIG_INVALID', `security.mediaRanges.${i}: ${ALLOW_LIST_ENTRY_PROBLEM}`);
      list.addSubnet(c.address, c.prefix, c.family);
    });
    this.#list = list;
  }

  get configured(): boolean {
    return this.#list !== undefined;
  }

  /** True when `address` (an IP literal) is in the ranges; false when none are configured or it is not an IP. */
  includes(address: string): boolean {
    if (this.#list === undefined) return false;
    const a = unmapIPv4(address);
    const family = isIPv4(a) ? 'ipv4' : isIPv6(a) ? 'ipv6' : undefined;
    if (family === undefined) return false;
    try {
      return this.#list.check(a, family);
    } catch {
      return false;
    }
  }

  /**
   * Whether an SDP may name `address` as its media address: an IP literal (a host name could
   * not be compared with where packets come from), inside the ranges when they are configured.
   * undefined (no address: hold with c=0.0.0.0) is always acceptable.
   */
  sdpAddressAllowed(address: string | undefined): boolean {
    if (address === undefined) return true;
    const a = unmapIPv4(address);
    if (!isIPv4(a) && !isIPv6(a)) return false;
    return this.#list === undefined || this.includes(a);
  }
}

/**
 * Media addresses (the c= in effect for each active m=audio section, and for each m= line that
 * cannot be read); undefined entries are holds (0.0.0.0) or sections without any c=.
 */
export function sdpMediaAddresses(sdp: string): (string | undefined)[] {
  return audioStreamsToCheck(sdp).map((x) => x.address);
}
