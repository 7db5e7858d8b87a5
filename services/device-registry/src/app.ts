import { openServiceDb } from '../../../platform/db';
import { GrpcServer } from '../../../platform/grpc/server';
import type { Logger } from '../../../platform/log';
import { connectEventBus } from '../../../platform/nats';
import { OutboxRelay } from '../../../platform/outbox';
import { connectRedis } from '../../../platform/redis';
import { dependency, type RunningService } from '../../../platform/service';
import { SERVICE, type Config } from './config';
import { deviceRegistryService } from './server';
import { SessionStore } from './sessions';
import { DeviceStore } from './store';
import { consumeTokenProvisioned } from './token-provisioned';

/** Composes the device registry from its config and starts serving; `port` is the bound port. */
export async function startDeviceRegistry(config: Config, log: Logger): Promise<RunningService & { port: number }> {
  // What is open so far, closed in reverse order on stop, or at once when start-up fails half way
  // (so a failed start does not hold the process, or a test run, open).
  const opened: Array<() => Promise<void> | void> = [];
  const closeAll = async () => {
    for (const close of opened.reverse()) await Promise.resolve(close()).catch((err) => log.warn({ err }, 'error while closing'));
  };
  try {
    const redis = await dependency('Redis', 'REDIS_URL', () => connectRedis(config.REDIS_URL, log));
    opened.push(() => redis.disconnect());
    const bus = await connectEventBus(config, SERVICE, log);
    opened.push(() => bus.close());
    const db = await openServiceDb(config, SERVICE, log);
    opened.push(() => db.close());
    const relay = new OutboxRelay(db, bus, log);
    relay.start();
    opened.push(() => relay.stop());
    const devices = new DeviceStore(db);
    const consumer = await dependency('NATS JetStream', 'NATS_URL', () => consumeTokenProvisioned({ bus, devices, log }));
    opened.push(() => consumer.stop());
    const sessions = new SessionStore(redis, config.REDIS_KEY_PREFIX, {
      challengeMs: config.CHALLENGE_TTL_SECONDS * 1000,
      sessionMs: config.SESSION_TTL_SECONDS * 1000,
      maxAgeMs: config.SESSION_MAX_AGE_SECONDS * 1000,
    });
    const server = GrpcServer.fromConfig(config, {
      service: SERVICE,
      log,
      services: [deviceRegistryService({ config, db, devices, sessions, bus, relay, log })],
    });
    opened.push(() => server.shutdown(config.SHUTDOWN_GRACE_MS));
    const port = await server.listen(config.DEVICE_REGISTRY_PORT);
    log.info({ port, database: db.kind }, 'device-registry listening');
    // Stop drains in-flight calls first, then the consumer, the relay and the connections.
    return { port, stop: closeAll };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
