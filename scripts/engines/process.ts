import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { createInterface } from 'node:readline';

/**
 * One engine process (nats-server, redis-server) of a local cluster: started from an argv, its
 * output appended to a log file, ready once a line matches, killable with any signal and
 * restartable with the same argv. Shared by the NATS and Redis cluster helpers.
 */
export class EngineProcess {
  /** Every engine process running, so none outlives the process that started it (a crash, a killed test worker). */
  private static readonly live = new Set<ChildProcess>();
  static {
    process.once('exit', () => {
      for (const child of EngineProcess.live) child.kill('SIGKILL');
    });
  }

  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  constructor(
    readonly name: string,
    private readonly bin: string,
    private readonly args: () => string[],
    private readonly logFile: string,
    private readonly ready: RegExp,
    private readonly readyTimeoutMs = 15_000,
  ) {}

  get running(): boolean {
    return this.child !== undefined;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Spawns it and resolves once a line of its output matches `ready`; rejects (with its last lines) if it exits or times out first. */
  start(): Promise<void> {
    if (this.child) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const proc = spawn(this.bin, this.args(), { stdio: ['ignore', 'pipe', 'pipe'] });
      this.child = proc;
      EngineProcess.live.add(proc);
      this.exited = new Promise((done) => proc.once('exit', () => done()));
      proc.once('exit', () => EngineProcess.live.delete(proc));
      const log = createWriteStream(this.logFile, { flags: 'a' });
      proc.once('exit', () => log.end());
      const last: string[] = [];
      let settled = false;
      const fail = (why: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        proc.kill('SIGKILL');
        this.child = undefined;
        reject(new Error(`${this.name}: ${why}: ${last.slice(-5).join(' | ') || 'no output'} (log: ${this.logFile})`));
      };
      const timer = setTimeout(() => fail(`not ready within ${this.readyTimeoutMs} ms`), this.readyTimeoutMs);
      proc.once('exit', (code, signal) => {
        if (this.child === proc) this.child = undefined;
        fail(`exited (${code ?? signal}) while starting`);
      });
      proc.once('error', (err) => fail(err.message));
      for (const stream of [proc.stdout!, proc.stderr!]) {
        createInterface({ input: stream }).on('line', (line) => {
          log.write(`${line}\n`);
          if (settled) return;
          if (last.push(line) > 20) last.shift();
          if (this.ready.test(line)) {
            settled = true;
            clearTimeout(timer);
            resolve();
          }
        });
      }
    });
  }

  /** Ends it with `signal` (SIGKILL: no shutdown at all) and waits for it to exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const proc = this.child;
    this.child = undefined;
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      proc.kill(signal);
      await this.exited;
    }
  }
}

/** Polls `probe` every `everyMs` until it returns a value other than undefined; throws `what` after `timeoutMs`. */
export async function until<T>(probe: () => Promise<T | undefined>, timeoutMs: number, what: string, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
