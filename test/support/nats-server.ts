import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { freePort } from '../../scripts/mesh';

/** nats-server from Debian's package; NATS_SERVER_BIN points elsewhere. */
const NATS_SERVER_BIN = process.env.NATS_SERVER_BIN ?? '/usr/sbin/nats-server';
const READY_TIMEOUT_MS = 10_000;

export interface NatsServer {
  url: string;
  port: number;
  /** The JetStream store directory, kept across stop/start. */
  storeDir: string;
  /** Whether the server process is running now. */
  readonly running: boolean;
  /** Ends the server with `signal` (SIGKILL: no shutdown at all, its clients just lose the connection) and waits for it to exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port and store; resolves once it accepts clients. */
  start(): Promise<void>;
  /** Stops it and removes its store directory. */
  close(): Promise<void>;
}

/**
 * A nats-server with JetStream of the test's own (free port, temp store dir), so a test can stop
 * and restart NATS under a running mesh without touching the machine's server on 4222.
 */
export async function startNatsServer(): Promise<NatsServer> {
  if (!existsSync(NATS_SERVER_BIN)) throw new Error(`${NATS_SERVER_BIN} is missing: apt-get install nats-server (or set NATS_SERVER_BIN)`);
  const port = await freePort();
  const storeDir = mkdtempSync(join(tmpdir(), 'wp-nats-'));
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const start = () =>
    new Promise<void>((resolve, reject) => {
      const proc = spawn(NATS_SERVER_BIN, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir], { stdio: ['ignore', 'ignore', 'pipe'] });
      child = proc;
      exited = new Promise((done) => proc.once('exit', () => done()));
      const lines: string[] = [];
      const timer = setTimeout(() => fail(`nats-server on port ${port} not ready within ${READY_TIMEOUT_MS} ms`), READY_TIMEOUT_MS);
      const fail = (why: string) => {
        clearTimeout(timer);
        proc.kill('SIGKILL');
        child = undefined;
        reject(new Error(`${why}: ${lines.slice(-5).join(' | ') || 'no output'}`));
      };
      const died = (code: number | null, signal: NodeJS.Signals | null) => fail(`nats-server exited (${code ?? signal}) while starting`);
      proc.once('exit', died);
      // It logs "Server is ready" once JetStream has recovered its store and clients are accepted.
      createInterface({ input: proc.stderr! }).on('line', (line) => {
        if (lines.push(line) > 20) lines.shift();
        if (line.includes('Server is ready')) {
          clearTimeout(timer);
          proc.off('exit', died);
          resolve();
        }
      });
    });

  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    const proc = child;
    child = undefined;
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      proc.kill(signal);
      await exited;
    }
  };

  await start().catch((err: Error) => {
    rmSync(storeDir, { recursive: true, force: true });
    throw err;
  });
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    get running() {
      return child !== undefined;
    },
    stop,
    start,
    async close() {
      await stop('SIGKILL');
      rmSync(storeDir, { recursive: true, force: true });
    },
  };
}
