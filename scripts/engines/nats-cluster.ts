import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EngineProcess, until } from './process';

/** nats-server from Debian's package; NATS_SERVER_BIN points elsewhere. */
const NATS_SERVER_BIN = process.env.NATS_SERVER_BIN ?? '/usr/sbin/nats-server';

export interface NatsClusterOptions {
  /**
   * First of the ports it uses on 127.0.0.1: node i listens for clients on basePort+i, for its
   * peers (routes) on basePort+10+i and for monitoring (HTTP /jsz) on basePort+20+i.
   */
  basePort: number;
  /** Where each node keeps its config, JetStream store (`<dir>/n<i>/`) and log (`<dir>/n<i>.log`). */
  dir: string;
  /** Nodes in the cluster; 3 by default (k8s/base/nats.yaml). */
  nodes?: number;
  /** Cluster name (the JetStream meta group's). */
  name?: string;
}

export interface NatsCluster {
  /** Every node's client URL, comma-separated: NATS_URL for the services. */
  url: string;
  urls: string[];
  /** Environment a service needs to use the cluster with streams replicated on every node. */
  env: { NATS_URL: string; NATS_STREAM_REPLICAS: string };
  nodes: number;
  running(i: number): boolean;
  /** The node (index) that is the JetStream meta leader now, by asking the running nodes. */
  metaLeader(): Promise<number>;
  /** SIGKILLs node i (no lame duck, no flush) and waits for it to exit. */
  killNode(i: number, signal?: NodeJS.Signals): Promise<void>;
  /** Starts node i again on its ports and store; resolves when the running nodes agree on a meta leader again. */
  restartNode(i: number): Promise<void>;
  /** Resolves when every running node reports the same meta leader (and, by default, sees all of its peers). */
  waitForMetaLeader(timeoutMs?: number): Promise<number>;
  /** Stops every node (SIGKILL) and removes `dir`. */
  stop(): Promise<void>;
}

interface Jsz {
  meta_cluster?: { leader?: string; cluster_size?: number; replicas?: Array<{ name: string; current: boolean; offline?: boolean }> };
}

/**
 * A local JetStream cluster of `nodes` nats-server processes (routes between all of them, each
 * with its own store), as k8s/base/nats.yaml runs it: streams can be created with
 * num_replicas = nodes and survive one node's loss. For tests and the chaos harness.
 */
export async function startNatsCluster(options: NatsClusterOptions): Promise<NatsCluster> {
  if (!existsSync(NATS_SERVER_BIN)) throw new Error(`${NATS_SERVER_BIN} is missing: apt-get install nats-server (or set NATS_SERVER_BIN)`);
  const n = options.nodes ?? 3;
  const name = options.name ?? 'wp-local';
  const { basePort, dir } = options;
  const clientPort = (i: number) => basePort + i;
  const routePort = (i: number) => basePort + 10 + i;
  const monitorPort = (i: number) => basePort + 20 + i;
  mkdirSync(dir, { recursive: true });
  const routes = Array.from({ length: n }, (_, i) => `nats://127.0.0.1:${routePort(i)}`);
  const servers = Array.from({ length: n }, (_, i) => {
    const store = join(dir, `n${i}`);
    mkdirSync(store, { recursive: true });
    const conf = join(dir, `n${i}.conf`);
    writeFileSync(
      conf,
      [
        `server_name: n${i}`,
        `listen: 127.0.0.1:${clientPort(i)}`,
        `http: 127.0.0.1:${monitorPort(i)}`,
        // Small stores: a test cluster, not a production one.
        `jetstream { store_dir: "${store}", max_memory_store: 64MB, max_file_store: 512MB }`,
        // A node's own address in `routes` is recognised and skipped, so every node gets the same list.
        `cluster { name: ${name}, listen: 127.0.0.1:${routePort(i)}, routes: [${routes.join(', ')}] }`,
        '',
      ].join('\n'),
    );
    return new EngineProcess(`nats-server n${i}`, NATS_SERVER_BIN, () => ['--config', conf], join(dir, `n${i}.log`), /Server is ready/);
  });

  const jsz = async (i: number): Promise<Jsz> => {
    const res = await fetch(`http://127.0.0.1:${monitorPort(i)}/jsz`, { signal: AbortSignal.timeout(1_000) });
    return (await res.json()) as Jsz;
  };
  const indexOf = (serverName: string | undefined) => (serverName && /^n\d+$/.test(serverName) ? Number(serverName.slice(1)) : undefined);

  const waitForMetaLeader = (timeoutMs = 20_000) =>
    until(
      async () => {
        const up = servers.map((s, i) => (s.running ? i : -1)).filter((i) => i >= 0);
        const views = await Promise.all(up.map(jsz));
        const leaders = new Set(views.map((v) => v.meta_cluster?.leader));
        if (leaders.size !== 1) return undefined;
        const leader = indexOf([...leaders][0]);
        if (leader === undefined || !servers[leader]!.running) return undefined;
        // The leader must see every running peer as current, so streams can place replicas on them.
        const current = new Set((views[up.indexOf(leader)]!.meta_cluster?.replicas ?? []).filter((r) => r.current && !r.offline).map((r) => indexOf(r.name)));
        return up.every((i) => i === leader || current.has(i)) ? leader : undefined;
      },
      timeoutMs,
      `the NATS cluster's running nodes to agree on a JetStream meta leader`,
      200,
    );

  const stopAll = async () => {
    await Promise.all(servers.map((s) => s.stop('SIGKILL')));
  };
  try {
    // All nodes together: there is no meta leader until a quorum is up.
    await Promise.all(servers.map((s) => s.start()));
    await waitForMetaLeader(30_000);
  } catch (err) {
    await stopAll();
    throw err;
  }
  const urls = servers.map((_, i) => `nats://127.0.0.1:${clientPort(i)}`);
  return {
    url: urls.join(','),
    urls,
    env: { NATS_URL: urls.join(','), NATS_STREAM_REPLICAS: String(n) },
    nodes: n,
    running: (i) => servers[i]!.running,
    metaLeader: () => waitForMetaLeader(5_000),
    async killNode(i, signal = 'SIGKILL') {
      await servers[i]!.stop(signal);
    },
    async restartNode(i) {
      await servers[i]!.start();
      await waitForMetaLeader();
    },
    waitForMetaLeader,
    async stop() {
      await stopAll();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
