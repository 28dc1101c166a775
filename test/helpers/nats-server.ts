/**
 * A real NATS server with JetStream for the tests: started on a free
 * loopback port with a storage folder of its own, restartable on the same
 * port and storage (a server restart mid-stream), and stopped afterwards.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { trackChild } from './peer.js';

/** Why the NATS tests skip, or false when nats-server is there. */
export const natsMissing: string | false = spawnSync('nats-server', ['--version']).status === 0 ? false
  : 'nats-server is not installed (apt-get install nats-server)';

export class NatsServer {
  readonly store = mkdtempSync(path.join(tmpdir(), 'ipckit-nats-'));
  port = 0;
  #child: ChildProcess | undefined;
  /** Resolves once the running server's process is gone and its stderr closed ('close': the test helpers count it until then). */
  #closed: Promise<unknown> = Promise.resolve();

  /** `nats://127.0.0.1:PORT/name`. */
  address(name: string): string {
    return `nats://127.0.0.1:${this.port}/${name}`;
  }

  /** Starts the server (on a free port the first time, on the same one after a stop) and waits until it takes clients. */
  async start(): Promise<void> {
    const child = trackChild(spawn('nats-server', ['-js', '-a', '127.0.0.1', '-p', String(this.port === 0 ? -1 : this.port), '-sd', this.store],
      { stdio: ['ignore', 'ignore', 'pipe'] }));
    this.#child = child;
    this.#closed = once(child, 'close').catch(() => undefined);
    let log = '';
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer): void => {
        log += chunk.toString();
        const m = /Listening for client connections on 127\.0\.0\.1:(\d+)/.exec(log);
        if (m && /Server is ready/.test(log)) {
          this.port = Number(m[1]);
          child.stderr!.off('data', onData);
          child.stderr!.resume();
          resolve();
        }
      };
      child.stderr!.on('data', onData);
      child.once('exit', (code) => reject(new Error(`nats-server exited (${code}) before it was ready: ${log}`)));
    });
  }

  /** Stops the server (SIGKILL: as a crash would; JetStream's file storage keeps what it had synced). */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill(signal);
    await this.#closed;
  }

  /** Stops it and removes its storage. */
  async dispose(): Promise<void> {
    await this.kill('SIGTERM');
    rmSync(this.store, { recursive: true, force: true });
  }
}
