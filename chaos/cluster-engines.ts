/**
 * `npm run chaos -- --cluster`: the harness's engines as production runs them, a 3-node
 * JetStream cluster (streams with 3 replicas) and Redis primary + replica under 3 Sentinels,
 * built on the cluster helpers of scripts/engines; PostgreSQL stays the single engine of
 * ./engines. The faults get the node they kill through the `Engines` seam: the NATS node that
 * leads the payment stream, the primary Sentinel names. Each such node is `failover`-capable:
 * the survivors take over while it is down and it rejoins (NATS) or comes back as a replica
 * (Redis) at the outage's end.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startNatsCluster, type NatsCluster } from '../scripts/engines/nats-cluster';
import { until } from '../scripts/engines/process';
import { startRedisSentinel, type RedisSentinel } from '../scripts/engines/redis-sentinel';
import { postgresEngine, tcpOpen, type Engine, type Engines } from './engines';

export interface ClusterPorts {
  postgres: number;
  /** startNatsCluster's basePort: clients +0..2, routes +10..12, monitoring +20..22. */
  natsBase: number;
  /** startRedisSentinel's basePort: data nodes +0..1, Sentinels +10..12. */
  redisBase: number;
}

/**
 * Each node of the helper's cluster may store 512 MB, and holds a replica of all six streams
 * (five areas and the dead letters): the 1 GiB default cap cannot be reserved ("insufficient
 * storage"), 64 MiB each can, and is far more than a run writes.
 */
const STREAM_MAX_BYTES = 64 * 1024 * 1024;

/** The stream the gateway's payment decisions go to (EventBus.streamName('payment') under the harness's prefix). */
const paymentStream = (prefix: string) => `${prefix.toUpperCase()}_PAYMENT`;

interface StreamJsz {
  account_details?: Array<{ stream_detail?: Array<{ name: string; cluster?: { leader?: string } }> }>;
}

/** The node (index) the node behind `monitorPort` names as leader of `stream`, if it knows one. */
async function streamLeader(monitorPort: number, stream: string): Promise<number | undefined> {
  const res = await fetch(`http://127.0.0.1:${monitorPort}/jsz?accounts=true&streams=true`, { signal: AbortSignal.timeout(1_000) });
  const jsz = (await res.json()) as StreamJsz;
  for (const account of jsz.account_details ?? []) {
    const leader = account.stream_detail?.find((s) => s.name === stream)?.cluster?.leader;
    if (leader && /^n\d+$/.test(leader)) return Number(leader.slice(1));
  }
  return undefined;
}

/** "Kill a NATS node": the payment stream's leader (its loss forces an election on the payment path), else the meta leader. */
function natsNodeEngine(cluster: NatsCluster, natsBase: number, stream: string): Engine {
  const monitor = (i: number) => natsBase + 20 + i;
  const running = () => Array.from({ length: cluster.nodes }, (_, i) => i).filter((i) => cluster.running(i));
  let killed: number | undefined;
  let downAt = 0;
  return {
    url: cluster.url,
    ready: () => cluster.metaLeader().then(() => true, () => false),
    async crash() {
      const leader = (await streamLeader(monitor(running()[0]!), stream).catch(() => undefined)) ?? (await cluster.metaLeader());
      killed = leader;
      downAt = Date.now();
      await cluster.killNode(leader, 'SIGKILL');
    },
    async failover() {
      const gone = killed!;
      // A new leader for the payment stream on a surviving node, and the meta group agreeing again.
      const leader = await until(async () => {
        const l = await streamLeader(monitor(running()[0]!), stream);
        return l !== undefined && l !== gone && cluster.running(l) ? l : undefined;
      }, 30_000, `a new leader of ${stream}`, 50);
      const elected = Date.now() - downAt;
      const meta = await cluster.waitForMetaLeader(30_000);
      return `n${gone} (${stream} leader) killed; n${leader} led ${stream} +${elected} ms after, meta leader n${meta} +${Date.now() - downAt} ms`;
    },
    async start() {
      // Rejoins with its store and catches up from the stream's new leader; resolves when the meta group sees it current.
      await cluster.restartNode(killed!);
    },
  };
}

/** "Kill the Redis primary": the data node the Sentinels name; it comes back as the new primary's replica. */
function redisPrimaryEngine(cluster: RedisSentinel): Engine {
  let killed: number | undefined;
  let downAt = 0;
  return {
    url: `sentinel://${cluster.sentinels}/${cluster.masterName}`,
    ready: () => cluster.primary().then(() => true, () => false),
    async crash() {
      killed = await cluster.primary();
      downAt = Date.now();
      await cluster.killNode(killed, 'SIGKILL');
    },
    async failover() {
      // waitForAgreement wants every Sentinel naming one running node that answers ROLE master: the promotion done.
      const promoted = await cluster.waitForAgreement(30_000);
      return `primary r${killed} killed; Sentinels agreed on r${promoted} as primary +${Date.now() - downAt} ms after`;
    },
    async start() {
      await cluster.restartNode(killed!);
      // Back as a replica with its link to the primary up.
      await cluster.waitForAgreement(30_000);
    },
  };
}

/**
 * PostgreSQL (single) on `ports.postgres`, a NATS cluster and Redis with Sentinel on their base
 * ports, data under `dir`; started, with a meta leader and an agreed primary, when this resolves.
 * The clusters' folders are removed by stop() (their helpers' contract); PostgreSQL's stays.
 */
export async function startClusterEngines(dir: string, ports: ClusterPorts, subjectPrefix: string): Promise<Engines> {
  if (await tcpOpen(ports.postgres)) throw new Error(`port ${ports.postgres} (postgres) is taken: another chaos run, or pick another --port-base`);
  mkdirSync(dir, { recursive: true });
  const postgres = postgresEngine(ports.postgres, dir);
  let nats: NatsCluster | undefined;
  let redis: RedisSentinel | undefined;
  let postgresUp = false;
  const stop = async () => {
    await nats?.stop().catch(() => undefined);
    await redis?.stop().catch(() => undefined);
    if (postgresUp && (await postgres.ready())) await postgres.crash().catch(() => undefined);
  };
  try {
    await postgres.start();
    postgresUp = true;
    [nats, redis] = await Promise.all([
      startNatsCluster({ basePort: ports.natsBase, dir: join(dir, 'nats'), name: 'wp-chaos' }),
      startRedisSentinel({ basePort: ports.redisBase, dir: join(dir, 'redis') }),
    ]);
  } catch (err) {
    await stop();
    throw err;
  }
  const natsNode = natsNodeEngine(nats, ports.natsBase, paymentStream(subjectPrefix));
  const redisPrimary = redisPrimaryEngine(redis);
  return {
    topology: `clustered (1 PostgreSQL, Redis primary + replica with ${redis.sentinels.split(',').length} Sentinels, ${nats.nodes}-node NATS with R${nats.nodes} streams)`,
    serviceEnv: { ...redis.env, ...nats.env, NATS_STREAM_MAX_BYTES: String(STREAM_MAX_BYTES) },
    describe: `PostgreSQL :${ports.postgres}, Redis data :${redis.dataPorts.join(',')} Sentinels ${redis.sentinels}, NATS ${nats.urls.map((u) => u.replace('nats://127.0.0.1', '')).join(',')}`,
    postgres,
    redis: redisPrimary,
    nats: natsNode,
    natsNode: () => natsNode,
    redisPrimary: () => redisPrimary,
    // The cluster helpers' processes are SIGKILLed by their own exit handler (scripts/engines/process.ts).
    killNow: () => postgres.killNow(),
    stop,
  };
}
