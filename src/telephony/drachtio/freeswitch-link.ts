import { createServer } from 'node:net';
import { createRequire } from 'node:module';
import esl from 'drachtio-modesl';
import Mrf from 'drachtio-fsmrf';
import MediaServerImpl from 'drachtio-fsmrf/lib/mediaserver.js';
import type Srf from 'drachtio-srf';
import type { Config } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import { PayIvrError, describeError } from '../../errors.js';
import { TypedEmitter } from '../../util/typed-emitter.js';
import { RetryTimer, shouldLogFailure } from './retry.js';

/** drachtio-fsmrf looks the media server's SIP address up under this sofia profile name. */
export const MRF_PROFILE = 'drachtio_mrf';

export type MediaServer = Mrf.MediaServer;

interface FreeswitchLinkEvents extends Record<string, unknown[]> {
  up: [ms: MediaServer];
  down: [reason: string];
}

const FIRST_RETRY_MS = 250;

/**
 * The drachtio-fsmrf line this adapter is written against. 5.x needs a drachtio-modesl version
 * the registry does not have. We build its MediaServer (lib/mediaserver.js, not exported by the
 * package's main) ourselves because Mrf#connect keeps its connection to itself (see
 * FreeswitchLink); package.json pins the exact version for that (docs/deploy.md).
 */
export const SUPPORTED_FSMRF_MAJOR = 4;

/** Installed drachtio-fsmrf version (from its package.json). */
export function installedFsmrfVersion(): string {
  const pkg = createRequire(import.meta.url)('drachtio-fsmrf/package.json') as { version?: unknown };
  return typeof pkg.version === 'string' ? pkg.version : 'unknown';
}

/** The line `sofia status` prints for a running profile, as MediaServer parses it. */
function profileLine(profile: string): RegExp {
  return new RegExp(`^\\s*${profile}\\s.*sip:mod_sofia@((?:[0-9]{1,3}\\.){3}[0-9]{1,3}:\\d+)`, 'm');
}

/** Resolves when address:port can be bound (then frees it), rejects with the bind error. */
function probeListen(address: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(port, address, () => s.close(() => resolve()));
  });
}

type ApiCallback = (res: esl.Event) => void;

/**
 * The inbound event-socket connection, with every api callback run under a catch. MediaServer
 * parses `sofia status` in an api callback and throws from there when the profile is missing; a
 * throw inside a socket data handler would reach the process. A subclass of the package's public
 * Connection class (no patching of modesl objects): during the attempt a throw fails the attempt,
 * after it `onCallbackError` logs it.
 */
class GuardedConnection extends esl.Connection {
  onCallbackError: (e: unknown) => void = () => undefined;

  override api(command: string, argsOrCb: string | string[] | ApiCallback, maybeCb?: ApiCallback): void {
    const cb = typeof argsOrCb === 'function' ? argsOrCb : maybeCb;
    const args = typeof argsOrCb === 'function' ? '' : argsOrCb;
    super.api(command, args, (res) => {
      try {
        cb?.(res);
      } catch (e) {
        this.onCallbackError(e);
      }
    });
  }
}

/**
 * Closes an event-socket connection for good. disconnect() marks it closing, which stops
 * modesl's own (uncapped) reconnect; a reconnect timer already armed is cleared too (modesl
 * 1.3.1's reconnectVars: the version is pinned in package.json for this, docs/deploy.md).
 */
function closeConnection(conn: esl.Connection, ms: MediaServer | undefined): void {
  if (ms) {
    try {
      ms.disconnect();
    } catch {
      // MediaServer#disconnect throws when its listener never started; the steps below still run.
    }
  }
  conn.removeAllListeners();
  // EventEmitter2 with ignoreErrors: a late socket error after this has no listener and is dropped.
  try {
    conn.disconnect();
  } catch {
    // Socket already gone.
  }
  const timer = conn.reconnectVars.retryTimer;
  if (timer) clearTimeout(timer);
  conn.reconnectVars.retryTimer = null;
}

