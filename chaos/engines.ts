/**
 * The harness's own PostgreSQL, Redis and NATS JetStream: started from the machine's binaries on
 * spare ports with their data in a temp folder, so faults never touch the servers the machine
 * runs. `Engines` is the seam a clustered variant (3-node NATS, Redis with Sentinel) plugs into:
 * the faults only call what the interface offers.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createConnection } from 'node:net';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { Client } from 'pg';

/** One engine as the faults see it: where it listens, how to break it and how to bring it back. */
export interface Engine {
  /** What the services connect to (a URL). */
  readonly url: string;
  /** Whether it answers now (a TCP connect for NATS/Redis, a query for PostgreSQL). */
  ready(): Promise<boolean>;
  /** The fault: kill -9 (Redis, NATS) or `pg_ctl stop -m immediate` (PostgreSQL); resolves once it is down. */
  crash(): Promise<void>;
  /** Starts it again on the same port and data; resolves once it accepts clients. */
  start(): Promise<void>;
  /**
   * Set on one node of a replicated engine (a cluster): losing it is a failover, not an outage,
   * so the faults measure recovery from the kill, and this resolves once the survivors have
   * taken over (a new primary or leader), with a line saying what happened for the report.
   */
  failover?(): Promise<string>;
}

/** What the harness runs on. A clustered implementation adds nodes; the faults name what they kill. */
export interface Engines {
  /** A label for the report ("single": one node each). */
  readonly topology: string;
  postgres: Engine & {
    adminUrl: string;
    databaseUrl(name: string): string;
    /**
     * CHECKPOINT now: a fresh cluster has its whole creation (initdb, five CREATE DATABASE, the
     * migrations) in WAL, and a crash would replay and flush all of it, which a server that has
     * been running for a while never does. Called once the services have migrated.
     */
    checkpoint(): Promise<void>;
  };
  redis: Engine;
  /** The NATS the services connect to (a cluster gives them a comma-separated URL list). */
  nats: Engine;
  /** What every service is told about Redis and NATS (REDIS_URL or REDIS_SENTINELS…, NATS_URL, NATS_STREAM_REPLICAS). */
  readonly serviceEnv: Record<string, string>;
  /** Where each engine listens, for the progress line. */
  readonly describe: string;
  /** The fault "kill a NATS node": the only node here, one of three in a cluster. */
  natsNode(): Engine;
  /** The fault "kill the Redis primary": the only server here, the Sentinel-elected primary in a cluster. */
  redisPrimary(): Engine;
  /** Stops everything (SIGKILL where needed); the data folder stays for a post-mortem. */
  stop(): Promise<void>;
  /** The same, synchronously, for a process 'exit' handler (the harness crashed or was interrupted). */
  killNow(): void;
}

export interface EnginePorts {
  postgres: number;
  redis: number;
  nats: number;
}

const READY_MS = 20_000;

/** The newest PostgreSQL server binaries Debian installed (initdb, pg_ctl). */
export function postgresBin(): string {
  if (process.env.CHAOS_PG_BIN) return process.env.CHAOS_PG_BIN;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'pg_ctl'))) : [];
  if (versions.length === 0) throw new Error(`no PostgreSQL server binaries under ${root}: apt-get install postgresql (or set CHAOS_PG_BIN)`);
  versions.sort((a, b) => Number(b) - Number(a));
  return join(root, versions[0]!, 'bin');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves true if something accepts TCP connections on 127.0.0.1:port. */
export function tcpOpen(port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = READY_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} not ready within ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** A server process the harness owns: spawned, killed by pid, never by name. */
class OwnedProcess {
  private child: ChildProcess | undefined;
  private tail: string[] = [];
  constructor(
    private readonly name: string,
    private readonly command: string,
    private readonly args: string[],
  ) {}

  spawn(): void {
    const child = spawn(this.command, this.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on('line', (line) => {
        if (this.tail.push(line) > 20) this.tail.shift();
      });
    }
  }

