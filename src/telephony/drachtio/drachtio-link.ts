import Srf from 'drachtio-srf';
import type { Config } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import { TypedEmitter } from '../../util/typed-emitter.js';
import { RetryTimer, shouldLogFailure } from './retry.js';

interface DrachtioLinkEvents extends Record<string, unknown[]> {
  /** Authenticated to drachtio-server (routes registered with the Srf are being sent). */
  up: [hostport: string];
  /** The connection closed after it was up. */
  down: [reason: string];
}

const FIRST_RETRY_MS = 250;
/** A connection that neither authenticates nor fails within this time is dropped and retried. */
const AUTH_DEADLINE_MS = 15_000;

/**
 * The inbound connection to drachtio-server, kept up with our own capped backoff
 * (telephony.drachtio.maxReconnectDelayMs). drachtio-srf's built-in reconnect is switched off
 * (`maxAttempts: 1`): its timer cannot be cancelled while no socket is connected
 * (Srf#disconnect asserts on a missing socket), and each connect() builds a fresh client that
 * re-sends every route registered on the one Srf, which keeps the Srf (and the MediaServer that
 * holds it) stable across reconnects. Never throws: failures are logged and retried.
 */
export class DrachtioLink extends TypedEmitter<DrachtioLinkEvents> {
  readonly srf: Srf;
  readonly #cfg: Config['telephony']['drachtio'];
  readonly #log: Logger;
  readonly #retry: RetryTimer;
  #connected = false;
  #running = false;
  #lastError: string | undefined;
  #authRejected = false;
  #deadline: ReturnType<typeof setTimeout> | undefined;
  #closeWaiters: (() => void)[] = [];

  constructor(cfg: Config['telephony']['drachtio'], logger: Logger, srf: Srf = new Srf()) {
    super();
    this.srf = srf;
    this.#cfg = cfg;
    this.#log = logger;
    this.#retry = new RetryTimer(FIRST_RETRY_MS, cfg.maxReconnectDelayMs);
    // Srf re-emits socket errors; an 'error' without a listener would throw from the event loop.
    srf.on('error', this.#onError);
    srf.on('connect', this.#onConnect);
    srf.on('close', this.#onClose);
  }

  get connected(): boolean {
    return this.#connected;
  }

  get target(): string {
    return `${this.#cfg.host}:${this.#cfg.port}`;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#attempt();
  }

  /** Closes the connection and stops retrying; resolves once the socket closed (bounded). */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    this.#retry.cancel();
    this.#clearDeadline();
    if (this.#connected) {
      const closed = new Promise<void>((resolve) => {
        this.#closeWaiters.push(resolve);
        setTimeout(resolve, 2000).unref();
      });
      this.#disconnect();
      await closed;
    }
    this.#connected = false;
  }

  #attempt(): void {
    if (!this.#running) return;
    this.#authRejected = false;
    this.#lastError = undefined;
    this.#clearDeadline();
    this.#deadline = setTimeout(() => {
      this.#deadline = undefined;
      if (this.#connected || !this.#running) return;
      // Connected at TCP level but no answer to `authenticate` (or the SYN still pending: then
      // there is no socket to close and the OS timeout ends the attempt).
      this.#lastError = `no answer to authenticate within ${AUTH_DEADLINE_MS} ms`;
      this.#disconnect();
    }, AUTH_DEADLINE_MS);
    this.srf.connect({
      host: this.#cfg.host,
      port: this.#cfg.port,
      secret: this.#cfg.secret,
      reconnect: { maxAttempts: 1 },
    });
  }

  #clearDeadline(): void {
    if (this.#deadline) clearTimeout(this.#deadline);
    this.#deadline = undefined;
  }

  #disconnect(): void {
    try {
      this.srf.disconnect();
    } catch {
      // No socket: nothing to close.
    }
  }

  readonly #onError = (err: Error): void => {
    const code = (err as NodeJS.ErrnoException).code;
    this.#lastError = code ?? err.message;
  };

  readonly #onConnect = (err: Error | null, hostport: string, serverVersion?: string | null): void => {
    this.#clearDeadline();
    if (err) {
      // Wrong shared secret: the server keeps the socket; close it and retry (the secret may be
      // fixed on the server side without restarting us).
      this.#authRejected = true;
      this.#disconnect();
      return;
    }
    if (!this.#running) {
      this.#disconnect();
      return;
    }
    this.#connected = true;
    const failures = this.#retry.failures;
    this.#retry.reset();
    this.#log.info({ drachtio: this.target, hostport, serverVersion: serverVersion ?? undefined, afterFailures: failures }, 'connected to drachtio-server');
    this.emit('up', hostport);
  };

  readonly #onClose = (): void => {
    this.#clearDeadline();
    const waiters = this.#closeWaiters;
    this.#closeWaiters = [];
    for (const w of waiters) w();
    const wasUp = this.#connected;
    this.#connected = false;
    if (wasUp) {
      this.#log.warn({ drachtio: this.target }, 'lost the connection to drachtio-server: calls in progress end, new calls get 503 until it is back');
      this.emit('down', 'connection closed');
    }
    if (!this.#running) return;
    const delay = this.#retry.schedule(() => this.#attempt());
    const failures = this.#retry.failures;
    if (this.#authRejected) {
      this.#log.error(
        { drachtio: this.target, retryInMs: delay, attempt: failures },
        'drachtio-server rejected the shared secret (telephony.drachtio.secret / DRACHTIO_SECRET must match its <admin secret>); retrying',
      );
    } else if (shouldLogFailure(failures)) {
      const level = failures === 1 && !wasUp ? 'error' : 'warn';
      this.#log[level](
        { drachtio: this.target, error: this.#lastError, retryInMs: delay, attempt: failures },
        `drachtio-server unreachable at ${this.target} (${this.#lastError ?? 'connection closed'}); retrying with backoff up to ${this.#cfg.maxReconnectDelayMs} ms; calls are refused until it is up`,
      );
    }
  };
}
