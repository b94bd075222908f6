/**
 * Typings for the part of drachtio-fsmrf 4.x that pay-ivr uses (the package ships none), read
 * against lib/mrf.js, mediaserver.js and endpoint.js. Only what we call is declared.
 *
 * `drachtio-fsmrf/lib/mediaserver.js` is declared too: we build the MediaServer ourselves on an
 * event-socket connection we own, because Mrf#connect keeps its connection to itself (it can be
 * neither timed out nor closed when FreeSWITCH refuses the password). The package's main exports
 * only Mrf (and Mrf.utils), not this class: package.json pins drachtio-fsmrf to the exact version
 * these typings were read against (docs/deploy.md).
 */
declare module 'drachtio-fsmrf' {
  import type Srf from 'drachtio-srf';
  import type esl from 'drachtio-modesl';

  namespace Mrf {
    /** Endpoint 'dtmf' payload (endpoint.js _onDtmf): the DTMF event's headers. */
    interface DtmfEvent {
      dtmf: string;
      duration?: string;
      /** FreeSWITCH DTMF-Source: RTP, INBAND_AUDIO, ENDPOINT, APP, UNKNOWN. */
      source?: string;
      ssrc?: string;
      timestamp?: string;
    }

    interface EndpointEvents {
      dtmf: [evt: DtmfEvent];
      /** FreeSWITCH ended the channel or its event socket closed. */
      destroy: [info?: { reason?: string }];
      'playback-start': [info: { file?: string }];
      'playback-stop': [info: { file?: string }];
      channelCallState: [info: { state: string }];
    }

    interface Endpoint {
      /** FreeSWITCH channel uuid. */
      readonly uuid: string;
      readonly local: { sdp?: string; mediaIp?: string; mediaPort?: string };
      readonly remote: { sdp?: string; mediaIp?: string; mediaPort?: string };
      /** The SIP dialog between drachtio and FreeSWITCH for this endpoint. */
      readonly dialog: Srf.Dialog | null;
      readonly connected: boolean;
      /** The outbound event socket FreeSWITCH opened for this channel (null once closed). */
      readonly conn: esl.Connection | null;
      /** sendmsg execute; resolves with CHANNEL_EXECUTE_COMPLETE. */
      execute(app: string, arg?: string): Promise<esl.Event>;
      /** api command over the channel's event socket; resolves with the api/response. */
      api(command: string, args?: string): Promise<esl.Event>;
      /** `set` of one channel variable. */
      set(param: string, value: string): Promise<void>;
      /** re-INVITE of the FreeSWITCH leg with a new remote SDP; resolves with FreeSWITCH's answer. */
      modify(sdp: string): Promise<string>;
      /** hangup in FreeSWITCH; resolves when FreeSWITCH's BYE arrived (never, if drachtio is gone). */
      destroy(): Promise<void>;
      on<K extends keyof EndpointEvents>(event: K, listener: (...args: EndpointEvents[K]) => void): this;
      off<K extends keyof EndpointEvents>(event: K, listener: (...args: EndpointEvents[K]) => void): this;
      removeAllListeners(event?: keyof EndpointEvents): this;
    }

    interface EndpointOptions {
      remoteSdp?: string;
      codecs?: string | string[];
      headers?: Record<string, string>;
      family?: 'ipv4' | 'ipv6';
    }

    interface MediaServerEvents {
      ready: [];
      connect: [];
      /** The inbound event socket to FreeSWITCH closed. */
      end: [];
      error: [err: Error];
      'channel::open': [info: { uuid: string; countOfConnections: number; countOfChannels: number }];
      'channel::close': [info: { uuid?: string; countOfConnections: number; countOfChannels: number }];
    }

    interface MediaServer {
      readonly address: string;
      readonly conn: esl.Connection;
      readonly sip: { ipv4: { udp: { address?: string }; dtls: { address?: string } } };
      readonly listenAddress?: string;
      readonly listenPort?: number;
      currentSessions: number;
      maxSessions: number;
      connected(): boolean;
      createEndpoint(opts?: EndpointOptions): Promise<Endpoint>;
      /** createEndpoint + createUAS (and the SRTP order: FreeSWITCH first, then the caller). */
      connectCaller(
        req: Srf.SrfRequest,
        res: Srf.SrfResponse,
        opts?: EndpointOptions,
      ): Promise<{ endpoint: Endpoint; dialog: Srf.Dialog }>;
      api(command: string): Promise<string>;
      disconnect(): void;
      on<K extends keyof MediaServerEvents>(event: K, listener: (...args: MediaServerEvents[K]) => void): this;
      once<K extends keyof MediaServerEvents>(event: K, listener: (...args: MediaServerEvents[K]) => void): this;
      off<K extends keyof MediaServerEvents>(event: K, listener: (...args: MediaServerEvents[K]) => void): this;
      removeAllListeners(event?: keyof MediaServerEvents): this;
    }

    interface MediaServerConstructor {
      new (
        conn: esl.Connection,
        mrf: Mrf,
        listenAddress: string,
        listenPort: number,
        advertisedAddress?: string,
        advertisedPort?: number,
        profile?: string,
      ): MediaServer;
    }

    interface ConnectOptions {
      address: string;
      port?: number;
      secret?: string;
      listenAddress?: string;
      listenPort?: number;
      advertisedAddress?: string;
      advertisedPort?: number;
      profile?: string;
    }
  }

  class Mrf {
    constructor(srf: Srf, opts?: { customEvents?: string[] });
    readonly srf: Srf;
    readonly localAddresses: string[];
    connect(opts: Mrf.ConnectOptions): Promise<Mrf.MediaServer>;
  }

  export default Mrf;
}

declare module 'drachtio-fsmrf/lib/mediaserver.js' {
  import type Mrf from 'drachtio-fsmrf';

  const MediaServer: Mrf.MediaServerConstructor;
  export default MediaServer;
}

declare module 'drachtio-fsmrf/lib/endpoint.js' {
  import type Srf from 'drachtio-srf';
  import type Mrf from 'drachtio-fsmrf';

  /** fsmrf's Endpoint on an outbound event-socket connection and FreeSWITCH's SIP leg; emits 'ready'. */
  const Endpoint: new (conn: unknown, dialog: Srf.Dialog, ms: Mrf.MediaServer, opts?: { customEvents?: string[] }) => Mrf.Endpoint & {
    once(event: 'ready', listener: () => void): unknown;
  };
  export default Endpoint;
}
