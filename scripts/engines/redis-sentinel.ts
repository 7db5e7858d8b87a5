import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Redis from 'ioredis';
import { EngineProcess, until } from './process';

/** redis-server from Debian's package (it runs Sentinel too, with --sentinel); REDIS_SERVER_BIN points elsewhere. */
const REDIS_SERVER_BIN = process.env.REDIS_SERVER_BIN ?? '/usr/bin/redis-server';

export interface RedisSentinelOptions {
  /**
   * First of the ports it uses on 127.0.0.1: data node i (0 starts as the primary, 1 as its
   * replica) on basePort+i, Sentinel j on basePort+10+j.
   */
  basePort: number;
  /** Where each process keeps its config (Sentinel rewrites its own) and log. */
  dir: string;
  /** The name Sentinel monitors the primary under (REDIS_MASTER_NAME); `wristpay` by default. */
  masterName?: string;
  /** Data nodes (primary + replicas); 2 by default. */
  dataNodes?: number;
  /** Sentinels; 3 by default, quorum 2. */
  sentinels?: number;
  /** Sets requirepass/masterauth on the data nodes and auth-pass in Sentinel. */
  password?: string;
  /** How long Sentinel waits before calling a silent primary down; 1000 ms by default. */
  downAfterMs?: number;
}

export interface RedisSentinel {
  masterName: string;
  /** `host:port` of every Sentinel, comma-separated: REDIS_SENTINELS for the services. */
  sentinels: string;
  /** Environment a service needs to reach Redis through Sentinel. */
  env: { REDIS_SENTINELS: string; REDIS_MASTER_NAME: string; REDIS_PASSWORD?: string };
  /** The port of each data node (index = node). */
  dataPorts: number[];
  /** The data node (index) the Sentinels name as primary now. */
  primary(): Promise<number>;
  /**
   * SIGKILLs the current primary and resolves once the Sentinels have promoted another data
   * node and it answers as primary: `{ killed, promoted, downAt, promotedAt }` (ms since epoch).
   */
  killPrimary(): Promise<{ killed: number; promoted: number; downAt: number; promotedAt: number }>;
  /** SIGKILLs data node i. */
  killNode(i: number, signal?: NodeJS.Signals): Promise<void>;
  /** Starts data node i again, as a replica of the current primary (Sentinel would make it one anyway). */
  restartNode(i: number): Promise<void>;
  /** Resolves when every running Sentinel names the same running primary and knows the other Sentinels. */
  waitForAgreement(timeoutMs?: number): Promise<number>;
  /** Stops everything (SIGKILL) and removes `dir`. */
  stop(): Promise<void>;
}

