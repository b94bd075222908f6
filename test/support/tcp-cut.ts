import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP relay a test can cut: the app connects to it instead of its server; cut() destroys every
 * connection at once and stops listening, so the app can neither reach the server again nor send
 * a last word through it (what the server sees when the app's process dies).
 */
export class TcpCut {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();

  private constructor(server: Server) {
    this.#server = server;
  }

  static async open(listenPort: number, target: { host: string; port: number }): Promise<TcpCut> {
    const server = createServer();
    const cut = new TcpCut(server);
    server.on('connection', (a) => {
      const b = connect(target.port, target.host);
      for (const s of [a, b]) {
        cut.#sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => {
          cut.#sockets.delete(s);
          a.destroy();
          b.destroy();
        });
      }
      a.pipe(b);
      b.pipe(a);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(listenPort, '127.0.0.1', () => resolve());
    });
    return cut;
  }

  /** Every relayed connection destroyed, no new one accepted. */
  async cut(): Promise<void> {
    const closed = new Promise<void>((r) => this.#server.close(() => r()));
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
    await closed;
  }
}
