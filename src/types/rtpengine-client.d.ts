/**
 * Typings for rtpengine-client 0.4 (ng protocol client; the package ships none), read against
 * index.js, lib/Client.js, TcpClient.js, WsClient.js, BaseClient.js and constants.js. rtpengine
 * is the media relay a deployment puts at the edge (docs/deploy.md); these types are what an
 * adapter may call. Commands resolve with rtpengine's decoded reply; they reject on a timeout
 * (when `timeout` was given) and, with `rejectOnError` (the README calls it rejectOnFailure, the
 * code reads rejectOnError), on result "error" with the error-reason string.
 */
declare module 'rtpengine-client' {
  import type { EventEmitter } from 'node:events';

  namespace rtpengine {
    /** ng options: flags, SDP, call-id, from-tag, to-tag, ... (kebab-case keys as in rtpengine's docs). */
    type NgOptions = Record<string, string | number | boolean | string[] | Record<string, unknown>>;

    interface NgResponse {
      result: string;
      'error-reason'?: string;
      warning?: string;
      sdp?: string;
      [key: string]: unknown;
    }

    interface Destination {
      port: number;
      host: string;
    }

    /** UDP client commands: the destination comes first. */
    type UdpCommand = {
      (port: number, host: string, opts?: NgOptions): Promise<NgResponse>;
      (dest: Destination, opts?: NgOptions): Promise<NgResponse>;
    };

    /** TCP / WebSocket client commands: the connection is the destination. */
    type ConnectedCommand = (opts?: NgOptions) => Promise<NgResponse>;

    type CommandName =
      | 'ping'
      | 'offer'
      | 'answer'
      | 'delete'
      | 'query'
      | 'list'
      | 'startRecording'
      | 'stopRecording'
      /** Stops forwarding DTMF toward one leg while still reporting it (agent-assisted payments). */
      | 'blockDTMF'
      | 'unblockDTMF'
      | 'playDTMF'
      | 'blockMedia'
      | 'unblockMedia'
      | 'silenceMedia'
      | 'unsilenceMedia'
      | 'startForwarding'
      | 'stopForwarding'
      | 'playMedia'
      | 'stopMedia'
      | 'statistics'
      | 'publish'
      | 'subscribeRequest'
      | 'subscribeAnswer'
      | 'unsubscribe';

    interface ClientOptions {
      localPort?: number;
      localAddress?: string;
      /** Per-command reply timeout (ms); without it a lost reply never settles. */
      timeout?: number;
      rejectOnError?: boolean;
    }

    interface BaseClient extends EventEmitter {
      readonly connected: boolean;
      close(): void;
    }

    type UdpClient = BaseClient & Record<CommandName, UdpCommand>;
    type ConnectedClient = BaseClient & Record<CommandName, ConnectedCommand>;

    interface ClientConstructor {
      new (opts?: ClientOptions): UdpClient;
      new (localPort: number, localAddress?: string): UdpClient;
    }
    interface TcpClientConstructor {
      /** `new TcpClient('host:port')` or `{ hostport, timeout }`. */
      new (hostport: string | { hostport: string; timeout?: number }): ConnectedClient;
    }
    interface WsClientConstructor {
      /** `new WsClient('ws://host:port')` or `{ url, timeout }`. */
      new (url: string | { url: string; timeout?: number }): ConnectedClient;
    }
  }

  const rtpengine: {
    Client: rtpengine.ClientConstructor;
    TcpClient: rtpengine.TcpClientConstructor;
    WsClient: rtpengine.WsClientConstructor;
    RtpEngineError: new (message?: string) => Error;
  };
  export default rtpengine;
}
