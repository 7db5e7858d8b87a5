/**
 * Runs the six services as separate processes and restarts one that exits, as Kubernetes would
 * (CrashLoopBackOff, but capped at 1 s so the harness measures the service, not the backoff).
 * Readiness is grpc.health.v1 over mTLS on a fresh channel per probe: a reused channel is still
 * backing off its reconnects after the process died, and would see SERVING late.
 */
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { loadPackageDefinition, type ChannelCredentials, type Client } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { ADDR_ENV, SERVICES, spawnService, type ServiceName, type ServiceProcess } from '../scripts/mesh';

type HealthClient = Client & { check(req: { service: string }, opts: { deadline: Date }, cb: (err: Error | null, res?: { status: string }) => void): void };
let HealthCtor: (new (addr: string, creds: ChannelCredentials, options?: object) => HealthClient) | undefined;

/** One grpc.health.v1 Check on a channel of its own: 'SERVING', 'NOT_SERVING', or undefined when nothing answered in time. */
export function probe(port: number, creds: ChannelCredentials, timeoutMs = 500): Promise<string | undefined> {
  HealthCtor ??= (loadPackageDefinition(loadSync(healthProtoPath, { keepCase: true, enums: String })) as any).grpc.health.v1.Health;
  // A distinct channel option keeps grpc-js from handing back a pooled subchannel that is still in backoff.
  const client = new HealthCtor!(`localhost:${port}`, creds, { 'grpc.use_local_subchannel_pool': 1 });
  return new Promise((resolve) => {
    client.check({ service: '' }, { deadline: new Date(Date.now() + timeoutMs) }, (err, res) => {
      client.close();
      resolve(err ? undefined : res?.status);
    });
  });
}

/** Something the supervisor saw happen to a service (for the report and for recovery times). */
export interface ServiceEvent {
  service: ServiceName;
  at: number;
  what: 'spawned' | 'exited';
  detail?: string;
}

export interface SupervisorOptions {
  ports: Record<ServiceName, number>;
  /** Environment every service gets. */
  env: Record<string, string>;
  perService: Partial<Record<ServiceName, Record<string, string>>>;
  /** Credentials for the health probes (an identity of the mesh CA). */
  credentials: ChannelCredentials;
  /** Each service's output goes to `<logDir>/<service>.log`. */
  logDir: string;
}

const MAX_BACKOFF_MS = 1_000;
/** A process that ran this long before it exited is healthy again: its next restart is immediate. */
const STABLE_AFTER_MS = 10_000;

export class Supervisor {
  readonly events: ServiceEvent[] = [];
  private readonly procs = new Map<ServiceName, ServiceProcess>();
  private readonly crashes = new Map<ServiceName, number>();
  private readonly spawnedAt = new Map<ServiceName, number>();
  private readonly logs = new Map<ServiceName, WriteStream>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopping = false;
  /** Lines that are not JSON log lines or are level error/fatal, the last few per service. */
  readonly errorLines = new Map<ServiceName, string[]>();

  constructor(private readonly options: SupervisorOptions) {
    mkdirSync(options.logDir, { recursive: true });
  }

  /** Spawns all six (none needs another up to start) and waits until each is SERVING. */
  async start(timeoutMs = 120_000): Promise<void> {
    for (const service of SERVICES) this.spawn(service);
    await Promise.all(SERVICES.map((s) => this.waitServing(s, timeoutMs)));
  }

  pid(service: ServiceName): number | undefined {
    const p = this.procs.get(service);
    return p && p.exitCode === undefined ? p.pid : undefined;
  }

  /** Sends `signal` to the service's current process; resolves when it has exited (the restart follows on its own). */
  async signal(service: ServiceName, signal: NodeJS.Signals): Promise<{ exitedAt: number }> {
    const proc = this.procs.get(service);
    if (!proc || proc.exitCode !== undefined) throw new Error(`${service} is not running`);
    const exited = new Promise<number>((resolve) => {
      const check = setInterval(() => {
        if (proc.exitCode !== undefined) {
          clearInterval(check);
          resolve(Date.now());
        }
      }, 5);
    });
    process.kill(proc.pid, signal);
    return { exitedAt: await exited };
  }

  /** When the service's current process was spawned (after a restart: the restart). */
  lastSpawn(service: ServiceName): number {
    return this.spawnedAt.get(service) ?? 0;
  }

  /** Polls with fresh channels until SERVING; resolves with the time it first answered SERVING. */
  async waitServing(service: ServiceName, timeoutMs: number): Promise<number> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      if ((await probe(this.options.ports[service], this.options.credentials)) === 'SERVING') return Date.now();
      if (Date.now() > until) throw new Error(`${service} not SERVING within ${timeoutMs} ms (last lines: ${(this.errorLines.get(service) ?? []).slice(-3).join(' | ') || 'none'})`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** SIGTERM to every service (they drain), SIGKILL after `graceMs`; no restarts from now on. */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    for (const t of this.timers) clearTimeout(t);
    await Promise.all([...this.procs.values()].map((p) => p.stop(graceMs)));
    await Promise.all([...this.logs.values()].map((l) => new Promise((r) => l.end(r))));
  }

  /** SIGKILL to whatever runs: for an exit handler, when there is no time to drain. */
  killAll(): void {
    this.stopping = true;
    for (const p of this.procs.values()) {
      if (p.exitCode !== undefined) continue;
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }

  private spawn(service: ServiceName): void {
    const { ports, env, perService, logDir } = this.options;
    const addresses = Object.fromEntries(SERVICES.map((s) => [ADDR_ENV[s], `localhost:${ports[s]}`]));
    let log = this.logs.get(service);
    if (!log) {
      log = createWriteStream(join(logDir, `${service}.log`), { flags: 'a' });
      this.logs.set(service, log);
    }
    const out = log;
    const startedAt = Date.now();
    this.spawnedAt.set(service, startedAt);
    const proc = spawnService(service, ports[service], { ...addresses, ...env, ...perService[service] }, {
      onLine: (line) => {
        out.write(`${line}\n`);
        if (isErrorLine(line)) {
          const lines = this.errorLines.get(service) ?? [];
          if (lines.push(line.slice(0, 400)) > 10) lines.shift();
          this.errorLines.set(service, lines);
        }
      },
      onExit: (code) => {
        const ranMs = Date.now() - startedAt;
        this.events.push({ service, at: Date.now(), what: 'exited', detail: `code ${code ?? 'signal'} after ${ranMs} ms` });
        out.write(`# chaos: process exited (${code ?? 'signal'}) after ${ranMs} ms\n`);
        if (this.stopping) return;
        const crashes = ranMs > STABLE_AFTER_MS ? 0 : (this.crashes.get(service) ?? 0) + 1;
        this.crashes.set(service, crashes);
        // The first restart is immediate (a pod's container restarts at once); later ones back off, capped.
        const delay = crashes <= 1 ? 0 : Math.min(MAX_BACKOFF_MS, 100 * 2 ** (crashes - 2));
        const timer = setTimeout(() => {
          this.timers.delete(timer);
          if (!this.stopping) this.spawn(service);
        }, delay);
        this.timers.add(timer);
      },
    });
    this.procs.set(service, proc);
    this.events.push({ service, at: startedAt, what: 'spawned' });
  }
}

function isErrorLine(line: string): boolean {
  try {
    const level = (JSON.parse(line) as { level?: unknown }).level;
    return level === 'error' || level === 'fatal' || level === 50 || level === 60;
  } catch {
    return true;
  }
}
