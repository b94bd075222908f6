import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { PayIvrError } from '../../../errors.js';

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string, family: number) => void;

/**
 * Resolves literal addresses synchronously. With it, dgram's bind() completes (or emits its
 * EADDRINUSE error) before bind() returns, so a port can be allocated synchronously and is
 * known to be ours before it is written into an SDP answer. It also runs on every send(): the
 * family is fixed per socket, so no address parsing happens per packet.
 */
function literalLookup(family: 4 | 6): (address: string, opts: unknown, cb: LookupCallback) => void {
  return (address, _opts, cb) => cb(null, address, family);
}

/** Binds a UDP socket to host:port now; returns undefined when the port is taken. */
function bindUdpSync(host: string, port: number): Socket | undefined {
  const v6 = isIPv6(host);
  const sock = createSocket({ type: v6 ? 'udp6' : 'udp4', lookup: literalLookup(v6 ? 6 : 4) as never });
  let failure: NodeJS.ErrnoException | undefined;
  const onError = (e: NodeJS.ErrnoException): void => {
    failure = e;
  };
  sock.once('error', onError);
  sock.bind({ port, address: host, exclusive: true });
  sock.off('error', onError);
  if (failure !== undefined) {
    sock.close();
    if (failure.code === 'EADDRINUSE' || failure.code === 'EACCES') return undefined;
    throw new PayIvrError('ERR_INTERNAL', `cannot bind RTP socket on ${host}: ${failure.code ?? failure.message}`, { cause: failure });
  }
  try {
    sock.address();
  } catch (e) {
    sock.close();
    throw new PayIvrError('ERR_INTERNAL', 'RTP socket did not bind synchronously', { cause: e });
  }
  return sock;
}

/**
 * Even RTP ports of [min, max] (RFC 3550 §11: RTP on even ports, RTCP on the next odd one).
 * Allocation goes round-robin so a just-freed port is not handed out again at once, where late
 * packets of the previous call would still arrive.
 */
export class RtpPortPool {
  readonly #host: string;
  readonly #first: number;
  readonly #count: number;
  readonly #used = new Set<number>();
  #cursor = 0;

  constructor(host: string, min: number, max: number) {
    this.#host = host;
    this.#first = min + (min & 1);
    this.#count = max >= this.#first ? Math.floor((max - this.#first) / 2) + 1 : 0;
  }

  get capacity(): number {
    return this.#count;
  }

  get inUse(): number {
    return this.#used.size;
  }

  /** Binds the next free even port; throws ERR_RTP_PORTS_EXHAUSTED when none is left. */
  allocate(): { port: number; socket: Socket } {
    for (let tried = 0; tried < this.#count; tried++) {
      const port = this.#first + 2 * this.#cursor;
      this.#cursor = (this.#cursor + 1) % this.#count;
      if (this.#used.has(port)) continue;
      const socket = bindUdpSync(this.#host, port);
      if (socket === undefined) continue; // held by another process
      this.#used.add(port);
      return { port, socket };
    }
    throw new PayIvrError('ERR_RTP_PORTS_EXHAUSTED', `no free RTP port in ${this.#first}-${this.#first + 2 * (this.#count - 1)}`, {
      details: { inUse: this.#used.size, capacity: this.#count },
    });
  }

  release(port: number): void {
    this.#used.delete(port);
  }
}
