import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { credentials as grpcCredentials, loadPackageDefinition, type ChannelCredentials, type ChannelOptions, type Client } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { repoRoot } from '../platform/paths';

/** The six services in start order (none needs another up to start: gRPC channels connect lazily). */
export const SERVICES = ['device-registry', 'tokenization', 'risk', 'settlement', 'gateway', 'alerts'] as const;
export type ServiceName = (typeof SERVICES)[number];

/**
 * The services that own a database, and its name (DESIGN.md: one database per owning service).
 * `npm start` calls it `wristpay_<name>` on a shared server; the cluster (k8s/base/postgres.yaml)
 * creates it as `<name>` with a login role of the same name.
 */
export const DATABASES: Partial<Record<ServiceName, string>> = { gateway: 'payments', 'device-registry': 'registry', tokenization: 'vault', settlement: 'ledger', alerts: 'alerts' };

/** Each service's port variable, as its config.ts reads it. */
export const PORT_ENV: Record<ServiceName, string> = {
  'device-registry': 'DEVICE_REGISTRY_PORT',
  tokenization: 'TOKENIZATION_PORT',
  risk: 'RISK_PORT',
  settlement: 'SETTLEMENT_PORT',
  gateway: 'GATEWAY_PORT',
  alerts: 'ALERTS_PORT',
};

/** The address variable other services use to reach each one. */
export const ADDR_ENV: Record<ServiceName, string> = {
  'device-registry': 'DEVICE_REGISTRY_ADDR',
  tokenization: 'TOKENIZATION_ADDR',
  risk: 'RISK_ADDR',
  settlement: 'SETTLEMENT_ADDR',
  gateway: 'GATEWAY_ADDR',
  alerts: 'ALERTS_ADDR',
};

export interface MeshOptions {
  ports: Record<ServiceName, number>;
  /** The built tree whose dist/ the services run from (default: this repository; another is a git worktree of an earlier commit). */
  root?: string;
  /** Environment every service gets (NATS, Redis, TLS mode, ...). */
  env: Record<string, string>;
  /** Extra environment per service (database, certificates, secrets). */
  perService: Partial<Record<ServiceName, Record<string, string>>>;
  /** Credentials the health checks use (mTLS needs a client certificate). */
  credentials?: ChannelCredentials;
  /** Receives each line a service prints (JSON log lines, or a one-line start failure). */
  onLine?: (service: ServiceName, line: string, stream: 'stdout' | 'stderr') => void;
  startTimeoutMs?: number;
}

export interface Mesh {
  ports: Record<ServiceName, number>;
  /** Each service's process id (for CPU accounting from /proc). */
  pids: Record<ServiceName, number>;
  /** SIGTERM to every service (they drain), SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
  /** Exit codes of services that stopped on their own. */
  exited: Partial<Record<ServiceName, number | null>>;
}

/** A TCP port nothing listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * V8 heap sizes every service runs with, here and in k8s (test/k8s checks the Deployments).
 * Without them V8 sizes the heap from the machine's memory, not the pod's: on a 24 GiB host it let
 * the old generation grow to ~65 MiB of mostly garbage under load (the live heap is ~30 MiB) and
 * kept 32 MiB of young generation, so a service sat at 160-200 MiB RSS after a burst. A 256 MiB old
 * generation (half the pod's 512Mi limit) makes V8 collect sooner; an 8 MiB semi-space halves the
 * young generation. Measured in bench/README.md ("RSS").
 */
export const NODE_HEAP_FLAGS = ['--max-old-space-size=256', '--max-semi-space-size=8'] as const;

/** The compiled entry point and the telemetry preload under `root` (a built tree), as the image runs them. */
export function serviceCommand(service: ServiceName, root = repoRoot()): string[] {
  const main = join(root, 'dist', 'services', service, 'src', 'main.js');
  const telemetry = join(root, 'dist', 'platform', 'telemetry', 'register.js');
  if (!existsSync(main)) throw new Error(`${main} is missing: run \`npm run build\` first`);
  return [...NODE_HEAP_FLAGS, '--require', telemetry, main];
}