  get alive(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  get lastLines(): string {
    return this.tail.slice(-5).join(' | ') || 'no output';
  }

  killNow(): void {
    if (this.alive) this.child!.kill('SIGKILL');
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child || !this.alive) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
  }

  describe(): string {
    return `${this.name}: ${this.lastLines}`;
  }
}

/**
 * redis-server on `port` with an append-only file synced every second, as a production Redis
 * keeps live band sessions across a restart (without it every band would need unlocking again
 * after the fault, and every payment would be stepped up).
 */
function redisEngine(port: number, dir: string): Engine & { killNow(): void } {
  const data = join(dir, 'redis');
  mkdirSync(data, { recursive: true });
  const proc = new OwnedProcess('redis-server', process.env.CHAOS_REDIS_BIN ?? 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', 'everysec', '--dir', data]);
  const engine = {
    killNow: () => proc.killNow(),
    url: `redis://127.0.0.1:${port}`,
    ready: () => tcpOpen(port),
    async crash() {
      await proc.kill('SIGKILL');
    },
    async start() {
      proc.spawn();
      await until(`redis-server on ${port} (${proc.describe()})`, () => tcpOpen(port));
    },
  };
  return engine;
}

/** nats-server with JetStream and its own store folder on `port`. */
function natsEngine(port: number, dir: string): Engine & { killNow(): void } {
  const store = join(dir, 'nats');
  mkdirSync(store, { recursive: true });
  const proc = new OwnedProcess('nats-server', process.env.NATS_SERVER_BIN ?? '/usr/sbin/nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', store]);
  return {
    killNow: () => proc.killNow(),
    url: `nats://127.0.0.1:${port}`,
    ready: () => tcpOpen(port),
    async crash() {
      await proc.kill('SIGKILL');
    },
    async start() {
      proc.spawn();
      await until(`nats-server on ${port} (${proc.describe()})`, () => tcpOpen(port));
    },
  };
}

/**
 * A PostgreSQL cluster in `dir/pg` (initdb once, trust auth on 127.0.0.1, fsync on so an
 * immediate stop is the crash it is in production) run by pg_ctl. Its socket goes to the data
 * folder, never /var/run/postgresql.
 */