/**
 * The inbound event-socket connection to FreeSWITCH and the drachtio-fsmrf MediaServer on it.
 * We open the esl.Connection ourselves instead of calling Mrf#connect, which hides it: on a
 * wrong password Mrf#connect never settles and its connection keeps re-authenticating forever.
 * Here every attempt has a deadline (freeswitch.connectTimeoutMs), a refused password, an ACL
 * rejection, a missing `drachtio_mrf` profile or a busy listen port each give a clear message,
 * and the attempt's connection is closed before the next one (capped backoff, same cap as
 * drachtio). The MediaServer's own `sofia status` callback throws when the profile is missing;
 * we check the profile first and catch that callback too, so nothing escapes to the process.
 */
export class FreeswitchLink extends TypedEmitter<FreeswitchLinkEvents> {
  readonly #mrf: Mrf;
  readonly #cfg: Config['telephony']['freeswitch'];
  readonly #log: Logger;
  readonly #retry: RetryTimer;
  #running = false;
  #attempting = false;
  #ms: MediaServer | undefined;
  #msConn: esl.Connection | undefined;

  constructor(srf: Srf, cfg: Config['telephony']['freeswitch'], maxDelayMs: number, logger: Logger) {
    super();
    this.#mrf = new Mrf(srf);
    this.#cfg = cfg;
    this.#log = logger;
    this.#retry = new RetryTimer(FIRST_RETRY_MS, maxDelayMs);
    const version = installedFsmrfVersion();
    if (!version.startsWith(`${SUPPORTED_FSMRF_MAJOR}.`)) {
      logger.error({ version }, `drachtio-fsmrf ${version} installed; this backend needs the ${SUPPORTED_FSMRF_MAJOR}.x line`);
    }
  }

  get mediaServer(): MediaServer | undefined {
    return this.#ms;
  }

  get target(): string {
    return `${this.#cfg.host}:${this.#cfg.port}`;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    void this.#attempt();
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.#retry.cancel();
    const ms = this.#ms;
    const conn = this.#msConn;
    this.#ms = undefined;
    this.#msConn = undefined;
    if (ms && conn) closeConnection(conn, ms);
  }

