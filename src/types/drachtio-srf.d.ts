/**
 * Our typings for the part of drachtio-srf 5.x that pay-ivr uses. They replace the package's
 * bundled lib/@types/index.d.ts (an ambient module declaration wins over it), because those are
 * wrong where it matters to us, read against lib/srf.js, dialog.js, request.js, response.js and
 * drachtio-agent.js:
 * - `connect()` returns the app, not a Promise; 'connect' listeners get
 *   (err, hostport, serverVersion, localHostports), and 'close'/'reconnecting' exist;
 * - `connect()` accepts `reconnect: { retryMaxDelay, maxAttempts }` (wire-protocol.js);
 * - `get()` returns undefined for an absent header; `source_port` is a number;
 * - `Dialog.destroy()`/`request()` return Promises, `destroy` listeners get (req, reason);
 *   `local` carries the Contact we sent; `request()` takes a method, headers and a body, not a
 *   request object;
 * - `options()`, `unregisterForMessages()`, `reregisterForMessages()` exist;
 * - no `any`: what we do not use is left out rather than typed loosely.
 */
declare module 'drachtio-srf' {
  namespace Srf {
    type SipMethod =
      | 'ACK'
      | 'BYE'
      | 'CANCEL'
      | 'INFO'
      | 'INVITE'
      | 'MESSAGE'
      | 'NOTIFY'
      | 'OPTIONS'
      | 'PRACK'
      | 'PUBLISH'
      | 'REFER'
      | 'REGISTER'
      | 'SUBSCRIBE'
      | 'UPDATE';

    type Headers = Record<string, string>;

    /** A name-addr as returned by getParsedHeader('from' | 'to'). */
    interface Aor {
      name?: string;
      uri: string;
      params: Record<string, string | null>;
    }

    interface ParsedUri {
      family?: 'ipv4' | 'ipv6';
      scheme: string;
      user?: string;
      password?: string;
      host?: string;
      port?: number;
      params: Record<string, string | null>;
      headers: Record<string, string>;
    }

    interface ConnectOptions {
      host: string;
      port: number;
      secret: string;
      /** wire-protocol.js: retryMaxDelay caps the backoff; maxAttempts 1 disables reconnecting. */
      reconnect?: { retryMaxDelay?: number; maxAttempts?: number; connectTimeout?: number };
      enablePing?: boolean;
      pingInterval?: number;
    }

    /** What sip-parser/message.js gives every request and response. */
    interface SipMessage {
      readonly type: 'request' | 'response' | 'unknown';
      /** The message exactly as the server sent it (set when parsed from text). */
      readonly raw?: string;
      body: string;
      /** Header name (lower case, compact forms expanded) -> value; repeated headers joined by ','. */
      headers: Record<string, string>;
      get(name: string): string | undefined;
      has(name: string): boolean;
      getParsedHeader(name: 'from' | 'From' | 'to' | 'To'): Aor;
    }

    interface SrfRequest extends SipMessage {
      method: string;
      uri: string;
      readonly source: 'network' | 'application';
      readonly source_address: string;
      readonly source_port: number;
      /** udp | tcp | tls | ws | wss */
      readonly protocol: string;
      readonly stackTxnId: string;
      readonly stackDialogId?: string;
      readonly calledNumber: string;
      readonly callingNumber: string;
      canceled?: boolean;
      on(event: 'cancel', listener: (cancel: SipMessage) => void): this;
      once(event: 'cancel', listener: (cancel: SipMessage) => void): this;
      off(event: 'cancel', listener: (cancel: SipMessage) => void): this;
    }

    interface SendOptions {
      headers?: Headers;
      body?: string;
    }

    interface SrfResponse extends SipMessage {
      status: number;
      reason: string;
      readonly finalResponseSent: boolean;
      send(status: number, opts?: SendOptions): void;
      send(status: number, reason: string, opts?: SendOptions): void;
    }

    interface DialogEvents {
      destroy: [req: SrfRequest, reason?: string];
      ack: [req: SrfRequest];
      refresh: [req: SrfRequest];
      modify: [req: SrfRequest, res: SrfResponse];
      notify: [req: SrfRequest, res: SrfResponse];
      info: [req: SrfRequest, res: SrfResponse];
      refer: [req: SrfRequest, res: SrfResponse];
      update: [req: SrfRequest, res: SrfResponse];
      options: [req: SrfRequest, res: SrfResponse];
    }