export function postgresEngine(port: number, dir: string): Engines['postgres'] & { killNow(): void } {
  const bin = postgresBin();
  const data = join(dir, 'pg');
  const log = join(dir, 'pg', 'server.log');
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  // PostgreSQL refuses to run as root: as root, its folder belongs to the `postgres` user and
  // initdb/pg_ctl run as that user (the folders above it only need to be traversable).
  const asUser = runsAsRoot() ? postgresUser() : undefined;
  const run = (cmd: string, args: string[]) =>
    asUser ? spawnSync('runuser', ['-u', asUser.name, '--', cmd, ...args], { encoding: 'utf8' }) : spawnSync(cmd, args, { encoding: 'utf8' });
  if (asUser && !existsSync(data)) {
    mkdirSync(data, { recursive: true, mode: 0o700 });
    chownSync(data, asUser.uid, asUser.gid);
    for (let d = dir; d !== dirname(d) && d.startsWith(tmpdir()) && d !== tmpdir(); d = dirname(d)) chmodSync(d, statSync(d).mode | 0o011);
  }
  // Asynchronous: a blocked event loop would stall the load (and its deadlines) while PostgreSQL restarts.
  const pgCtl = (...args: string[]) =>
    new Promise<void>((resolve, reject) => {
      const [cmd, cmdArgs] = asUser ? ['runuser', ['-u', asUser.name, '--', join(bin, 'pg_ctl'), '-D', data, ...args]] : [join(bin, 'pg_ctl'), ['-D', data, ...args]];
      execFile(cmd as string, cmdArgs as string[], { encoding: 'utf8' }, (err, stdout, stderr) =>
        err ? reject(new Error(`pg_ctl ${args[0]}: ${(stderr || stdout || err.message).trim().split('\n').slice(-3).join(' | ')}`)) : resolve(),
      );
    });
  const ready = async () => {
    const c = new Client({ connectionString: adminUrl, connectionTimeoutMillis: 1_000 });
    c.on('error', () => undefined);
    try {
      await c.connect();
      await c.query('SELECT 1');
      return true;
    } catch {
      return false;
    } finally {
      await c.end().catch(() => undefined);
    }
  };
  if (!existsSync(join(data, 'PG_VERSION'))) {
    const init = run(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-instructions', '-E', 'UTF8']);
    if (init.status !== 0) throw new Error(`initdb: ${(init.stderr || init.stdout).trim().split('\n').slice(-3).join(' | ')}`);
    // Small: six services with pools of a few connections each, plus the harness's readers.
    const conf = join(data, 'postgresql.auto.conf');
    writeFileSync(conf, [`port = ${port}`, "listen_addresses = '127.0.0.1'", `unix_socket_directories = '${data}'`, 'fsync = on', 'max_connections = 80', 'shared_buffers = 32MB',
      // After a crash PostgreSQL fsyncs every file of the data folder before redo; syncfs (PG 14+) does it per filesystem, in one call.
      'recovery_init_sync_method = syncfs', ''].join('\n'));
    if (asUser) chownSync(conf, asUser.uid, asUser.gid);
  }
  return {
    url: adminUrl,
    adminUrl,
    databaseUrl: (name) => `postgres://postgres@127.0.0.1:${port}/${name}`,
    ready,
    killNow() {
      if (existsSync(join(data, 'postmaster.pid'))) run(join(bin, 'pg_ctl'), ['-D', data, 'stop', '-m', 'immediate']);
    },
    async checkpoint() {
      const c = new Client({ connectionString: adminUrl });
      await c.connect();
      try {
        await c.query('CHECKPOINT');
      } finally {
        await c.end();
      }
    },
    async crash() {
      await pgCtl('stop', '-m', 'immediate', '-w');
    },
    async start() {
      // -W: no pg_ctl wait (it polls coarsely); readiness is polled here every 50 ms instead.
      await pgCtl('start', '-W', '-l', log);
      await until(`PostgreSQL on ${port}`, ready);
    },
  };
}

const runsAsRoot = () => process.getuid?.() === 0;

/** The `postgres` system user Debian's package makes (PostgreSQL will not run as root). */
function postgresUser(): { name: string; uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('running as root, and there is no `postgres` user to run PostgreSQL as: run the harness as another user');
  const [, , uid, gid] = line.split(':');
  return { name: 'postgres', uid: Number(uid), gid: Number(gid) };
}

/** One node of each on `ports`, data under `dir`; started and answering when this resolves. */
export async function startSingleEngines(dir: string, ports: EnginePorts): Promise<Engines> {
  for (const [name, port] of Object.entries(ports)) {
    if (await tcpOpen(port)) throw new Error(`port ${port} (${name}) is taken: another chaos run, or pick another --port-base`);
  }
  mkdirSync(dir, { recursive: true });
  const postgres = postgresEngine(ports.postgres, dir);
  const redis = redisEngine(ports.redis, dir);
  const nats = natsEngine(ports.nats, dir);
  const started: Engine[] = [];
  const engines: Engines = {
    topology: 'single (1 PostgreSQL, 1 Redis, 1 NATS)',
    serviceEnv: { REDIS_URL: redis.url, NATS_URL: nats.url },
    describe: `PostgreSQL :${ports.postgres}, Redis :${ports.redis}, NATS :${ports.nats}`,
    postgres,
    redis,
    nats,
    natsNode: () => nats,
    redisPrimary: () => redis,
    killNow() {
      redis.killNow();
      nats.killNow();
      postgres.killNow();
    },
    async stop() {
      await redis.crash().catch(() => undefined);
      await nats.crash().catch(() => undefined);
      if (started.includes(postgres) && (await postgres.ready())) await postgres.crash().catch(() => undefined);
    },
  };
  try {
    for (const e of [postgres, redis, nats]) {
      await e.start();
      started.push(e);
    }
  } catch (err) {
    await engines.stop();
    throw err;
  }
  return engines;
}