/** One command to one Redis or Sentinel on 127.0.0.1, on a connection of its own that does not retry. */
async function ask(port: number, password: string | undefined, ...args: string[]): Promise<unknown> {
  const client = new Redis({ host: '127.0.0.1', port, password, lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1_000, commandTimeout: 1_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await client.call(args[0]!, ...args.slice(1));
  } finally {
    client.disconnect();
  }
}

/**
 * A local Redis primary with a replica, watched by three Sentinels (quorum 2), as a Redis
 * deployment with Sentinel runs: for tests and the chaos harness. Data nodes keep nothing on
 * disk (a test's Redis), so a restarted node always comes back as a replica and resyncs.
 */
export async function startRedisSentinel(options: RedisSentinelOptions): Promise<RedisSentinel> {
  if (!existsSync(REDIS_SERVER_BIN)) throw new Error(`${REDIS_SERVER_BIN} is missing: apt-get install redis-server (or set REDIS_SERVER_BIN)`);
  const { basePort, dir, password } = options;
  const masterName = options.masterName ?? 'wristpay';
  const dataCount = options.dataNodes ?? 2;
  const sentinelCount = options.sentinels ?? 3;
  const quorum = Math.floor(sentinelCount / 2) + 1;
  const dataPorts = Array.from({ length: dataCount }, (_, i) => basePort + i);
  const sentinelPorts = Array.from({ length: sentinelCount }, (_, j) => basePort + 10 + j);
  mkdirSync(dir, { recursive: true });

  // Node i's replicaof: none for the first start of node 0; later set by restartNode.
  const replicaOf: Array<number | undefined> = dataPorts.map((_, i) => (i === 0 ? undefined : dataPorts[0]));
  const auth = password ? ['--requirepass', password, '--masterauth', password] : [];
  const data = dataPorts.map(
    (port, i) =>
      new EngineProcess(
        `redis-server r${i}`,
        REDIS_SERVER_BIN,
        () => [
          '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no',
          '--dbfilename', `r${i}.rdb`, ...auth,
          // Start a replica's full sync at once (the default waits 5 s for more replicas to share it).
          '--repl-diskless-sync-delay', '0',
          ...(replicaOf[i] !== undefined ? ['--replicaof', '127.0.0.1', String(replicaOf[i])] : []),
        ],
        join(dir, `r${i}.log`),
        /Ready to accept connections/,
      ),
  );
  const sentinels = sentinelPorts.map((port, j) => {
    const conf = join(dir, `s${j}.conf`);
    writeFileSync(
      conf,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `sentinel monitor ${masterName} 127.0.0.1 ${dataPorts[0]} ${quorum}`,
        ...(password ? [`sentinel auth-pass ${masterName} ${password}`] : []),
        `sentinel down-after-milliseconds ${masterName} ${options.downAfterMs ?? 1_000}`,
        `sentinel failover-timeout ${masterName} 5000`,
        `sentinel parallel-syncs ${masterName} 1`,
        '',
      ].join('\n'),
    );
    return new EngineProcess(`redis-sentinel s${j}`, REDIS_SERVER_BIN, () => [conf, '--sentinel'], join(dir, `s${j}.log`), /\+monitor master/);
  });

  const named = async (j: number): Promise<number | undefined> => {
    const addr = (await ask(sentinelPorts[j]!, undefined, 'SENTINEL', 'get-master-addr-by-name', masterName)) as [string, string] | null;
    return addr ? dataPorts.indexOf(Number(addr[1])) : undefined;
  };
  const waitForAgreement = (timeoutMs = 20_000) =>
    until(
      async () => {
        const up = sentinels.map((s, j) => (s.running ? j : -1)).filter((j) => j >= 0);
        const names = await Promise.all(up.map(named));
        const primary = names[0];
        if (primary === undefined || primary < 0 || names.some((p) => p !== primary) || !data[primary]!.running) return undefined;
        const role = (await ask(dataPorts[primary]!, password, 'ROLE')) as [string, ...unknown[]];
        if (role[0] !== 'master') return undefined;
        // Each Sentinel has found the others (needed for a quorum) and the running replicas.
        for (const j of up) {
          const peers = (await ask(sentinelPorts[j]!, undefined, 'SENTINEL', 'sentinels', masterName)) as unknown[];
          if (peers.length < up.length - 1) return undefined;
          const replicas = (await ask(sentinelPorts[j]!, undefined, 'SENTINEL', 'replicas', masterName)) as string[][];
          // A replica counts once its link to the primary is up: it has the data and streams the rest.
          const seen = replicas
            .filter((r) => !flagsOf(r).includes('s_down') && !flagsOf(r).includes('disconnected') && fieldOf(r, 'master-link-status') === 'ok')
            .map((r) => dataPorts.indexOf(Number(fieldOf(r, 'port'))));
          if (data.some((d, i) => d.running && i !== primary && !seen.includes(i))) return undefined;
        }
        return primary;
      },
      timeoutMs,
      `the Sentinels of ${masterName} to agree on a primary`,
      200,
    );

  const stopAll = () => Promise.all([...sentinels, ...data].map((p) => p.stop('SIGKILL')));
  try {
    await data[0]!.start();
    await Promise.all(data.slice(1).map((d) => d.start()));
    await Promise.all(sentinels.map((s) => s.start()));
    await waitForAgreement(30_000);
  } catch (err) {
    await stopAll();
    throw err;
  }
  const sentinelList = sentinelPorts.map((p) => `127.0.0.1:${p}`).join(',');
  return {
    masterName,
    sentinels: sentinelList,
    env: { REDIS_SENTINELS: sentinelList, REDIS_MASTER_NAME: masterName, ...(password ? { REDIS_PASSWORD: password } : {}) },
    dataPorts,
    primary: () => waitForAgreement(5_000),
    async killPrimary() {
      const killed = await waitForAgreement(5_000);
      const downAt = Date.now();
      await data[killed]!.stop('SIGKILL');
      const promoted = await until(
        async () => {
          const names = await Promise.all(sentinels.map((s, j) => (s.running ? named(j) : Promise.resolve(undefined))));
          const p = names.find((x) => x !== undefined && x >= 0 && x !== killed);
          if (p === undefined) return undefined;
          const role = (await ask(dataPorts[p]!, password, 'ROLE')) as [string];
          return role[0] === 'master' ? p : undefined;
        },
        30_000,
        `Sentinel to promote a replica after node ${killed} was killed`,
        50,
      );
      return { killed, promoted, downAt, promotedAt: Date.now() };
    },
    async killNode(i, signal = 'SIGKILL') {
      await data[i]!.stop(signal);
    },
    async restartNode(i) {
      const current = await until(async () => {
        const names = await Promise.all(sentinels.map((s, j) => (s.running ? named(j) : Promise.resolve(undefined))));
        return names.find((x) => x !== undefined && x >= 0 && x !== i);
      }, 10_000, 'a primary other than the node to restart');
      replicaOf[i] = dataPorts[current];
      await data[i]!.start();
    },
    waitForAgreement,
    async stop() {
      await stopAll();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A field of a SENTINEL replicas/sentinels entry (a flat [name, value, ...] list). */
function fieldOf(entry: string[], name: string): string | undefined {
  const i = entry.indexOf(name);
  return i >= 0 && i % 2 === 0 ? entry[i + 1] : undefined;
}

function flagsOf(entry: string[]): string[] {
  return (fieldOf(entry, 'flags') ?? '').split(',');
}