    interface Dialog {
      /** drachtio's dialog id: "<Call-ID>;from-tag=<tag>". */
      readonly id: string;
      readonly type: 'uas' | 'uac';
      readonly sip: { callId: string; localTag: string; remoteTag: string };
      local: { uri: string; sdp: string; contact: string };
      remote: { uri: string; sdp: string };
      connected: boolean;
      /** BYE; resolves with the BYE sent once its response came, rejects when it could not be sent. */
      destroy(opts?: { headers?: Headers }): Promise<SipMessage>;
      /** re-INVITE with a new SDP (and headers, e.g. Session-Expires); resolves with the remote answer. */
      modify(sdp: string, opts?: { headers?: Headers }): Promise<string>;
      /** In-dialog request; resolves with the final response. */
      request(opts: { method: SipMethod; headers?: Headers; body?: string }): Promise<SrfResponse>;
      on<K extends keyof DialogEvents>(event: K, listener: (...args: DialogEvents[K]) => void): this;
      once<K extends keyof DialogEvents>(event: K, listener: (...args: DialogEvents[K]) => void): this;
      off<K extends keyof DialogEvents>(event: K, listener: (...args: DialogEvents[K]) => void): this;
      removeAllListeners(event?: keyof DialogEvents): this;
      listenerCount(event: keyof DialogEvents): number;
    }

    interface CreateUasOptions {
      localSdp: string;
      headers?: Headers;
    }

    interface CreateUacOptions {
      localSdp?: string;
      headers?: Headers;
      proxy?: string;
    }

    type RequestHandler = (req: SrfRequest, res: SrfResponse) => void;

    /**
     * Srf#request options. With `stackDialogId` (and the placeholder Request-URI
     * "sip:placeholder") drachtio-server sends the request inside that dialog, whichever app
     * connection created it (drachtio-agent.js _makeRequest; drachtio-server
     * sip-dialog-controller.cpp doSendRequestInsideDialog).
     */
    interface RequestOptions {
      method: SipMethod;
      headers?: Headers;
      body?: string;
      stackDialogId?: string;
    }

    /** A request we sent (request.js): 'response' for each response drachtio-server relays. */
    interface SentRequest {
      readonly stackTxnId?: string;
      on(event: 'response', listener: (res: SrfResponse) => void): unknown;
    }

    /** drachtio-server's NOK for a request, with drachtio-agent.js's code (ENODIALOG: no such dialog). */
    type RequestError = Error & { code?: string };

    interface SrfEvents {
      connect: [err: Error | null, hostport: string, serverVersion?: string | null, localHostports?: string | null];
      close: [];
      error: [err: Error];
      reconnecting: [opts: { delay: number; attempt: number }];
    }

    /** A non-2xx final response to a request we sent (lib/sip_error.js). */
    class SipError extends Error {
      constructor(status: number, reason?: string);
      readonly status: number;
      readonly reason: string;
    }
  }

  class Srf {
    constructor(tags?: string | string[]);
    /** Inbound connection to a drachtio server; events tell the outcome. Returns the app object. */
    connect(opts: Srf.ConnectOptions): unknown;
    /** Ends the connection of the current client (throws when no socket is connected). */
    disconnect(): void;
    invite(handler: Srf.RequestHandler): void;
    options(handler: Srf.RequestHandler): void;
    /** Sends remove_route for a verb registered with invite()/options(). */
    unregisterForMessages(verb: string): void;
    /** Sends route again for a verb removed with unregisterForMessages(). */
    reregisterForMessages(verb: string): void;
    createUAS(req: Srf.SrfRequest, res: Srf.SrfResponse, opts: Srf.CreateUasOptions): Promise<Srf.Dialog>;
    createUAC(uri: string, opts: Srf.CreateUacOptions): Promise<Srf.Dialog>;
    /** A request outside the Dialog objects of this connection (see RequestOptions). */
    request(uri: string, opts: Srf.RequestOptions, callback: (err: Srf.RequestError | null, req: Srf.SentRequest) => void): this;
    on<K extends keyof Srf.SrfEvents>(event: K, listener: (...args: Srf.SrfEvents[K]) => void): this;
    off<K extends keyof Srf.SrfEvents>(event: K, listener: (...args: Srf.SrfEvents[K]) => void): this;
    removeAllListeners(event?: keyof Srf.SrfEvents): this;
    static parseUri(uri: string): Srf.ParsedUri | undefined;
  }

  export default Srf;
}
