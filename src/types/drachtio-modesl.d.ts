/**
 * Typings for the part of drachtio-modesl 1.x (FreeSWITCH event socket client, used by
 * drachtio-fsmrf) that pay-ivr touches, read against lib/esl/Connection.js, Event.js, Server.js.
 * The package ships none. Connection is an EventEmitter2 with '::'-delimited event names such as
 * 'esl::event::auth::fail' or 'esl::event::raw::rude/rejection'.
 */
declare module 'drachtio-modesl' {
  import type { Socket } from 'node:net';

  namespace esl {
    interface EslHeader {
      name: string;
      value: string;
    }

    class Event {
      constructor(type: string, subclass?: string);
      headers: EslHeader[];
      body: string;
      type: string;
      getHeader(name: string): string | null;
      getBody(): string;
      addHeader(name: string, value: string): void;
      serialize(format?: 'plain' | 'json' | 'xml'): string;
    }

    type EventListener = (evt: Event, headers?: Record<string, string>, body?: string) => void;

    class Connection {
      /** Inbound connection: connects, answers auth/request with `auth <password>`, then 'esl::ready'. */
      constructor(host: string, port: number, password: string, onReady?: () => void);
      socket: Socket | null;
      authed: boolean;
      closing?: boolean;
      /** Inbound reconnect state (internal to 1.3.1, pinned in package.json); the timer is not cleared by disconnect(). */
      reconnectVars: { retryTimer?: ReturnType<typeof setTimeout> | null };
      connected(): boolean;
      getInfo(): Event | null;
      api(command: string, cb: (res: Event) => void): void;
      api(command: string, args: string | string[], cb: (res: Event) => void): void;
      /** Sends `exit`, marks the connection closing and ends the socket. */
      disconnect(): void;
      on(event: 'error', listener: (err: Error) => void): this;
      on(event: 'esl::end' | 'esl::ready' | 'esl::connect', listener: () => void): this;
      on(event: string, listener: EventListener): this;
      once(event: 'error', listener: (err: Error) => void): this;
      once(event: 'esl::end' | 'esl::ready', listener: () => void): this;
      once(event: string, listener: EventListener): this;
      removeAllListeners(event?: string): this;
    }
  }

  export default esl;
}
