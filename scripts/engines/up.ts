import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startNatsCluster } from './nats-cluster';
import { startRedisSentinel } from './redis-sentinel';

/**
 * `node dist/scripts/engines/up.js [--nats-port 26100] [--redis-port 26200]`: starts a local
 * 3-node JetStream cluster and a Redis primary + replica behind three Sentinels, prints the
 * environment that points the services at them, and keeps them up until Ctrl-C (then removes
 * their files). Redis here has no password; the test sets one.
 */
async function main(argv: string[]): Promise<void> {
  const arg = (name: string, fallback: number) => {
    const i = argv.indexOf(name);
    return i >= 0 ? Number(argv[i + 1]) : fallback;
  };
  const [nats, redis] = await Promise.all([
    startNatsCluster({ basePort: arg('--nats-port', 26100), dir: mkdtempSync(join(tmpdir(), 'wp-nats-cluster-')) }),
    startRedisSentinel({ basePort: arg('--redis-port', 26200), dir: mkdtempSync(join(tmpdir(), 'wp-redis-sentinel-')) }),
  ]);
  const env = { ...nats.env, ...redis.env };
  process.stdout.write(`engines up (Ctrl-C stops them); point the services at them with:\n${Object.entries(env).map(([k, v]) => `export ${k}=${v}`).join('\n')}\nunset REDIS_URL\n`);
  const stop = async () => {
    await Promise.all([nats.stop(), redis.stop()]);
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main(process.argv.slice(2)).catch((err: Error) => {
  process.stderr.write(`engines: ${err.message}\n`);
  process.exit(1);
});