  async #attempt(): Promise<void> {
    if (!this.#running || this.#attempting || this.#ms) return;
    this.#attempting = true;
    let result: { ms: MediaServer; conn: esl.Connection } | undefined;
    try {
      result = await this.#connectOnce();
    } catch (e) {
      this.#attempting = false;
      if (!this.#running) return;
      const delay = this.#retry.schedule(() => void this.#attempt());
      const failures = this.#retry.failures;
      if (shouldLogFailure(failures)) {
        this.#log[failures === 1 ? 'error' : 'warn'](
          { freeswitch: this.target, retryInMs: delay, attempt: failures },
          `FreeSWITCH not usable: ${describeError(e)}; retrying with backoff; calls are refused until it is up`,
        );
      }
      return;
    }
    this.#attempting = false;
    const { ms, conn } = result;
    if (!this.#running) {
      closeConnection(conn, ms);
      return;
    }
    this.#ms = ms;
    this.#msConn = conn;
    this.#retry.reset();
    ms.on('end', () => this.#lost(ms, conn, 'event socket closed'));
    // A MediaServer 'error' after it was ready (its 1 s readiness timer) must not throw.
    ms.on('error', (err) => this.#log.warn({ freeswitch: this.target, err: describeError(err) }, 'FreeSWITCH media server error'));
    this.#log.info(
      { freeswitch: this.target, sip: ms.sip.ipv4.udp.address, listen: `${this.#cfg.listenAddress}:${this.#cfg.listenPort}` },
      'connected to FreeSWITCH (drachtio_mrf profile running)',
    );
    this.emit('up', ms);
  }

  #lost(ms: MediaServer, conn: esl.Connection, reason: string): void {
    if (this.#ms !== ms) return;
    this.#ms = undefined;
    this.#msConn = undefined;
    // Synchronously inside modesl's 'esl::end': marks the connection closing before modesl
    // schedules its own (uncapped) reconnect.
    closeConnection(conn, ms);
    this.#log.warn({ freeswitch: this.target, reason }, 'lost FreeSWITCH: calls in progress end, new calls get 503 until it is back');
    this.emit('down', reason);
    if (this.#running) this.#retry.schedule(() => void this.#attempt());
  }

  /** One connection attempt: auth, profile check, listen-port check, MediaServer ready. */
  #connectOnce(): Promise<{ ms: MediaServer; conn: esl.Connection }> {
    const { host, port, secret, connectTimeoutMs, listenAddress, listenPort } = this.#cfg;
    return new Promise((resolve, reject) => {
      let settled = false;
      let ms: MediaServer | undefined;
      const conn = new GuardedConnection(host, port, secret);
      const fail = (why: string, cause?: unknown): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        closeConnection(conn, ms);
        if (ms) {
          const late = ms;
          // Its readiness timer may still emit 'error'; and if its listener was not up yet when we
          // closed it, close it once it is ('connect' follows the listen), or the port stays taken.
          late.on('error', () => undefined);
          late.once('connect', () => {
            try {
              late.disconnect();
            } catch {
              // Already closed.
            }
          });
        }
        reject(new PayIvrError('ERR_BACKEND_UNAVAILABLE', why, cause === undefined ? undefined : { cause }));
      };
      // A throw from an api callback fails the attempt; once it succeeded, fail() is a no-op and the line stays.
      conn.onCallbackError = (e) => {
        this.#log.warn({ err: describeError(e) }, 'FreeSWITCH api callback failed');
        fail(`media server setup failed: ${describeError(e)}`, e);
      };
      const timer = setTimeout(
        () => fail(`no usable answer from the event socket at ${host}:${port} within ${connectTimeoutMs} ms (FreeSWITCH starting, overloaded, or a firewall dropping packets)`),
        connectTimeoutMs,
      );

      conn.on('error', (err) => {
        const code = (err as NodeJS.ErrnoException).code;
        fail(`event socket at ${host}:${port} unreachable (${code ?? err.message})`);
      });
      conn.on('esl::event::auth::fail', () =>
        fail(`event socket at ${host}:${port} refused the password (telephony.freeswitch.secret / FREESWITCH_SECRET must match event_socket.conf.xml)`),
      );
      conn.on('esl::event::raw::rude/rejection', () =>
        fail(`event socket at ${host}:${port} rejected this address (apply-inbound-acl in event_socket.conf.xml)`),
      );
      conn.on('esl::end', () => fail(`event socket at ${host}:${port} closed the connection`));

      conn.once('esl::ready', () => {
        conn.api('sofia status', (res) => {
          if (settled) return;
          if (!profileLine(MRF_PROFILE).test(res.getBody())) {
            fail(`FreeSWITCH has no running sip profile named "${MRF_PROFILE}" (sip_profiles/${MRF_PROFILE}.xml; FreeSWITCH may still be starting)`);
            return;
          }
          probeListen(listenAddress, listenPort).then(
            () => {
              if (settled) return;
              ms = new MediaServerImpl(conn, this.#mrf, listenAddress, listenPort, undefined, undefined, MRF_PROFILE);
              const created = ms;
              created.once('ready', () => {
                if (settled) return;
                settled = true;
                clearTimeout(timer);
                resolve({ ms: created, conn });
              });
              created.on('error', (err) => fail(`media server did not become ready: ${err.message}`));
            },
            (err: NodeJS.ErrnoException) =>
              fail(`cannot listen on ${listenAddress}:${listenPort} for FreeSWITCH's outbound event socket (${err.code ?? err.message}); check telephony.freeswitch.listenAddress/listenPort`),
          );
        });
      });
    });
  }
}
