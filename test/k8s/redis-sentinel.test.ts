/**
 * The prod Redis configuration, run for real: the redis.conf of redis-sessions and redis-risk and
 * the sentinel.conf that k8s/overlays/prod ships are taken from the rendered ConfigMaps and run
 * with the local redis-server (3 data nodes per use, 3 Sentinels for both), stable pod names
 * rewritten to 127.0.0.1 and this test's ports (29500-29522). The lines the start scripts
 * (redis-start.sh, sentinel-start.sh) append in a pod are appended here the same way: password,
 * masterauth, replicaof pod 0, auth-pass per master. Then both primaries are SIGKILLed and the
 * Sentinels must promote a replica of each with the data, under the shipped timings; a client
 * configured as the services are (REDIS_SENTINELS, REDIS_MASTER_NAME, both passwords) must
 * write to the new primary.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IConfigMap } from 'kubernetes-models/v1';
import Redis from 'ioredis';
import { createLogger } from '../../platform/log';
import { connectRedis, redisTarget } from '../../platform/redis';
import { EngineProcess, until } from '../../scripts/engines/process';
import { Rendered, renderOverlay } from './render';
import { confLines } from './redis';

const REDIS_SERVER_BIN = process.env.REDIS_SERVER_BIN ?? '/usr/bin/redis-server';
const BASE_PORT = 29500;
const USES = [
  { master: 'sessions', set: 'redis-sessions', configMap: 'redis-sessions-config', ports: [BASE_PORT, BASE_PORT + 1, BASE_PORT + 2] },
  { master: 'risk', set: 'redis-risk', configMap: 'redis-risk-config', ports: [BASE_PORT + 10, BASE_PORT + 11, BASE_PORT + 12] },
] as const;
const SENTINEL_PORTS = [BASE_PORT + 20, BASE_PORT + 21, BASE_PORT + 22];
// A throwaway password for this run only; never printed.
const PASSWORD = `pw-${process.pid}-${Date.now()}`;

const rendered = new Rendered('prod', renderOverlay('prod'));
/** The ConfigMap the prod overlay generated under `name` (its rendered name carries a hash). */
function shipped(name: string, key: string): string {
  const cm = rendered.ofKind<IConfigMap>('ConfigMap').find((c) => new RegExp(`^${name}-[a-z0-9]{10}$`).test(c.metadata.name));
  const text = cm?.data?.[key];
  if (text === undefined) throw new Error(`k8s/overlays/prod renders no ConfigMap ${name} with ${key}`);
  return text;
}

/** Replaces what `pattern` matches, failing when it matches nothing (the shipped file changed shape). */
function rewrite(text: string, pattern: RegExp, replacement: string): string {
  if (!pattern.test(text)) throw new Error(`shipped config has no line matching ${pattern}`);
  return text.replace(pattern, replacement);
}

