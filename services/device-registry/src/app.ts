import { openServiceDb } from '../../../platform/db';
import { GrpcServer } from '../../../platform/grpc/server';
import type { Logger } from '../../../platform/log';
import { connectEventBus } from '../../../platform/nats';
import { OutboxRelay } from '../../../platform/outbox';
import { connectRedis } from '../../../platform/redis';
import { platformRetention, RetentionJob } from '../../../platform/retention';
import { dependency, type RunningService } from '../../../platform/service';
import { SERVICE, type Config } from './config';
import { deviceRegistryService } from './server';
import { SessionStore } from './sessions';
import { DeviceStore } from './store';

/** Composes the device registry from its config and starts serving; `port` is the bound port. */
export async function startDeviceRegistry(config: Config, log: Logger): Promise<RunningService & { port: number }> {
  const redis = await dependency('Redis', 'REDIS_URL', () => connectRedis(config.REDIS_URL, log));
  const bus = await connectEventBus(config, SERVICE, log);
  const db = await openServiceDb(config, SERVICE, log);
  const relay = new OutboxRelay(db, bus, log);
  relay.start();
  // No processed_events here yet: the registry consumes no events today. A consumer's dedupe table joins
  // this list with processedEventsRetention(config, <its primary key>).
  const retention = new RetentionJob(db, platformRetention(config), log, { intervalMs: config.RETENTION_INTERVAL_SECONDS * 1000 });
  retention.start();
  const sessions = new SessionStore(redis, config.REDIS_KEY_PREFIX, {
    challengeMs: config.CHALLENGE_TTL_SECONDS * 1000,
    sessionMs: config.SESSION_TTL_SECONDS * 1000,
    maxAgeMs: config.SESSION_MAX_AGE_SECONDS * 1000,
  });
  const server = GrpcServer.fromConfig(config, {
    service: SERVICE,
    log,
    services: [deviceRegistryService({ config, db, devices: new DeviceStore(db), sessions, bus, relay, log })],
  });
  const port = await server.listen(config.DEVICE_REGISTRY_PORT);
  log.info({ port, database: db.kind }, 'device-registry listening');
  return {
    port,
    async stop() {
      await server.shutdown(config.SHUTDOWN_GRACE_MS);
      await retention.stop();
      await relay.stop();
      await bus.close();
      redis.disconnect();
      await db.close();
    },
  };
}
