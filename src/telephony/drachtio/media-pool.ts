import type Srf from 'drachtio-srf';
import type { Config } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import { TypedEmitter } from '../../util/typed-emitter.js';
import { FreeswitchLink, type MediaServer } from './freeswitch-link.js';

interface MediaPoolEvents extends Record<string, unknown[]> {
  /** A media server became usable (the first one makes the pool available). */
  up: [ms: MediaServer];
  /** A media server was lost: the calls it carried must end; the others go on. */
  'server-down': [ms: MediaServer, reason: string];
}

type FreeswitchConfig = Config['telephony']['freeswitch'];

interface Member {
  readonly link: FreeswitchLink;
  ms: MediaServer | undefined;
  /** Calls this node placed on it that have not ended. */
  load: number;
}

/**
 * Several FreeSWITCH media servers behind one drachtio-server: one FreeswitchLink (event socket +
 * fsmrf MediaServer) each. A new call goes to the usable server carrying the fewest of this node's
 * calls; a server whose event socket drops is out (only its own calls end) until its link is back.
 */
export class MediaServerPool extends TypedEmitter<MediaPoolEvents> {
  readonly #members: Member[];
  readonly #log: Logger;

  constructor(srf: Srf, servers: readonly FreeswitchConfig[], maxDelayMs: number, logger: Logger) {
    super();
    this.#log = logger;
    this.#members = servers.map((cfg) => {
      const m: Member = { link: new FreeswitchLink(srf, cfg, maxDelayMs, logger), ms: undefined, load: 0 };
      m.link.on('up', (ms) => {
        m.ms = ms;
        m.load = 0;
        this.emit('up', ms);
      });
      m.link.on('down', (reason) => {
        const lost = m.ms;
        m.ms = undefined;
        m.load = 0;
        if (lost !== undefined) {
          this.#log.warn({ freeswitch: m.link.target, reason, usable: this.usableCount }, 'media server out of the pool');
          this.emit('server-down', lost, reason);
        }
      });
      return m;
    });
  }

  /** Comma-separated event-socket addresses (logs). */
  get target(): string {
    return this.#members.map((m) => m.link.target).join(', ');
  }

  get usableCount(): number {
    return this.#members.filter((m) => m.ms !== undefined).length;
  }

  /** Some media server is usable. */
  get available(): boolean {
    return this.usableCount > 0;
  }

  /** Calls placed per media server (diagnostics, tests), in configuration order. */
  get loads(): { target: string; up: boolean; load: number }[] {
    return this.#members.map((m) => ({ target: m.link.target, up: m.ms !== undefined, load: m.load }));
  }

  start(): void {
    for (const m of this.#members) m.link.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.#members.map((m) => m.link.stop()));
  }

  /**
   * The least-loaded usable media server, counted as carrying one more call until release() (or
   * its loss). Ties go to the first in configuration order. Undefined when none is usable.
   */
  acquire(): MediaServer | undefined {
    let best: Member | undefined;
    for (const m of this.#members) {
      if (m.ms !== undefined && (best === undefined || m.load < best.load)) best = m;
    }
    if (best === undefined) return undefined;
    best.load += 1;
    return best.ms;
  }

  /** The event-socket address (host:port) of a usable media server (kept with a call's dialog). */
  targetOf(ms: MediaServer): string | undefined {
    return this.#members.find((m) => m.ms === ms)?.link.target;
  }

  /** The usable media server at an event-socket address, if it is up now. */
  serverAt(target: string): MediaServer | undefined {
    return this.#members.find((m) => m.link.target === target)?.ms;
  }

  /** Whether the pool has a member at that event-socket address (up or not). */
  hasMember(target: string): boolean {
    return this.#members.some((m) => m.link.target === target);
  }

  /** A call placed by acquire() ended. Unknown or lost servers are ignored. */
  release(ms: MediaServer): void {
    const m = this.#members.find((x) => x.ms === ms);
    if (m !== undefined && m.load > 0) m.load -= 1;
  }
}