async function ask(port: number, ...args: string[]): Promise<unknown> {
  const client = new Redis({ host: '127.0.0.1', port, password: PASSWORD, lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1_000, commandTimeout: 1_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await client.call(args[0]!, ...args.slice(1));
  } finally {
    client.disconnect();
  }
}

const field = (entry: string[], name: string) => entry[entry.indexOf(name) + 1];

describe('k8s/overlays/prod Redis + Sentinel configuration, run with the local redis-server', () => {
  let dir: string;
  const data = new Map<string, EngineProcess[]>();
  let sentinels: EngineProcess[] = [];
  const all = () => [...sentinels, ...[...data.values()].flat()];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wp-redis-prod-'));
    for (const use of USES) {
      const conf = rewrite(shipped(use.configMap, 'redis.conf'), /^dir .*$/m, `dir ${dir}`);
      data.set(
        use.master,
        use.ports.map((port, i) => {
          const file = join(dir, `${use.set}-${i}.conf`);
          writeFileSync(
            file,
            [
              rewrite(conf, /^port 6379$/m, `port ${port}`),
              'bind 127.0.0.1',
              `dbfilename ${use.set}-${i}.rdb`,
              `appenddirname ${use.set}-${i}-aof`,
              // What redis-start.sh appends: passwords, and replicaof pod 0 (no Sentinel answers yet).
              `requirepass ${PASSWORD}`,
              `masterauth ${PASSWORD}`,
              ...(i === 0 ? [] : [`replicaof 127.0.0.1 ${use.ports[0]}`]),
              // Test speed only: start the replicas' first full sync at once instead of after 5 s.
              'repl-diskless-sync-delay 0',
              '',
            ].join('\n'),
            { mode: 0o600 },
          );
          return new EngineProcess(`${use.set}-${i}`, REDIS_SERVER_BIN, () => [file], join(dir, `${use.set}-${i}.log`), /Ready to accept connections/);
        }),
      );
    }
    let sentinelConf = rewrite(shipped('redis-sentinel-config', 'sentinel.conf'), /^dir .*$/m, `dir ${dir}`);
    for (const use of USES) {
      sentinelConf = rewrite(sentinelConf, new RegExp(`^sentinel monitor ${use.master} ${use.set}-0\\.${use.set} 6379 `, 'm'), `sentinel monitor ${use.master} 127.0.0.1 ${use.ports[0]} `);
    }
    sentinels = SENTINEL_PORTS.map((port, j) => {
      const file = join(dir, `sentinel-${j}.conf`);
      // What sentinel-start.sh appends: auth-pass per master, and the Sentinels' own password.
      const masters = confLines(sentinelConf).filter((l) => l[0] === 'sentinel' && l[1] === 'monitor').map((l) => l[2]!);
      writeFileSync(
        file,
        [rewrite(sentinelConf, /^port 26379$/m, `port ${port}`), 'bind 127.0.0.1', ...masters.map((m) => `sentinel auth-pass ${m} ${PASSWORD}`), `requirepass ${PASSWORD}`, ''].join('\n'),
        { mode: 0o600 },
      );
      return new EngineProcess(`sentinel-${j}`, REDIS_SERVER_BIN, () => [file, '--sentinel'], join(dir, `sentinel-${j}.log`), /\+monitor master/);
    });
    try {
      await Promise.all([...data.values()].map((nodes) => nodes[0]!.start()));
      await Promise.all([...data.values()].flatMap((nodes) => nodes.slice(1).map((n) => n.start())));
      await Promise.all(sentinels.map((s) => s.start()));
    } catch (err) {
      await Promise.all(all().map((p) => p.stop('SIGKILL')));
      throw err;
    }
  }, 30_000);

  afterAll(async () => {
    await Promise.all(all().map((p) => p.stop('SIGKILL')));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Every Sentinel names `port` as the primary of `master`, knows the 2 other Sentinels and `replicas` linked replicas. */
  const agreed = (master: string, port: number, replicas: number) =>
    until(
      async () => {
        for (const s of SENTINEL_PORTS) {
          const addr = (await ask(s, 'SENTINEL', 'get-master-addr-by-name', master)) as [string, string] | null;
          if (Number(addr?.[1]) !== port) return undefined;
          if (((await ask(s, 'SENTINEL', 'sentinels', master)) as unknown[]).length !== SENTINEL_PORTS.length - 1) return undefined;
          const linked = ((await ask(s, 'SENTINEL', 'replicas', master)) as string[][]).filter((r) => field(r, 'master-link-status') === 'ok' && !field(r, 'flags')!.includes('s_down'));
          if (linked.length !== replicas) return undefined;
        }
        return true;
      },
      20_000,
      `the Sentinels to agree that ${master}'s primary is port ${port} with ${replicas} replica(s)`,
      200,
    );

  it('the Sentinels monitor both primaries (pod 0) with their two replicas each, authenticated', async () => {
    await Promise.all(USES.map((u) => agreed(u.master, u.ports[0], 2)));
    for (const u of USES) {
      expect(((await ask(u.ports[0], 'ROLE')) as string[])[0]).toBe('master');
      for (const p of u.ports.slice(1)) expect(((await ask(p, 'ROLE')) as string[])[0]).toBe('slave');
    }
  }, 25_000);

  it('SIGKILL of both primaries: each gets a replica promoted with the data, within the shipped down-after + a few seconds; a client in the services\' form writes to it', async () => {
    const downAfter = Number(/^sentinel down-after-milliseconds sessions (\d+)$/m.exec(shipped('redis-sentinel-config', 'sentinel.conf'))![1]);
    for (const u of USES) {
      await ask(u.ports[0], 'SET', `wp:failover:${u.master}`, 'before');
      // Both replicas have it before the primary dies (async replication otherwise).
      expect(await ask(u.ports[0], 'WAIT', '2', '2000')).toBe(2);
    }
    const killedAt = Date.now();
    await Promise.all(USES.map((u) => data.get(u.master)![0]!.stop('SIGKILL')));
    const promoted = await Promise.all(
      USES.map((u) =>
        until(
          async () => {
            const addr = (await ask(SENTINEL_PORTS[0]!, 'SENTINEL', 'get-master-addr-by-name', u.master)) as [string, string] | null;
            const port = Number(addr?.[1]);
            if (!addr || port === u.ports[0]) return undefined;
            const role = (await ask(port, 'ROLE')) as string[];
            return role[0] === 'master' ? { port, ms: Date.now() - killedAt } : undefined;
          },
          downAfter + 15_000,
          `a new primary for ${u.master}`,
          50,
        ),
      ),
    );
    for (const [i, u] of USES.entries()) {
      const { port, ms } = promoted[i]!;
      // Not before Sentinel may call it down, and well before a second failover attempt.
      expect(ms).toBeGreaterThanOrEqual(downAfter);
      expect(ms).toBeLessThan(downAfter + 10_000);
      expect(u.ports.slice(1)).toContain(port);
      expect(await ask(port, 'GET', `wp:failover:${u.master}`)).toBe('before');
      // The shipped settings are what the new primary runs with.
      expect((await ask(port, 'CONFIG', 'GET', 'maxmemory-policy')) as string[]).toEqual(['maxmemory-policy', u.master === 'sessions' ? 'noeviction' : 'volatile-lru']);
      // The other replica follows the new primary.
      const other = u.ports.slice(1).find((p) => p !== port)!;
      await until(async () => {
        const role = (await ask(other, 'ROLE')) as [string, string, number, string];
        return role[0] === 'slave' && Number(role[2]) === port && role[3] === 'connected' ? true : undefined;
      }, 15_000, `${u.master}'s remaining replica to follow port ${port}`);
      // The services' client: REDIS_SENTINELS + REDIS_MASTER_NAME + REDIS_PASSWORD + REDIS_SENTINEL_PASSWORD.
      const client = await connectRedis(
        redisTarget({
          REDIS_SENTINELS: SENTINEL_PORTS.map((p) => ({ host: '127.0.0.1', port: p })),
          REDIS_MASTER_NAME: u.master,
          REDIS_PASSWORD: PASSWORD,
          REDIS_SENTINEL_PASSWORD: PASSWORD,
        }),
        createLogger('redis-prod-test', 'silent'),
      );
      try {
        await client.set(`wp:failover:${u.master}`, 'after');
        expect(await ask(port, 'GET', `wp:failover:${u.master}`)).toBe('after');
      } finally {
        client.disconnect();
      }
      // Printed for the README (no secrets): how long the failover took.
      console.log(`${u.master}: primary SIGKILLed, replica on port ${port} promoted after ${ms} ms (down-after-milliseconds ${downAfter})`);
    }
  }, 40_000);
});
