/**
 * A TCP relay between clients and a server on loopback, whose server-to-
 * client direction can be held: a client's requests reach the server while
 * the answers wait in the relay, as a network that loses replies for a
 * while would make them. It also records what the clients sent.
 */
import net from 'node:net';

export class TcpProxy {
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  readonly #held: (() => void)[] = [];
  #holding = false;
  /** Starts holding once a client sends this text (checked before the text is passed on). */
  #holdAfter: string | undefined;
  #upstream = '';
  port = 0;

  private constructor(target: number) {
    this.#server = net.createServer((client) => {
      const upstream = net.connect(target, '127.0.0.1');
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => {
          this.#sockets.delete(s);
          client.destroy();
          upstream.destroy();
        });
      }
      client.on('data', (chunk: Buffer) => {
        this.#upstream += chunk.toString('latin1');
        if (this.#holdAfter !== undefined && this.#upstream.includes(this.#holdAfter)) {
          this.#holdAfter = undefined;
          this.#holding = true;
        }
        upstream.write(chunk);
      });
      upstream.on('data', (chunk: Buffer) => {
        if (this.#holding) this.#held.push(() => client.write(chunk));
        else client.write(chunk);
      });
    });
  }

  /** A relay to the server on 127.0.0.1:`target`, listening on a free port. */
  static async start(target: number): Promise<TcpProxy> {
    const proxy = new TcpProxy(target);
    await new Promise<void>((resolve) => proxy.#server.listen(0, '127.0.0.1', resolve));
    proxy.port = (proxy.#server.address() as net.AddressInfo).port;
    return proxy;
  }

  /** From now on, what the server sends waits in the relay. */
  hold(): void {
    this.#holding = true;
  }

  /** Holds what the server sends from the moment a client sends `text` (a request whose answer is to be lost). */
  holdAfter(text: string): void {
    this.#holdAfter = text;
  }

  /** Passes on what was held, in order, and stops holding. */
  release(): void {
    this.#holding = false;
    for (const write of this.#held.splice(0)) write();
  }

  /** How many times `text` occurs in what the clients sent. */
  sent(text: string): number {
    return this.#upstream.split(text).length - 1;
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