/** One service running as its own process. */
export interface ServiceProcess {
  service: ServiceName;
  port: number;
  pid: number;
  /** The exit code once it stopped (null if a signal ended it); undefined while it runs. */
  readonly exitCode: number | null | undefined;
  /** The last line it printed on stderr (a start failure's one-line message). */
  readonly lastError: string | undefined;
  /** SIGTERM (it drains), SIGKILL after `graceMs`; resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Spawns one service process (compiled entry point, telemetry preload) listening on `port`, with
 * `env` plus PATH, its port variable and OTEL_SERVICE_NAME. Several of one service are replicas.
 * `hooks.root`: the built tree to run (serviceCommand).
 */
export function spawnService(
  service: ServiceName,
  port: number,
  env: Record<string, string | undefined>,
  hooks: { onLine?: (line: string, stream: 'stdout' | 'stderr') => void; onExit?: (code: number | null) => void; root?: string } = {},
): ServiceProcess {
  const root = hooks.root ?? repoRoot();
  const child = spawn(process.execPath, serviceCommand(service, root), {
    cwd: root,
    env: { PATH: process.env.PATH, ...env, [PORT_ENV[service]]: String(port), OTEL_SERVICE_NAME: service },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let exitCode: number | null | undefined;
  let lastError: string | undefined;
  for (const stream of ['stdout', 'stderr'] as const) {
    createInterface({ input: child[stream]! }).on('line', (line) => {
      if (stream === 'stderr') lastError = line;
      hooks.onLine?.(line, stream);
    });
  }
  child.on('exit', (code) => {
    exitCode = code;
    hooks.onExit?.(code);
  });
  return {
    service,
    port,
    pid: child.pid!,
    get exitCode() {
      return exitCode;
    },
    get lastError() {
      return lastError;
    },
    stop: (graceMs = 15_000) =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
        child.once('exit', () => (clearTimeout(kill), resolve()));
        child.kill('SIGTERM');
      }),
  };
}

/** `spawnService`, resolved once it answers grpc.health.v1 SERVING; stopped and rejected if it dies or times out first. */
export async function startService(
  service: ServiceName,
  port: number,
  env: Record<string, string | undefined>,
  options: { credentials?: ChannelCredentials; startTimeoutMs?: number; onLine?: (line: string, stream: 'stdout' | 'stderr') => void; root?: string } = {},
): Promise<ServiceProcess> {
  const proc = spawnService(service, port, env, { onLine: options.onLine, root: options.root });
  try {
    await waitServing(port, options.credentials ?? grpcCredentials.createInsecure(), options.startTimeoutMs ?? 120_000, () =>
      proc.exitCode !== undefined ? `${service} exited (${proc.exitCode}): ${proc.lastError ?? 'no output'}` : undefined,
    );
  } catch (err) {
    await proc.stop(2_000);
    throw err;
  }
  return proc;
}

/**
 * Starts the six services as separate processes and resolves when each answers
 * grpc.health.v1 SERVING; rejects with the service's own one-line error if one dies first.
 */
export async function startMesh(options: MeshOptions): Promise<Mesh> {
  const exited: Mesh['exited'] = {};
  const addresses = Object.fromEntries(SERVICES.map((s) => [ADDR_ENV[s], `localhost:${options.ports[s]}`]));
  const procs = new Map<ServiceName, ServiceProcess>();
  for (const service of SERVICES) {
    procs.set(
      service,
      spawnService(service, options.ports[service], { ...addresses, ...options.env, ...options.perService[service] }, {
        root: options.root,
        onLine: (line, stream) => options.onLine?.(service, line, stream),
        onExit: (code) => {
          exited[service] = code;
        },
      }),
    );
  }
  const mesh: Mesh = {
    ports: options.ports,
    pids: Object.fromEntries([...procs].map(([service, p]) => [service, p.pid])) as Record<ServiceName, number>,
    exited,
    async stop(graceMs = 15_000) {
      await Promise.all([...procs.values()].map((p) => p.stop(graceMs)));
    },
  };
  try {
    await Promise.all(
      SERVICES.map((service) =>
        waitServing(options.ports[service], options.credentials ?? grpcCredentials.createInsecure(), options.startTimeoutMs ?? 120_000, () =>
          exited[service] !== undefined ? `${service} exited (${exited[service]}): ${procs.get(service)!.lastError ?? 'no output'}` : undefined,
        ),
      ),
    );
  } catch (err) {
    await mesh.stop(2_000);
    throw err;
  }
  return mesh;
}

type HealthClient = Client & { check(req: { service: string }, opts: { deadline: Date }, cb: (err: Error | null, res?: { status: string }) => void): void };

let HealthCtor: (new (addr: string, creds: ChannelCredentials, options?: ChannelOptions) => HealthClient) | undefined;

function healthClient(port: number, creds: ChannelCredentials): HealthClient {
  HealthCtor ??= (loadPackageDefinition(loadSync(healthProtoPath, { keepCase: true, enums: String })) as any).grpc.health.v1.Health;
  // Reconnects within 100-250 ms of a refused connection: with grpc-js's default backoff (1 s,
  // growing by 1.6x) a service that came up was seen SERVING seconds late, which inflated every
  // measured recovery time.
  return new HealthCtor!(`localhost:${port}`, creds, { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 250 });
}

const check = (client: HealthClient) =>
  new Promise<string | undefined>((resolve) => client.check({ service: '' }, { deadline: new Date(Date.now() + 1_000) }, (err, res) => resolve(err ? undefined : res?.status)));

/** One grpc.health.v1 Check of the whole server: SERVING, NOT_SERVING, or undefined when it does not answer. */
export async function healthStatus(port: number, creds: ChannelCredentials): Promise<string | undefined> {
  const client = healthClient(port, creds);
  try {
    return await check(client);
  } finally {
    client.close();
  }
}

/** Polls grpc.health.v1.Health/Check until SERVING, `died()` reports a crash, or time runs out. */
export async function waitServing(port: number, creds: ChannelCredentials, timeoutMs: number, died: () => string | undefined = () => undefined): Promise<void> {
  const client = healthClient(port, creds);
  const until = Date.now() + timeoutMs;
  try {
    for (;;) {
      const failure = died();
      if (failure) throw new Error(failure);
      if ((await check(client)) === 'SERVING') return;
      if (Date.now() > until) throw new Error(`port ${port} did not become SERVING within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    client.close();
  }
}

export const certPaths = (dir: string, name: string) => ({
  TLS_CA_FILE: join(dir, 'ca.crt'),
  TLS_CERT_FILE: join(dir, `${name}.crt`),
  TLS_KEY_FILE: join(dir, `${name}.key`),
});
